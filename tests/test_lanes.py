"""Lanes (runtime.lanes): independent runs trained side by side as one program give the
rows of the same runs trained one after another, compile once per lane count, and
resume after a kill in the middle of a group to the rows of an uninterrupted run.

Tolerances. A lane computes what the run alone computes, but XLA may sum a batched
matmul in another order. After the first 100 steps of a run whose mask and start
agree, the losses agree to float precision (measured: relative differences typically
1e-7, at most 7.7e-6 over the runs of the four experiments below; bound 5e-5). Over whole runs the differences grow
chaotically (Adam amplifies them) and can tip a pruning tie, as with 8 devices
against one (tests/test_experiment.py). Measured on the four experiments below: final
test accuracies differ by at most 0.001 (bound 0.01), test losses by 2.5% relative
(bound 10%), and the early-stop test accuracy by 0.006 where the early-stop
evaluation flipped between two whose validation losses were within that noise (bound
0.02). Counts (remaining weights, steps, examples) are exact.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import comparable_rows, kill_at, run_cli, smoke_config, with_overrides
from jaxtickets import checkpoints
from jaxtickets.config_schema import add_source, parse_lanes, validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment import lanes as lanes_lib
from jaxtickets.experiment.driver import Experiment, common_start, run_experiment
from jaxtickets.experiment.results import run_key
from jaxtickets.training.loop import RunPlan

ACCURACY_TOLERANCE = 0.01   # fraction of the test set
EARLY_STOP_TOLERANCE = 0.02  # the early-stop evaluation may flip between two
LOSS_TOLERANCE = 0.1        # relative
FIRST_EVALUATION_TOLERANCE = 5e-5  # relative, after the first 100 steps
EXACT_KEYS = ("density", "remaining_weights", "prunable_weights", "train_steps",
              "start_step", "examples_seen", "evaluation")


def _pair(tmp_path_factory, name: str, config) -> tuple[dict, dict, dict]:
    """The experiment run one run at a time and with 4 lanes: (config, results by
    lanes setting, workdirs)."""
    results, workdirs = {}, {}
    for lanes in ("1", "4"):
        workdirs[lanes] = tmp_path_factory.mktemp(f"{name}_{lanes}") / "run"
        results[lanes] = run_experiment(with_overrides(config, runtime__lanes=lanes),
                                        workdirs[lanes])
    return results, workdirs


def _assert_rows_match(sequential: dict, lanes: dict) -> None:
    one = {run_key(r): r for r in sequential["rows"]}
    four = {run_key(r): r for r in lanes["rows"]}
    assert one.keys() == four.keys()
    for key, a in one.items():
        b = four[key]
        for field in EXACT_KEYS:
            assert a[field] == b[field], (key, field)
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"],
                                                   abs=ACCURACY_TOLERANCE), key
        assert b["early_stop_test_accuracy"] == pytest.approx(
            a["early_stop_test_accuracy"], abs=EARLY_STOP_TOLERANCE), key
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=LOSS_TOLERANCE), key


def _first_evaluations(workdir, run: str) -> dict:
    history = checkpoints.read_json(workdir / run / "metrics.json")["history"]
    return history[0]


@pytest.fixture(scope="module")
def imp(tmp_path_factory):
    """P2's protocol in small: 2 replicates, 3 levels, ticket and random reinit."""
    return _pair(tmp_path_factory, "imp", smoke_config(num_replicates=2))


def test_imp_replicates_and_random_reinit_match_sequential(imp):
    results, workdirs = imp
    _assert_rows_match(results["1"], results["4"])
    for run in [f"replicate_{r}/level_0{level}/{branch}" for r in (0, 1)
                for level, branch in ((0, "ticket"), (1, "ticket"), (1, "random_reinit"))]:
        a, b = (_first_evaluations(workdirs[k], run) for k in ("1", "4"))
        for key in ("train_loss", "validation_loss", "test_loss"):
            assert b[key] == pytest.approx(a[key], rel=FIRST_EVALUATION_TOLERANCE), (run, key)


