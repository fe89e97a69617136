"""Controls end to end on embedded MNIST: P4 trajectories (criteria, mask-1 and mask-0
actions), P2's one-shot and strategy 2, every control branch, resumption and errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import comparable_rows, load_config, smoke_config
from jaxtickets import checkpoints
from jaxtickets.config_schema import add_source, validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment, run_experiment
from jaxtickets.sparsity.masks import init_mask, layer_counts, remaining_and_total

CONTROLS = ("ticket", "random_reinit", "reinit_dm", "noise_1", "prune_at_init",
            "random_adjusted", "random_ticket_local", "supermask_init", "supermask_constant",
            "small_dense", "learned_supermask")


def _config():
    config = smoke_config(pruning__levels=2, branches=("ticket",),
                          train__duration="120st", train__eval_every="60st",
                          train__checkpoint_every="60st")
    config.supermask.logit_inits = (1,)
    config.supermask.steps = 40
    config.supermask.eval_every = 20
    config.supermask.eval_samples = 2
    add_source(config, "lt", branches=CONTROLS, evaluate_levels=(0, 2))
    add_source(config, "movement", criterion="movement")
    add_source(config, "reshuffle", mask1_action="reshuffle_sign")
    add_source(config, "frozen", mask0_action="frozen_init")
    add_source(config, "hybrid", mask0_action="hybrid")
    add_source(config, "oneshot", schedule="one_shot")
    add_source(config, "oneshot_last", schedule="one_shot", evaluate_levels=(2,))
    add_source(config, "sweep", schedule="one_shot",  # P4's supermask sweep: no tickets
               branches=("supermask_init", "supermask_constant"))
    add_source(config, "strategy2", strategy="continue")
    return config


@pytest.fixture(scope="module")
def controls_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("controls") / "run"
    config = _config()
    return config, workdir, run_experiment(config, workdir)


def _rows(results):
    return {(r["source_name"], r["level"], r["branch"]): r for r in results["rows"]}


def _likes(config, workdir):
    """(weights, mask) trees shaped like the LeNet's, for reading stored checkpoints."""
    exp = Experiment(config, workdir)
    weights = exp.init_weights(exp.evaluation, exp.key(0, 1))
    return weights, init_mask(weights["params"], exp.policy)


def _load(workdir, source, level, name, like):
    path = workdir / f"source_{source}" / "replicate_0" / f"level_{level:02d}" / name
    return checkpoints.load_tree(path, like)


def _theta0(workdir, source, like):
    return checkpoints.load_tree(workdir / f"source_{source}" / "replicate_0" / "theta_0", like)


def test_every_control_gives_a_row(controls_run):
    _, _, results = controls_run
    rows = _rows(results)
    for branch in CONTROLS:
        if branch not in ("learned_supermask", "ticket"):
            assert ("lt", 2, branch) in rows, branch
    for name in ("movement", "reshuffle", "frozen", "hybrid", "oneshot", "strategy2"):
        assert (name, 2, "ticket") in rows
    assert rows[("lt", 0, "supermask_init")]["train_steps"] == 0  # untrained dense
    assert rows[("lt", 2, "supermask_constant")]["train_steps"] == 0
    assert rows[("lt", 2, "supermask_init")]["density"] == rows[("lt", 2, "ticket")]["density"]
    learned = rows[("lt", 0, "learned_supermask_1")]
    assert 0.5 < learned["density"] < 0.95 and learned["train_steps"] == 40
    sdt = rows[("lt", 2, "small_dense")]
    assert sdt["remaining_weights"] == pytest.approx(sdt["small_dense_target_weights"], rel=0.01)
    assert rows[("movement", 2, "ticket")]["source"] == "labels:mnist[movement]"
    assert results["sources"]["strategy2"]["is_evaluation"] is False
    assert rows[("frozen", 2, "ticket")]["frozen_weights"] > 0


