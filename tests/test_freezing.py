"""train.freeze: frozen parameters keep their values bit for bit, others train, and the
optimizer holds no state for the frozen ones (training/freezing.py)."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import comparable_rows, smoke_config, with_overrides
from jaxtickets import checkpoints
from jaxtickets.config_schema import base_config, canonical_json, identity, validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment, run_experiment
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.sparsity.masks import init_mask, path_name
from jaxtickets.training import freezing
from jaxtickets.training.optimizers import build_optimizer

REP = "replicate_0"


def _flat(tree) -> dict[str, np.ndarray]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {path_name(p): np.asarray(v) for p, v in flat}


def _resnet20_variables():
    return abstract_variables(create_model("resnet20", 10), (32, 32, 3))


def test_groups_of_resnet20_split_batchnorm_output_and_the_rest():
    variables = _resnet20_variables()
    bn_only = freezing.frozen_leaves(variables, ("others", "output"))
    trained = [p for p, f in _flat_bools(bn_only).items() if not f]
    # Every trainable leaf is a BatchNorm scale or bias, and every BatchNorm one is.
    bn_modules = freezing.batchnorm_modules(variables)
    assert trained and all(p.rsplit("/", 1)[0] in bn_modules for p in trained)
    assert len(trained) == 2 * len(bn_modules)
    assert all(p.endswith(("/scale", "/bias")) for p in trained)
    output = _flat_bools(freezing.frozen_leaves(variables, ("output",)))
    assert sorted(p for p, f in output.items() if f) == ["output/bias", "output/kernel"]


def _flat_bools(tree) -> dict[str, bool]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {path_name(p): f for p, f in flat}


def test_freeze_except_keeps_a_pattern_trainable_under_all():
    variables = abstract_variables(create_model("lenet300_100", 10), (28, 28, 1))
    frozen = _flat_bools(freezing.frozen_leaves(variables, ("all",), ("hidden_1/*",)))
    assert {p for p, f in frozen.items() if not f} == {"hidden_1/kernel", "hidden_1/bias"}


def test_frozen_leaves_have_no_optimizer_state_and_zero_updates():
    params = {"a": {"kernel": jnp.ones((300, 100)), "bias": jnp.ones((100,))},
              "output": {"kernel": jnp.ones((100, 10)), "bias": jnp.ones((10,))}}
    frozen = {"a": {"kernel": True, "bias": True},
              "output": {"kernel": False, "bias": False}}
    mask = {"a": {"kernel": np.ones((300, 100), bool), "bias": None},
            "output": {"kernel": np.ones((100, 10), bool), "bias": None}}
    for name in ("adam", "momentum", "adamw"):
        plain = build_optimizer(name, optax.constant_schedule(0.1), weight_decay=1e-3)
        tx = freezing.freeze_updates(plain, frozen)
        state = tx.init(params)
        floats = sum(x.size for x in jax.tree_util.tree_leaves(state)
                     if jnp.issubdtype(x.dtype, jnp.floating))
        per_param = {"adam": 2, "adamw": 2, "momentum": 1}[name]
        assert floats == per_param * (100 * 10 + 10), name  # the output layer's only
        grads = jax.tree_util.tree_map(jnp.ones_like, params)
        updates, _ = tx.update(grads, state, params, mask=mask)
        assert not np.any(np.asarray(updates["a"]["kernel"]))
        assert np.all(np.asarray(updates["output"]["kernel"]) != 0)


def _like(config, workdir):
    exp = Experiment(config, workdir)
    weights = exp.init_weights(exp.evaluation, exp.key(0, 1))
    return weights, init_mask(weights["params"], exp.policy)


def _frozen_output_config():
    return smoke_config(train__freeze=("output",), pruning__levels=1, branches=("ticket",))


@pytest.fixture(scope="module")
def frozen_output_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("frozen") / "run"
    return workdir, run_experiment(_frozen_output_config(), workdir)


def test_frozen_output_layer_is_bitwise_its_start_and_the_rest_trains(frozen_output_run):
    workdir, _ = frozen_output_run
    config = _frozen_output_config()
    like, _ = _like(config, workdir)
    start = _flat(checkpoints.load_tree(workdir / REP / "rewind", like)["params"])
    mask = _flat(checkpoints.load_tree(workdir / REP / "level_01" / "mask",
                                       init_mask(like["params"], Experiment(
                                           config, workdir).policy)))
    for level in (0, 1):
        final = _flat(checkpoints.load_tree(
            workdir / REP / f"level_{level:02d}" / "ticket" / "final", like)["params"])
        kept = mask["output/kernel"] if level else True
        # Frozen: the output layer's kept weights are its rewind values bit for bit,
        # its pruned ones exactly zero.
        np.testing.assert_array_equal(final["output/kernel"],
                                      np.where(kept, start["output/kernel"], 0.0))
        assert final["output/bias"].tobytes() == start["output/bias"].tobytes()
        for name in ("hidden_0/kernel", "hidden_1/kernel", "hidden_0/bias"):
            moved = np.mean(final[name] != start[name])
            assert moved > 0.5, (level, name, moved)


def test_a_frozen_run_resumed_from_a_step_checkpoint_equals_the_uninterrupted_one(
        frozen_output_run, tmp_path):
    """The optimizer state without the frozen leaves survives a step checkpoint."""
    original_dir, original = frozen_output_run
    workdir = tmp_path / "run"
    shutil.copytree(original_dir, workdir)
    run_dir = workdir / REP / "level_01" / "ticket"
    shutil.rmtree(run_dir / "final")  # interrupted after its step-200 checkpoint
    (run_dir / "metrics.json").unlink()
    (workdir / "results.json").unlink()
    assert (run_dir / "steps" / "200").exists()
    again = run_experiment(_frozen_output_config(), workdir)
    assert comparable_rows(again) == comparable_rows(original)
    like, _ = _like(_frozen_output_config(), workdir)
    a, b = (_flat(checkpoints.load_tree(d / REP / "level_01" / "ticket" / "final", like))
            for d in (original_dir, workdir))
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_batchnorm_only_resnet20_smoke_trains_only_batchnorm(tmp_path):
    config = with_overrides(
        smoke_config(), model__name="resnet20", train__freeze=("others", "output"),
        pruning__levels=0, branches=("ticket",), train__duration="30st",
        train__eval_every="30st", train__checkpoint_every="30st", train__batch_size=16,
        data__train_size=480, data__validation_size=100, data__test_size=100)
    workdir = tmp_path / "bn"
    run_experiment(config, workdir)
    like, _ = _like(config, workdir)
    start = _flat(checkpoints.load_tree(workdir / REP / "rewind", like)["params"])
    final = _flat(checkpoints.load_tree(workdir / REP / "level_00" / "ticket" / "final",
                                        like)["params"])
    bn = freezing.batchnorm_modules(jax.eval_shape(lambda: like))
    changed = {p for p in start if start[p].tobytes() != final[p].tobytes()}
    bn_leaves = {p for p in start if p.rsplit("/", 1)[0] in bn}
    assert len(bn_leaves) == 2 * 19 + 2 * 2  # 19 BatchNorms + 2 shortcut BNs, scale and bias
    assert changed == bn_leaves  # every BatchNorm parameter moved, nothing else
    stats = _flat(checkpoints.load_tree(workdir / REP / "level_00" / "ticket" / "final",
                                        like)["batch_stats"])
    assert all(np.any(v != 0) for p, v in stats.items() if p.endswith("/mean"))


def test_schema_refuses_groups_the_model_lacks_and_patterns_that_match_nothing():
    def check(**overrides):
        with pytest.raises(ConfigError) as err:
            validate(with_overrides(base_config(), **overrides))
        return str(err.value)

    assert check(train__freeze=("batchnorm",)).startswith("train.freeze: 'batchnorm'")
    assert "unknown parameter group 'bn'" in check(train__freeze=("bn",))
    assert check(train__freeze=("all",)).startswith("train.freeze: every parameter")
    assert "matches no parameter" in check(train__freeze=("all",),
                                           train__freeze_except=("hidden_9/*",))
    assert check(train__freeze_except=("hidden_1/*",)).startswith(
        "train.freeze_except: only read")


def test_freeze_keys_at_their_defaults_leave_the_identity_unchanged():
    """Workdirs made before the keys existed still resume; a set key is hashed."""
    config = base_config()
    assert "freeze" not in canonical_json(config)
    before = identity(config)
    config.train.freeze = ("output",)
    assert '"freeze":["output"]' in canonical_json(config) and identity(config) != before
