"""End to end: the IMP driver on real MNIST images (the embedded subset), smoke-sized."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import comparable_rows, kill_at, run_cli, smoke_config
from jaxtickets import checkpoints
from jaxtickets.experiment.driver import Experiment, run_experiment

REQUIRED_KEYS = {"replicate", "level", "branch", "density", "remaining_weights",
                 "forward_flops", "forward_flops_dense", "train_flops",
                 "test_accuracy", "early_stop_step", "early_stop_test_accuracy",
                 "wall_seconds", "source", "kernel_density", "examples_seen"}


@pytest.mark.fast  # the end-to-end smoke run of make test-fast
def test_results_schema_and_plot(smoke_run):
    workdir, results = smoke_run
    rows = results["rows"]
    assert [(r["level"], r["branch"]) for r in rows] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (2, "ticket"),
        (2, "random_reinit")]
    for row in rows:
        assert REQUIRED_KEYS <= set(row)
        assert 0.5 < row["test_accuracy"] <= 1.0  # real learning on real digits
        assert row["early_stop_step"] % 100 == 0
    # P2's LeNet schedule (dense 20%, output 10% per level) in kernel density.
    assert [round(100 * r["kernel_density"], 2) for r in rows if r["branch"] == "ticket"] == [
        100.0, 80.04, 64.06]
    assert rows[0]["remaining_weights"] == 266_200
    assert (workdir / "accuracy_vs_remaining.png").stat().st_size > 10_000
    stored = json.loads((workdir / "config.json").read_text())
    assert stored["identity"] == results["experiment"]


def test_plot_is_drawn_at_the_end_not_at_every_write(tmp_path, monkeypatch):
    """Results are written after every stage, but drawing the plot costs a sixth to a tenth
    of a LeNet level: within a minute only the final write draws it."""
    from jaxtickets.experiment import results

    plots, write_merged = [], results.write_merged
    monkeypatch.setattr(results, "write_merged",
                        lambda *args: plots.append(args[-1]) or write_merged(*args))
    run_experiment(smoke_config(pruning__levels=1, train__duration="100st"),
                   tmp_path / "run")
    assert len(plots) >= 3 and plots[-1] is True and not any(plots[:-1])
    assert (tmp_path / "run" / "accuracy_vs_remaining.png").exists()


@pytest.mark.fast  # the end-to-end smoke run of make test-fast
def test_train_step_compiles_once_for_all_levels(smoke_run):
    _, results = smoke_run
    # 3 levels of ticket + 2 random-reinit branches, one compilation each for train/eval.
    assert results["compilations"] == {"train": 1, "eval": 1}
    seconds = results["compile_seconds"]  # XLA's own compile time, from JAX's events
    assert seconds["train_chunk"] > 0 and seconds["eval_batch"] > 0
    # Each value is rounded to the millisecond: three roundings of at most 0.5 ms each.
    assert seconds["total"] >= seconds["train_chunk"] + seconds["eval_batch"] - 0.0015


@pytest.mark.fast  # the end-to-end smoke run of make test-fast
def test_rerun_skips_finished_stages(smoke_run):
    workdir, results = smoke_run
    again = run_experiment(smoke_config(), workdir)
    assert comparable_rows(again) == comparable_rows(results)
    assert again["compilations"]["train"] == 0  # nothing was trained again
    assert again["compile_seconds"]["train_chunk"] == 0.0


@pytest.mark.fast  # the end-to-end smoke run of make test-fast
def test_rewind_snapshot_equals_state_at_rewind_step(tmp_path):
    config = smoke_config(pruning__rewind="100st", pruning__levels=1, branches=("ticket",))
    results = run_experiment(config, tmp_path / "run")
    exp = Experiment(config, tmp_path / "run")
    rep = tmp_path / "run" / "replicate_0"
    like = exp.init_weights(exp.evaluation, exp.key(0, 1))
    rewind = checkpoints.load_tree(rep / "rewind", like)
    # The level-0 step checkpoint at step 100 was written by a different code path.
    step_ckpt = checkpoints.StepCheckpoints(rep / "level_00" / "ticket" / "steps", 10)
    assert 100 in step_ckpt._manager.all_steps()
    restored = step_ckpt._manager.restore(100)
    for a, b in zip(_leaves(rewind["params"]), _leaves(restored["state"]["params"])):
        np.testing.assert_array_equal(a, b)
    level1 = checkpoints.read_json(rep / "level_01" / "ticket" / "metrics.json")["summary"]
    assert level1["start_step"] == 100 and level1["train_steps"] == 200
    assert results["rewind"]["step"] == 100 and results["rewind"]["examples"] == 6000


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_killed_run_resumes_to_identical_results(smoke_run, tmp_path):
    _, uninterrupted = smoke_run
    workdir = tmp_path / "killed"
    kill_at(workdir, "replicate_0/level_01/ticket/steps/100")
    assert not (workdir / "results.json").exists() or json.loads(
        (workdir / "results.json").read_text())["rows"] != uninterrupted["rows"]
    done = run_cli(workdir)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((workdir / "results.json").read_text())
    assert comparable_rows(resumed) == comparable_rows(uninterrupted)
    log = workdir / "replicate_0" / "level_01" / "ticket" / "log.jsonl"
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [100, 200, 300]  # lines past the resumed step were not duplicated


def test_eight_emulated_devices_match_one(smoke_run, tmp_path):
    one_dir, one_device = smoke_run
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    done = run_cli(tmp_path / "eight", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "using 6 of them" in done.stderr  # batch 60 over 8 devices -> 6
    eight = json.loads((tmp_path / "eight" / "results.json").read_text())
    for a, b in zip(one_device["rows"], eight["rows"]):
        assert (a["level"], a["branch"], a["remaining_weights"]) == (
            b["level"], b["branch"], b["remaining_weights"])
        # Gradient sums reassociate over devices; the float differences then grow
        # chaotically with training (Adam amplifies them), so final numbers agree loosely.
        assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=0.01)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=0.1)
    # After the first 100 steps they still agree to float precision.
    first = [checkpoints.read_json(d / "replicate_0/level_00/ticket/metrics.json")["history"][0]
             for d in (one_dir, tmp_path / "eight")]
    for key in ("train_loss", "validation_loss", "test_loss"):
        assert first[0][key] == pytest.approx(first[1][key], rel=1e-5)


@pytest.mark.parametrize("flag, key", [
    ("--config.pruning.bogus=1", "bogus"),
    ("--config.pruning.rates.dense=1.5", "pruning.rates.dense"),
    ("--config.model.name=resnet9000", "model.name"),
    ("--config.data.dataset=imagenet9000", "data.dataset"),
    ("--config.pruning.rewind=1000st", "pruning.rewind"),
])
def test_bad_config_fails_before_training_naming_the_key(tmp_path, flag, key):
    workdir = tmp_path / "bad"
    done = run_cli(workdir, flag)
    assert done.returncode != 0
    assert key in done.stderr
    assert not (workdir / "config.json").exists()
    assert not (workdir / "replicate_0").exists()


def test_missing_config_file_is_a_clear_error(tmp_path):
    done = run_cli(tmp_path / "w", config="configs/does_not_exist.py")
    assert done.returncode != 0
    assert "does_not_exist.py" in done.stderr
    assert not (tmp_path / "w").exists()


def test_workdir_of_another_experiment_is_refused_untouched(smoke_run):
    from jaxtickets.experiment.workdir import WorkdirError

    workdir, _ = smoke_run
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
    with pytest.raises(WorkdirError, match="different experiment"):
        run_experiment(smoke_config(train__learning_rate=0.1), workdir)
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before


def test_second_run_on_a_locked_workdir_is_refused(smoke_run):
    from jaxtickets.experiment.workdir import WorkdirError, WorkdirLock

    workdir, _ = smoke_run
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (workdir / ".lock").write_text(f"{os.uname().nodename} {holder.pid}")
        with pytest.raises(WorkdirError, match="in use"):
            run_experiment(smoke_config(), workdir)
    finally:
        holder.kill()
        holder.wait()
    with WorkdirLock(workdir):  # the holder is dead: its stale lock is taken over
        pass
    assert not (workdir / ".lock").exists()


def test_dataset_not_prepared_is_a_clear_error(tmp_path):
    empty = tmp_path / "tfds"
    empty.mkdir()
    done = run_cli(tmp_path / "w", "--config.data.source=tfds",
                   f"--config.data.data_dir={empty}")
    assert done.returncode == 2
    assert "mnist" in done.stderr and "jaxtickets.data.prepare" in done.stderr
    assert not (tmp_path / "w" / "config.json").exists()


@pytest.mark.fast  # the end-to-end smoke run of make test-fast
def test_rows_account_for_compute(smoke_run):
    _, results = smoke_run
    dense = 2 * (784 * 300 + 300 * 100 + 100 * 10)  # LeNet-300-100 forward, hand count
    for row in results["rows"]:
        assert row["forward_flops_dense"] == dense
        assert row["forward_flops"] == pytest.approx(2 * row["remaining_weights"])
        assert row["train_flops"] == pytest.approx(3 * row["forward_flops"]
                                                   * row["examples_seen"])


def test_stages_account_for_levels_without_rows(tmp_path):
    config = smoke_config(pruning__evaluate_levels=(2,), branches=("ticket",))
    results = run_experiment(config, tmp_path / "run")
    assert [(r["level"], r["branch"]) for r in results["rows"]] == [(2, "ticket")]
    stages = results["stages"]
    assert [(s["level"], s["branch"]) for s in stages] == [(0, "ticket"), (1, "ticket"),
                                                          (2, "ticket")]
    assert sum(s["train_steps"] for s in stages) == 900  # IMP paid for all three levels
    from jaxtickets.analysis.aggregate import compute, load_results

    (column,) = compute([load_results(tmp_path / "run")])
    assert column.runs == 3 and column.totals["train_steps"] == 900


def test_relative_workdir_works(tmp_path, monkeypatch):
    """`make demo` passes a relative --workdir; Orbax itself only accepts absolute paths."""
    monkeypatch.chdir(tmp_path)
    config = smoke_config(pruning__levels=1, branches=("ticket",), train__duration="100st")
    results = run_experiment(config, "runs/relative")
    assert [r["level"] for r in results["rows"]] == [0, 1]
    assert checkpoints.exists(tmp_path / "runs/relative/replicate_0/level_01/ticket/final")