def test_frozen_weights_end_at_their_initial_values(controls_run):
    config, workdir, _ = controls_run
    w_like, m_like = _likes(config, workdir)
    theta0 = _theta0(workdir, "frozen", w_like)
    final = _load(workdir, "frozen", 2, "ticket/final", w_like)
    mask = _load(workdir, "frozen", 2, "mask", m_like)
    for layer in ("hidden_0", "hidden_1", "output"):
        m = np.asarray(mask[layer]["kernel"])
        w0 = np.asarray(theta0["params"][layer]["kernel"])
        w = np.asarray(final["params"][layer]["kernel"])
        assert (~m).sum() > 0
        np.testing.assert_array_equal(w[~m].view(np.uint32), w0[~m].view(np.uint32))
        assert (w[m] != w0[m]).mean() > 0.9  # the trainable ones trained


def test_hybrid_value_mask_follows_the_rule(controls_run):
    config, workdir, _ = controls_run
    w_like, m_like = _likes(config, workdir)
    theta0 = _theta0(workdir, "hybrid", w_like)
    final0 = _load(workdir, "hybrid", 0, "ticket/final", w_like)
    mask1 = _load(workdir, "hybrid", 1, "mask", m_like)
    values1 = _load(workdir, "hybrid", 1, "value_mask", m_like)
    for layer in ("hidden_0", "output"):
        m, v = np.asarray(mask1[layer]["kernel"]), np.asarray(values1[layer]["kernel"])
        grew = (np.abs(np.asarray(final0["params"][layer]["kernel"]))
                >= np.abs(np.asarray(theta0["params"][layer]["kernel"])))
        np.testing.assert_array_equal(v, m | grew)
    final2 = _load(workdir, "hybrid", 2, "ticket/final", w_like)
    values2 = _load(workdir, "hybrid", 2, "value_mask", m_like)
    mask2 = _load(workdir, "hybrid", 2, "mask", m_like)
    frozen = np.asarray(values2["hidden_0"]["kernel"]) & ~np.asarray(mask2["hidden_0"]["kernel"])
    np.testing.assert_array_equal(np.asarray(final2["params"]["hidden_0"]["kernel"])[frozen],
                                  np.asarray(theta0["params"]["hidden_0"]["kernel"])[frozen])
    assert (np.asarray(final2["params"]["hidden_0"]["kernel"])[
        ~np.asarray(values2["hidden_0"]["kernel"])] == 0).all()


def test_one_shot_levels_prune_the_dense_network_at_once(controls_run):
    config, workdir, results = controls_run
    _, m_like = _likes(config, workdir)
    rows = _rows(results)
    for level in (1, 2):
        counts = layer_counts(_load(workdir, "oneshot", level, "mask", m_like))
        total = counts["hidden_0/kernel"][1]
        assert counts["hidden_0/kernel"][0] == round(total * 0.8 ** level)
    # Same densities as IMP; the level-2 mask is not nested in level 1's in general.
    assert rows[("oneshot", 2, "ticket")]["density"] == pytest.approx(
        rows[("lt", 2, "ticket")]["density"], abs=1e-3)


def test_one_shot_trains_only_the_dense_run_and_the_evaluated_levels(controls_run):
    _, workdir, results = controls_run
    root = workdir / "source_oneshot_last" / "replicate_0"
    assert (root / "level_00" / "ticket" / "metrics.json").exists()
    assert not (root / "level_01" / "ticket").exists()   # its mask needs no training
    assert (root / "level_02" / "ticket" / "metrics.json").exists()
    # Two one-shot sources would share a description: their names tell them apart.
    rows = _rows(results)
    assert rows[("oneshot", 2, "ticket")]["source"] == "labels:mnist[one_shot] (oneshot)"
    trained = {s["level"] for s in results["stages"] if s["branch"] == "ticket"
               and s["source"] == "labels:mnist[one_shot] (oneshot)"}
    assert trained == {0, 1, 2}  # the 'oneshot' source evaluates (so trains) every level
    assert rows[("oneshot_last", 2, "ticket")]["density"] == pytest.approx(
        rows[("oneshot", 2, "ticket")]["density"])


