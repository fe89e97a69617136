"""Same config and seed, same results, bitwise; runtime.* keys never change results.

Each test makes one more in-process smoke run (3 levels, ticket and random reinit, about
15 s on 2 CPU cores) and compares it with the shared `smoke_run` (read only): the rows of
results.json, every run's evaluation history, and every stored tree (theta_0, the rewind
snapshot, each level's mask and each branch's final weights), leaf by leaf.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import comparable_rows, smoke_config
from jaxtickets import checkpoints
from jaxtickets.experiment.driver import run_experiment

# Every tree one smoke run stores (levels 0..2; random_reinit from level 1 on).
TREES = ["theta_0", "rewind", "level_00/ticket/final",
         "level_01/mask", "level_01/ticket/final", "level_01/random_reinit/final",
         "level_02/mask", "level_02/ticket/final", "level_02/random_reinit/final"]
RUNS = [t.rsplit("/", 1)[0] for t in TREES if t.endswith("/final")]


def _trees(dir_a: pathlib.Path, dir_b: pathlib.Path, name: str):
    """The tree `name` of both runs, each loaded with a `like` built from the other (so
    structure, shapes and dtypes must agree too)."""
    path_a = dir_a / "replicate_0" / name
    path_b = dir_b / "replicate_0" / name
    b = checkpoints.load_tree(path_b, ocp.StandardCheckpointer().restore(str(path_a)))
    a = checkpoints.load_tree(path_a, b)
    return a, b


def _leaves(tree) -> list:
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def _history(run_dir: pathlib.Path, name: str, ignore: tuple[str, ...] = ()
             ) -> tuple[dict, list]:
    """A run's summary (without wall time) and its whole evaluation history."""
    metrics = checkpoints.read_json(run_dir / "replicate_0" / name / "metrics.json")
    summary = {k: v for k, v in metrics["summary"].items() if k != "wall_seconds"}
    history = [{k: v for k, v in h.items() if k not in ignore} for h in metrics["history"]]
    return summary, history


def assert_same_results(dir_a: pathlib.Path, res_a: dict, dir_b: pathlib.Path,
                        res_b: dict, history_ignore: tuple[str, ...] = ()) -> None:
    assert comparable_rows(res_a) == comparable_rows(res_b)
    timing = ("rows", "stages", "compile_seconds")  # compile time is wall time
    assert ({k: v for k, v in res_a.items() if k not in timing}
            == {k: v for k, v in res_b.items() if k not in timing})
    assert comparable_rows({"rows": res_a["stages"]}) == comparable_rows(
        {"rows": res_b["stages"]})
    for run in RUNS:
        assert (_history(dir_a, run, history_ignore)
                == _history(dir_b, run, history_ignore)), run
    for name in TREES:
        a, b = _trees(dir_a, dir_b, name)
        leaves_a, leaves_b = _leaves(a), _leaves(b)
        assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b], name
        for (path, x), (_, y) in zip(leaves_a, leaves_b):
            assert np.asarray(x).dtype == np.asarray(y).dtype
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y),
                                          err_msg=f"{name} {jax.tree_util.keystr(path)}")


@pytest.fixture
def baseline(smoke_run):
    workdir, results = smoke_run
    # What the comparisons assume: LeNet on CPU takes 100 steps per call under 'auto'.
    from jaxtickets.training import backend_defaults
    assert backend_defaults.steps_per_call(smoke_config().runtime.steps_per_call, "cpu",
                                           False) == 100
    return pathlib.Path(workdir), results


def test_same_config_and_seed_give_bitwise_equal_results(baseline, tmp_path):
    again = tmp_path / "again"
    results = run_experiment(smoke_config(), again)
    assert_same_results(*baseline, again, results)


def test_changing_only_the_seed_changes_the_results(baseline, tmp_path):
    base_dir, base_results = baseline
    other = tmp_path / "seed1"
    results = run_experiment(smoke_config(seed=1), other)
    assert results["experiment"] != base_results["experiment"]
    assert len(results["rows"]) == len(base_results["rows"])
    for row_a, row_b in zip(comparable_rows(base_results), comparable_rows(results)):
        assert (row_a["level"], row_a["branch"]) == (row_b["level"], row_b["branch"])
        # Counts are fixed by the rates; the weights, and so the losses, are not.
        assert row_a["remaining_weights"] == row_b["remaining_weights"]
        assert row_a["test_loss"] != row_b["test_loss"]
    for name in TREES:
        a, b = _trees(base_dir, other, name)
        if name == "level_01/mask" or name == "level_02/mask":
            assert any(not np.array_equal(x, y) for (_, x), (_, y) in zip(_leaves(a), _leaves(b)))
        else:  # every float leaf that is not all zeros (biases at init) differs
            for (path, x), (_, y) in zip(_leaves(a), _leaves(b)):
                if np.any(x):
                    assert not np.array_equal(x, y), f"{name} {jax.tree_util.keystr(path)}"


@pytest.fixture(scope="module")
def one_step_per_call_run(tmp_path_factory):
    """The smoke run with one step per jitted call (no lax.scan) instead of 100."""
    workdir = tmp_path_factory.mktemp("one_step_per_call") / "run"
    return workdir, run_experiment(smoke_config(runtime__steps_per_call=1), workdir)


def test_steps_per_call_does_not_change_the_results(baseline, one_step_per_call_run):
    """runtime.* never changes results: rows, weights, masks and the evaluation history
    are bitwise equal for 1 and 100 steps per call (the history's train_loss aside: see
    the next test)."""
    assert_same_results(*baseline, *one_step_per_call_run, history_ignore=("train_loss",))


def test_steps_per_call_does_not_change_the_training_loss(baseline, one_step_per_call_run):
    assert_same_results(*baseline, *one_step_per_call_run)
