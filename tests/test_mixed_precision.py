"""model.compute_dtype='bfloat16': bf16 compute, float32 parameters, masks and statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.masked_step import sparse_mask
from conftest import smoke_config
from jaxtickets import checkpoints, parallel
from jaxtickets.errors import ConfigError
from jaxtickets.config_schema import validate
from jaxtickets.experiment.driver import Experiment, run_experiment
from jaxtickets.models import create_model
from jaxtickets.sparsity import masks
from jaxtickets.training import batches, state as state_lib, steps as steps_lib
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.schedules import build_schedule


def _float_dtypes(tree) -> set[str]:
    return {np.dtype(x.dtype).name for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bf16_batchnorm_resnet_trains_in_bf16_and_keeps_float32_state():
    model = create_model("resnet20", 10)
    variables = model.init(jax.random.PRNGKey(0), np.zeros((1, 32, 32, 3), np.float32),
                           train=False)
    params, stats = variables["params"], variables["batch_stats"]
    mask = sparse_mask(params, keep=0.5, seed=3)
    tx = build_optimizer("momentum", build_schedule("constant", 0.05, 10), momentum=0.9)
    mesh = parallel.make_mesh(16)
    spec = steps_lib.InputSpec((0.5,) * 3, (0.25,) * 3, compute_dtype="bfloat16")
    compiled = steps_lib.make_steps(model, tx, spec, mesh, steps_per_call=1)
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 10, 64).astype(np.int32)
    data = batches.put_split(images, labels, mesh)
    state = jax.device_put(state_lib.fresh_state(params, stats, mask, tx, 0,
                                                 jax.random.PRNGKey(1)),
                           parallel.replicated(mesh))
    order = batches.BatchOrder(64, 16, seed=0)
    idx = batches.device_indices(order.indices(0, 1, 1), mesh, 1)
    hlo = compiled.train_chunk.lower(state, data.images, data.labels, idx,
                                     np.int32(1)).as_text()
    convolutions = [line for line in hlo.splitlines() if "stablehlo.convolution" in line]
    assert convolutions and all("bf16" in line for line in convolutions)
    for step in range(3):
        idx = batches.device_indices(order.indices(step, 1, 1), mesh, 1)
        state, out = compiled.train_chunk(state, data.images, data.labels, idx, np.int32(1))
        assert np.isfinite(np.asarray(out["losses"])).all()
    assert _float_dtypes(state.params) == {"float32"}
    assert _float_dtypes(state.batch_stats) == {"float32"}
    assert _float_dtypes(state.opt_state) == {"float32"}
    flat = {masks.path_name(p): np.asarray(w)
            for p, w in jax.tree_util.tree_flatten_with_path(state.params)[0]}
    for name, keep in masks.to_flat_dict(mask).items():
        assert np.all(flat[name][~keep].view(np.uint32) == 0), name
        assert np.mean(flat[name][keep] != 0) > 0.99, name
    # BN running statistics moved away from their initial values, in float32.
    mean = jax.tree_util.tree_leaves(state.batch_stats)[0]
    assert np.any(np.asarray(mean) != 0)


def test_bf16_run_end_to_end_matches_float32_closely(smoke_run, tmp_path):
    float32_dir, _ = smoke_run
    config = smoke_config(model__compute_dtype="bfloat16", pruning__levels=1,
                          branches=("ticket",))
    results = run_experiment(config, tmp_path / "bf16")
    rows = results["rows"]
    assert [r["level"] for r in rows] == [0, 1]
    assert all(0.85 < r["test_accuracy"] <= 1.0 for r in rows)
    # The same init and batches; the first evaluation differs only by bf16 rounding.
    first = [checkpoints.read_json(d / "replicate_0/level_00/ticket/metrics.json")["history"][0]
             for d in (float32_dir, tmp_path / "bf16")]
    # Tolerances from the spread over seeds 0-5 (bf16 / float32 - 1 at step 100): training
    # loss at most 1.0%, validation loss at most 5.9% (seed 0, this test's), so 3% and 15%.
    for key, rel in (("train_loss", 0.03), ("validation_loss", 0.15)):
        assert first[0][key] != first[1][key]
        assert first[1][key] == pytest.approx(first[0][key], rel=rel)
    exp = Experiment(config, tmp_path / "bf16")
    like = exp.init_weights(exp.evaluation, exp.key(0, 1))
    final = checkpoints.load_tree(tmp_path / "bf16/replicate_0/level_01/ticket/final",
                                  like)
    mask = checkpoints.load_tree(tmp_path / "bf16/replicate_0/level_01/mask",
                                 masks.init_mask(like["params"], exp.policy))
    assert _float_dtypes(final["params"]) == {"float32"}
    flat = {masks.path_name(p): np.asarray(w)
            for p, w in jax.tree_util.tree_flatten_with_path(final["params"])[0]}
    for name, keep in masks.to_flat_dict(mask).items():
        assert np.all(flat[name][~np.asarray(keep, bool)].view(np.uint32) == 0), name


def test_unknown_compute_dtype_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="model.compute_dtype"):
        validate(smoke_config(model__compute_dtype="float16"))