def test_lanes_run_compiles_once_per_lane_count(imp):
    """Every run trained as a lane (no lone train step compiled): the dense level's two
    replicates as 2 lanes, then each pruned level's tickets and random reinits as 4, the
    4-lane program reused by both levels (masks are traced, never constants)."""
    results, _ = imp
    compiled = results["4"]["compilations"]
    assert compiled == {"train": 0, "eval": 0, "train_lanes": 2, "eval_lanes": 2}
    assert results["1"]["compilations"] == {"train": 1, "eval": 1}


def test_one_shot_levels_match_sequential(tmp_path_factory):
    config = smoke_config(num_replicates=2, pruning__schedule="one_shot")
    results, _ = _pair(tmp_path_factory, "one_shot", config)
    _assert_rows_match(results["1"], results["4"])
    assert results["4"]["compilations"]["train"] == 0


def test_ticket_source_with_random_ticket_matches_sequential(tmp_path_factory):
    config = smoke_config(num_replicates=2, pruning__levels=1, pruning__evaluate_levels=(1,),
                          branches=("ticket",), train__duration="120st",
                          train__eval_every="60st", train__checkpoint_every="60st",
                          pruning__rewind="20st")
    add_source(config, "rotnet", task="rotnet", branches=("ticket", "random_ticket"))
    results, _ = _pair(tmp_path_factory, "sources", config)
    _assert_rows_match(results["1"], results["4"])
    # The rotnet generations (2 replicates) and the label tickets and random tickets
    # trained as lanes: no run of either task trained alone.
    assert results["4"]["compilations"]["train"] == 0


def test_supermask_branches_match_sequential(tmp_path_factory):
    """P4's supermasks: untrained (evaluated in their turn) and learned (its own loop)
    beside tickets trained as lanes."""
    config = smoke_config(num_replicates=2, pruning__levels=1,
                          branches=("ticket", "supermask_init", "supermask_constant",
                                    "learned_supermask"),
                          supermask__logit_inits=(0.0,), supermask__steps=20,
                          supermask__eval_every=10, supermask__batch_size=60)
    results, _ = _pair(tmp_path_factory, "supermasks", config)
    _assert_rows_match(results["1"], results["4"])
    branches = {r["branch"] for r in results["4"]["rows"]}
    assert {"supermask_init", "supermask_constant", "learned_supermask_0"} <= branches