def test_one_shot_without_tickets_trains_only_the_dense_run(controls_run):
    """A one-shot source that leaves 'ticket' out trains level 0 (the trained baseline)
    and only evaluates its supermasks: the same masks as the source that trains them."""
    config, workdir, results = controls_run
    _, m_like = _likes(config, workdir)
    rows = _rows(results)
    root = workdir / "source_sweep" / "replicate_0"
    assert (root / "level_00" / "ticket" / "metrics.json").exists()
    assert rows[("sweep", 0, "ticket")]["train_steps"] == 120
    for level in (1, 2):
        assert ("sweep", level, "ticket") not in rows
        assert not (root / f"level_{level:02d}" / "ticket").exists()
        for branch in ("supermask_init", "supermask_constant"):
            assert rows[("sweep", level, branch)]["train_steps"] == 0
        sweep, trained = (_load(workdir, s, level, "mask", m_like) for s in ("sweep", "oneshot"))
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(sweep),
                                                       jax.tree.leaves(trained)))
    stages = {s["level"] for s in results["stages"]
              if "(sweep)" in s["source"] and s["branch"] == "ticket"}
    assert stages == {0}


def test_control_masks_keep_the_ticket_counts(controls_run):
    config, workdir, _ = controls_run
    _, m_like = _likes(config, workdir)
    ticket = _load(workdir, "lt", 2, "mask", m_like)
    for branch in ("prune_at_init", "random_ticket_local"):
        assert layer_counts(_load(workdir, "lt", 2, f"{branch}/mask", m_like)) == layer_counts(ticket)
    adjusted = _load(workdir, "lt", 2, "random_adjusted/mask", m_like)
    assert remaining_and_total(adjusted) == remaining_and_total(ticket)


def test_rows_carry_the_start_final_correlation(controls_run):
    """P3's R_0.5(theta_0 * m, theta_final * m) of the level-2 ticket, recomputed here
    with numpy sorts from the stored checkpoints."""
    config, workdir, results = controls_run
    w_like, m_like = _likes(config, workdir)
    theta0 = _theta0(workdir, "lt", w_like)["params"]
    final = _load(workdir, "lt", 2, "ticket/final", w_like)["params"]
    mask = _load(workdir, "lt", 2, "mask", m_like)
    shared = total = 0
    for layer in ("hidden_0", "hidden_1", "output"):
        m = np.asarray(mask[layer]["kernel"])
        a = np.abs(np.asarray(theta0[layer]["kernel"])[m])
        b = np.abs(np.asarray(final[layer]["kernel"])[m])
        k = int(np.floor(0.5 * a.size + 0.5))
        shared += len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k]))
        total += a.size
    row = _rows(results)[("lt", 2, "ticket")]
    assert row["init_final_correlation"] == pytest.approx(shared / (0.5 * total), abs=1e-12)
    assert 0.5 < row["init_final_correlation"] < 1.0  # 120 steps: still near its start
    assert "init_final_correlation" not in _rows(results)[("lt", 2, "supermask_init")]


def test_rerun_reproduces_every_row(controls_run):
    config, workdir, results = controls_run
    again = run_experiment(config, workdir)
    assert comparable_rows(again) == comparable_rows(results)


@pytest.mark.parametrize("change,message", [
    (lambda c: add_source(c, "r", task="rotnet", mask1_action="reshuffle"), "mask1_action"),
    (lambda c: c.pruning.update(criterion="largest"), "pruning.criterion"),
    (lambda c: add_source(c, "x", mask0_action="frozen"), "generation.x.mask0_action"),
    (lambda c: c.update(branches=("ticket", "noise_-1")), "noise_C"),
    (lambda c: c.update(branches=("ticket", "learned_supermask")), "supermask.logit_inits"),
    (lambda c: c.pruning.update(schedule="one_shot", one_shot_spacing="linear", levels=5,
                                rates=dict(c.pruning.rates, dense=0.25)),
     "impossible sparsity"),
    (lambda c: c.pruning.update(first_conv_layers=2), "first_conv_layers"),
])
def test_bad_control_settings_are_named(change, message, tmp_path):
    config = smoke_config()
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)
        run_experiment(config, tmp_path / "run")


def test_p4_configs_build():
    for name, args in (("mnist_criteria", (None, "smoke")),
                       ("mnist_p2_controls", (None, "smoke")),
                       ("mnist_supermask", (None, "iterative", "short", "smoke"))):
        for arg in args:
            validate(load_config(name, arg))
    with pytest.raises(ValueError, match="unknown argument"):
        load_config("mnist_supermask", "long")
