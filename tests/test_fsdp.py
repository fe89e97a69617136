"""runtime.fsdp: parameters, masks and optimizer state sharded over the data axis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from jax.sharding import PartitionSpec as P

from conftest import ROOT, comparable_rows, smoke_config
from jaxtickets import parallel
from jaxtickets.experiment.driver import run_experiment


def test_fsdp_shards_the_largest_evenly_divided_axis_of_large_leaves():
    assert parallel.fsdp_spec((784, 300), 8) == P("data")          # 784 = 8 x 98
    assert parallel.fsdp_spec((784, 300), 6) == P(None, "data")    # 300 = 6 x 50
    assert parallel.fsdp_spec((300, 100), 8) == P()                # neither divides
    assert parallel.fsdp_spec((3, 3, 64, 128), 8) == P(None, None, None, "data")
    assert parallel.fsdp_spec((100,), 8) == P()                    # small: replicated
    assert parallel.fsdp_spec((784, 300), 1) == P()


def test_fsdp_on_one_device_changes_nothing(smoke_run, tmp_path):
    _, replicated = smoke_run
    config = smoke_config()
    config.runtime.fsdp = True
    sharded = run_experiment(config, tmp_path / "fsdp")
    assert comparable_rows(sharded) == comparable_rows(replicated)


SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from jaxtickets import parallel
    from jaxtickets.data.datasets import NORMALIZATION, load_splits
    from jaxtickets.models import create_model
    from jaxtickets.sparsity import masks
    from jaxtickets.training import batches, state as state_lib, steps as steps_lib
    from jaxtickets.training.optimizers import build_optimizer
    from jaxtickets.training.schedules import build_schedule

    assert jax.device_count() == 8
    splits = load_splits("mnist", "embedded", "", validation_size=100, train_size=800)
    mesh = parallel.make_mesh(64)
    data = batches.put_split(splits.train.images, splits.train.labels, mesh)
    model = create_model("lenet300_100", 10)
    params = model.init(jax.random.PRNGKey(0), np.zeros((1, 28, 28, 1), np.float32))["params"]
    rng = np.random.default_rng(0)
    mask = jax.tree_util.tree_map(lambda m: m & (rng.random(m.shape) < 0.5),
                                  masks.init_mask(params, masks.PrunablePolicy()))
    tx = build_optimizer("adam", build_schedule("constant", 1e-3, 10))
    order = batches.BatchOrder(800, 64, seed=0)
    final = {}
    for fsdp in (False, True):
        steps = steps_lib.make_steps(model, tx, steps_lib.InputSpec((0.13,), (0.31,)),
                                     mesh, steps_per_call=1, fsdp=fsdp)
        state = state_lib.fresh_state(jax.tree_util.tree_map(np.array, params), {}, mask,
                                      tx, 0, jax.random.PRNGKey(1))
        state = jax.device_put(state, parallel.state_shardings(state, mesh, fsdp))
        for step in range(4):
            idx = batches.device_indices(order.indices(step, 1, 1), mesh, 1)
            state, out = steps.train_chunk(state, data.images, data.labels, idx, np.int32(1))
        final[fsdp] = state
    kernel = final[True].params["hidden_0"]["kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("data"), kernel.sharding
    assert kernel.addressable_shards[0].data.shape == (98, 300)  # 1/8 of the rows each
    nu = final[True].opt_state
    moments = [leaf for leaf in jax.tree_util.tree_leaves(nu) if leaf.shape == (784, 300)]
    assert moments and all(m.sharding.spec == kernel.sharding.spec for m in moments)
    assert final[True].mask["hidden_0"]["kernel"].sharding.spec == kernel.sharding.spec
    assert final[False].params["hidden_0"]["kernel"].sharding.is_fully_replicated
    for a, b in zip(jax.tree_util.tree_leaves(final[False].params),
                    jax.tree_util.tree_leaves(final[True].params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    keep = np.asarray(mask["hidden_0"]["kernel"])
    assert (np.asarray(kernel)[~keep] == 0).all()
    print("ok")
""")


def test_fsdp_on_eight_devices_keeps_the_state_sharded_and_trains_alike(tmp_path):
    script = tmp_path / "fsdp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