def test_kill_in_the_middle_of_a_group_resumes_to_the_same_rows(imp, tmp_path):
    """SIGKILL as the first lane of level 1's group of 4 saves its step checkpoint;
    the rerun resumes every lane at their common step and ends with the rows of the
    uninterrupted lanes run, exactly."""
    results, _ = imp
    workdir = tmp_path / "killed"
    flags = ["--config.num_replicates=2", "--config.runtime.lanes=4"]
    kill_at(workdir, "replicate_0/level_01/ticket/steps/100", *flags, poll=0.01)
    assert not (workdir / "replicate_1" / "level_01" / "random_reinit" / "metrics.json"
                ).exists()
    done = run_cli(workdir, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((workdir / "results.json").read_text())
    assert comparable_rows(resumed) == comparable_rows(results["4"])
    for run in ("replicate_0/level_01/ticket", "replicate_1/level_01/random_reinit"):
        log = workdir / run / "log.jsonl"
        steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
        assert steps == [100, 200, 300], run  # no line duplicated by the resumption


def test_eight_emulated_devices_with_lanes_match_one(imp, tmp_path):
    results, _ = imp
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    done = run_cli(tmp_path / "eight", "--config.num_replicates=2",
                   "--config.runtime.lanes=4", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "using 6 of them" in done.stderr
    eight = json.loads((tmp_path / "eight" / "results.json").read_text())
    _assert_rows_match(results["4"], eight)
    assert eight["compilations"] == {"train": 0, "eval": 0, "train_lanes": 2,
                                     "eval_lanes": 2}


# ---- the pieces ------------------------------------------------------------------------
def test_waves_take_one_level_per_replicate_after_its_inputs(tmp_path):
    exp = Experiment(smoke_config(num_replicates=2), tmp_path / "run")
    queues = lanes_lib.stage_queues(exp.plan)
    waves, ran = [], set()
    while any(queues.values()):
        wave = lanes_lib.next_wave(queues, ran)
        waves.append([(s.key.replicate, s.key.level, s.kind, s.key.branch) for s in wave])
        ran.update(s.key for s in wave)
    assert waves == [
        [(0, 0, "train", "ticket"), (1, 0, "train", "ticket")],
        *[[(r, level, kind, branch) for r in (0, 1)
           for kind, branch in (("prune", "mask"), ("train", "ticket"),
                                ("control", "random_reinit"))] for level in (1, 2)]]


def test_groups_are_even_and_a_finished_group_leaves_the_same_others():
    """10 runs under a cap of 4 make groups of 4, 3, 3 (two lane counts, not three);
    once the first group is done, the other 6 group as before."""
    items = [("k", i) for i in range(10)]
    sizes = {"k": 4}
    first = lanes_lib.groups(items, sizes)
    assert [len(g) for g in first] == [4, 3, 3]
    assert lanes_lib.groups(items[4:], sizes) == first[1:]
    for n in range(1, 40):  # the same for any count of runs and cap
        for cap in range(1, 9):
            runs = [("k", i) for i in range(n)]
            grouped = lanes_lib.groups(runs, {"k": cap})
            assert max(len(g) for g in grouped) <= cap
            assert max(len(g) for g in grouped) - min(len(g) for g in grouped) <= 1
            assert lanes_lib.groups(runs[len(grouped[0]):], {"k": cap}) == grouped[1:]


def test_lanes_that_fit_leave_a_margin():
    gib = 2 ** 30
    assert lanes_lib.lanes_that_fit(80 * gib, gib) == int(80 * lanes_lib.MEMORY_SHARE)
    assert lanes_lib.lanes_that_fit(gib, 2 * gib) == 1  # a lone run is still tried


def test_common_start_resumes_every_lane_at_the_step_all_have(tmp_path):
    """Lane a saved steps 100 and 200, lane b only 100 (killed while saving 200): both
    resume at 100, a from its own step-100 checkpoint."""
    like = {"w": np.zeros(3, np.float32)}
    plans = [RunPlan(name, tmp_path / name, 0, 300, 100, 100) for name in ("a", "b")]
    saved = {("a", 100): 1.0, ("a", 200): 2.0, ("b", 100): 3.0}
    for (name, step), value in saved.items():
        store = checkpoints.StepCheckpoints(tmp_path / name / "steps")
        store.save(step, {"w": np.full(3, value, np.float32)},
                   {"history": [{"step": step}], "wall_seconds": 1.0})
        store.close()
    starts = common_start([(plan, like) for plan in plans])
    assert [s.step for s in starts] == [100, 100]
    assert [float(s.state["w"][0]) for s in starts] == [1.0, 3.0]
    assert [s.history for s in starts] == [[{"step": 100}], [{"step": 100}]]
    fresh = common_start([(plans[0], like), (RunPlan("c", tmp_path / "c", 0, 300, 100, 100),
                                             like)])
    assert [s.step for s in fresh] == [0, 0] and not any(s.resumed for s in fresh)


@pytest.mark.parametrize("value", ["0", "-2", "many", "2.5"])
def test_bad_lanes_setting_names_the_key(value):
    config = smoke_config()
    config.runtime.lanes = value
    with pytest.raises(ConfigError, match="runtime.lanes"):
        validate(config)


def test_lanes_setting_is_a_cap_auto_is_one_on_cpu():
    assert parse_lanes("auto") is None and parse_lanes("16") == 16
    assert lanes_lib.lane_cap("auto", "cpu") == 1
    assert lanes_lib.lane_cap("auto", "gpu") > 1024  # bounded by memory per group
    assert lanes_lib.lane_cap("8", "cpu") == 8


def test_lanes_never_change_the_identity():
    from jaxtickets.config_schema import identity

    assert identity(with_overrides(smoke_config(), runtime__lanes="8")) == identity(
        smoke_config())
