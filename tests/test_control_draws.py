"""Control draws and controls trained from scratch, end to end on embedded MNIST.

`pruning.control_draws`: P2 re-initializes each winning ticket three times per trial, so
a random control runs N independent draws per level; draw 0 must be the run a single
draw makes (old workdirs keep their results) and aggregates average a branch over
replicates x draws. `pruning.controls_from_scratch`: P3 App. B trains RR and SDT for the
full T from step 0 while the ticket trains T - k from its rewind weights.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from conftest import smoke_config
from jaxtickets import checkpoints
from jaxtickets.analysis.aggregate import aggregate, compute, load_results
from jaxtickets.config_schema import validate
from jaxtickets.errors import ConfigError
from jaxtickets import branches
from jaxtickets.experiment.driver import Experiment
from jaxtickets.sparsity.masks import init_mask, remaining_and_total

TOTAL = 120  # steps per run
REWIND = 30  # the scratch config's rewind step k


def _config(levels=2, **overrides):
    return smoke_config(pruning__levels=levels, train__duration=f"{TOTAL}st",
                        train__eval_every="60st", train__checkpoint_every="60st",
                        runtime__plot=False, **overrides)


def _run(config, workdir):
    """Runs the experiment; returns (results, trained steps, planned steps)."""
    exp = Experiment(config, workdir)
    results = exp.run()
    return results, exp.progress.done_steps, sum(s.steps for s in exp.plan)


def _row_key(row):
    return (row["replicate"], row["level"], row["branch"], row.get("draw", 0))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """control_draws=1: the reference every draw 0 must reproduce."""
    workdir = tmp_path_factory.mktemp("single") / "run"
    results, _, _ = _run(_config(branches=("ticket", "random_reinit")), workdir)
    return workdir, results


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Two replicates, three draws of random_reinit at each level."""
    workdir = tmp_path_factory.mktemp("drawn") / "run"
    config = _config(branches=("ticket", "random_reinit"), num_replicates=2,
                     pruning__control_draws=3)
    results, trained, planned = _run(config, workdir)
    return config, workdir, results, trained, planned


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One pruned level, rewinding to step 30, RR and SDT from scratch, two draws."""
    workdir = tmp_path_factory.mktemp("scratch") / "run"
    config = _config(levels=1,
                     branches=("ticket", "random_reinit", "random_ticket", "small_dense",
                               "supermask_init"),
                     pruning__rewind=f"{REWIND}st", pruning__control_draws=2,
                     pruning__controls_from_scratch=("random_reinit", "small_dense"))
    results, trained, planned = _run(config, workdir)
    return config, workdir, results, trained, planned


def _like(config, workdir):
    exp = Experiment(config, workdir)
    weights = exp.init_weights(exp.evaluation, exp.key(0, 1))
    return weights, init_mask(weights["params"], exp.policy)


def _level_dir(workdir, replicate, level):
    return workdir / f"replicate_{replicate}" / f"level_{level:02d}"


def _kernels(tree):
    leaves = jax.tree_util.tree_leaves_with_path(tree["params"])
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves if "kernel" in
            jax.tree_util.keystr(p)}


def test_draws_give_one_row_each_per_pruned_level(drawn):
    _, _, results, _, _ = drawn
    for replicate in (0, 1):
        for level in (1, 2):
            rows = [r for r in results["rows"] if r["replicate"] == replicate
                    and r["level"] == level]
            assert sorted(r["draw"] for r in rows if r["branch"] == "random_reinit") == [
                0, 1, 2]
            assert [r["draw"] for r in rows if r["branch"] == "ticket"] == [0]
    assert not [r for r in results["rows"] if r["level"] == 0 and r["branch"] != "ticket"]
    keys = [_row_key(r) for r in results["rows"]]
    assert len(keys) == len(set(keys)) == 2 * (3 + 2 * 3)
    stage_keys = [_row_key(s) for s in results["stages"]]
    assert sorted(stage_keys) == sorted(keys)  # a stage per run, draws kept apart


def test_draw_zero_is_the_single_draw_run(single, drawn):
    """Same seeds, same directory, same numbers: only `wall_seconds` may differ."""
    _, single_results = single
    _, workdir, results, _, _ = drawn
    reference = {_row_key(r): r for r in single_results["rows"]}
    mine = {_row_key(r): r for r in results["rows"] if r["replicate"] == 0
            and r["draw"] == 0}
    assert set(mine) == set(reference) and len(mine) == 5
    for key, row in mine.items():
        want = {k: v for k, v in reference[key].items() if k != "wall_seconds"}
        got = {k: v for k, v in row.items() if k != "wall_seconds"}
        assert got == want, key
    assert (_level_dir(workdir, 0, 1) / "random_reinit" / "metrics.json").exists()
    assert (_level_dir(workdir, 0, 1) / "random_reinit_draw2" / "metrics.json").exists()


def test_reinit_draws_differ_and_keep_the_tickets_mask(drawn):
    """Every draw trains the level's mask with the replicate's data order, so final
    weights that differ can only come from different initial weights."""
    config, workdir, results, _, _ = drawn
    weights_like, mask_like = _like(config, workdir)
    for replicate in (0, 1):
        for level in (1, 2):
            ldir = _level_dir(workdir, replicate, level)
            mask = _kernels({"params": checkpoints.load_tree(ldir / "mask", mask_like)})
            finals = [_kernels(checkpoints.load_tree(
                ldir / branches.run_name("random_reinit", d) / "final", weights_like))
                for d in range(3)]
            for final in finals:
                assert final.keys() == mask.keys()
                for name, kept in mask.items():
                    np.testing.assert_array_equal(final[name] != 0, kept.astype(bool))
            for a in range(3):
                for b in range(a + 1, 3):
                    assert any(not np.array_equal(finals[a][n], finals[b][n]) for n in mask)
            rows = [r for r in results["rows"] if r["replicate"] == replicate
                    and r["level"] == level and r["branch"] == "random_reinit"]
            assert len({r["test_loss"] for r in rows}) == 3
            ticket = next(r for r in results["rows"] if r["replicate"] == replicate
                          and r["level"] == level and r["branch"] == "ticket")
            assert {r["remaining_weights"] for r in rows} == {ticket["remaining_weights"]}


def test_random_ticket_draws_get_their_own_masks_of_the_same_count(scratch):
    config, workdir, _, _, _ = scratch
    _, mask_like = _like(config, workdir)
    ldir = _level_dir(workdir, 0, 1)
    ticket = checkpoints.load_tree(ldir / "mask", mask_like)
    masks = [checkpoints.load_tree(ldir / branches.run_name("random_ticket", d) / "mask",
                                   mask_like) for d in range(2)]
    flat = [np.concatenate([np.ravel(m) for m in jax.tree_util.tree_leaves(x)])
            for x in [ticket] + masks]
    for bits in flat[1:]:
        assert bits.sum() == flat[0].sum()
        assert not np.array_equal(bits, flat[0])
    assert not np.array_equal(flat[1], flat[2])
    assert {remaining_and_total(m) for m in masks} == {remaining_and_total(ticket)}


def test_planned_steps_count_the_draws(drawn):
    _, _, results, trained, planned = drawn
    total = sum(s["train_steps"] for s in results["stages"])
    assert trained == planned == total == 2 * (3 * TOTAL + 2 * 3 * TOTAL)


def test_aggregate_averages_over_replicates_and_draws(drawn):
    _, workdir, results, _, _ = drawn
    run = load_results(workdir)
    cells = {(c.column.branch, c.level): c for c in aggregate([run], "test_accuracy")}
    for level in (1, 2):
        members = [r for r in results["rows"] if r["level"] == level
                   and r["branch"] == "random_reinit"]
        cell = cells[("random_reinit", level)]
        values = [r["test_accuracy"] for r in members]
        assert cell.stats.n == 6
        assert math.isclose(cell.stats.mean, sum(values) / 6, rel_tol=1e-12)
        assert math.isclose(cell.stats.std, float(np.std(values, ddof=1)), rel_tol=1e-9)
        assert cell.replicates == (0, 0, 0, 1, 1, 1) and cell.draws == (0, 1, 2, 0, 1, 2)
        assert cells[("ticket", level)].stats.n == 2
    costs = {c.column.branch: c for c in compute([run])}
    assert costs["random_reinit"].runs == 12 and costs["random_reinit"].replicates == 2
    assert costs["random_reinit"].totals["train_steps"] == 12 * TOTAL


def test_rerun_of_a_finished_workdir_trains_nothing(drawn):
    config, workdir, results, _, _ = drawn
    again, trained, _ = _run(config, workdir)
    assert trained == 0
    assert again["rows"] == results["rows"]
    assert sorted(map(_row_key, again["stages"])) == sorted(map(_row_key, results["stages"]))


def test_listed_controls_train_from_scratch(scratch):
    _, _, results, _, _ = scratch
    for level in (1,):
        rows = [r for r in results["rows"] if r["level"] == level]
        by_branch = {}
        for r in rows:
            by_branch.setdefault(r["branch"], []).append(r)
        for branch in ("random_reinit", "small_dense"):
            assert len(by_branch[branch]) == 2
            for r in by_branch[branch]:
                assert (r["start_step"], r["train_steps"]) == (0, TOTAL), branch
        for branch in ("ticket", "random_ticket"):
            for r in by_branch[branch]:
                assert (r["start_step"], r["train_steps"]) == (REWIND, TOTAL - REWIND), branch
        assert len(by_branch["random_ticket"]) == 2
        assert len(by_branch["supermask_init"]) == 1  # deterministic: drawn once
        draws = by_branch["small_dense"]
        assert draws[0]["test_loss"] != draws[1]["test_loss"]
        assert draws[0]["remaining_weights"] == draws[1]["remaining_weights"]


def test_planned_steps_equal_trained_steps_from_scratch(scratch):
    _, _, results, trained, planned = scratch
    total = sum(s["train_steps"] for s in results["stages"])
    # IMP: the dense level 0 (T) and the rewound level 1 (T - k); at level 1 two draws
    # each of RR and SDT (T, from scratch) and of the random ticket (T - k); the
    # supermask evaluation trains nothing.
    imp = TOTAL + (TOTAL - REWIND)
    controls_steps = 2 * TOTAL + 2 * TOTAL + 2 * (TOTAL - REWIND)
    assert trained == planned == total == imp + controls_steps


def test_which_controls_are_drawn():
    for branch in ("random_reinit", "random_ticket", "random_ticket_local",
                   "random_adjusted", "prune_at_init", "reinit_dm", "noise_0.5",
                   "small_dense"):
        assert branches.draws(branch, 3) == 3, branch
    for branch in ("ticket", "supermask_init", "supermask_constant", "learned_supermask"):
        assert branches.draws(branch, 3) == 1, branch
    assert branches.run_name("random_reinit", 0) == "random_reinit"
    assert branches.run_name("random_reinit", 2) == "random_reinit_draw2"


@pytest.mark.parametrize("key,value", [("control_draws", 0),
                                       ("controls_from_scratch", ("ticket",))])
def test_bad_values_name_the_key(key, value):
    config = _config()
    config.pruning[key] = value
    with pytest.raises(ConfigError, match=f"pruning.{key}"):
        validate(config)
