"""The plan and its executor: shipped configs' smoke runs give the rows recorded before
the driver became an executor, bit for bit; the plan's steps and FLOPs are what a run
records; --dry_run prints them and writes nothing; shipped configs keep their identity."""

from __future__ import annotations

import json

import pytest

import golden_rows
from conftest import HAVE_CIFAR, load_config, run_cli, smoke_config
from jaxtickets.config_schema import identity
from jaxtickets.experiment.driver import Experiment
from jaxtickets.experiment.dry_run import dry_run
from jaxtickets.experiment.plan import CONTROL, PRUNE, TICKET, TRAIN, totals

GOLDEN = json.loads(golden_rows.GOLDEN_FILE.read_text())
# Seconds each on 2 cores; the others (CIFAR models, streamed ImageNet) are slow-tier.
FAST = ("mnist_lenet", "mnist_sources", "mnist_criteria", "mnist_supermask",
        "mnist_p2_controls")


def _case_params():
    for name in golden_rows.CASES:
        marks = [] if name in FAST else [pytest.mark.slow]
        if golden_rows.CASES[name][2] == "cifar10" and not HAVE_CIFAR:
            marks.append(pytest.mark.skip(reason="../shared/data/cifar10_jpeg.npz absent"))
        yield pytest.param(name, marks=marks)


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    """Each kind of data prepared once, on first use."""
    made: dict[str, str | None] = {}

    def get(kind):
        if kind not in made:
            made[kind] = golden_rows.prepare_data(kind, tmp_path_factory.mktemp(kind))
        return made[kind]
    return get


@pytest.mark.parametrize("name", _case_params())
def test_smoke_rows_equal_the_rows_recorded_before_the_executor(name, data_dirs, tmp_path):
    config = golden_rows.case_config(name, data_dirs(golden_rows.CASES[name][2]))
    exp = Experiment(config, tmp_path / name)
    results = exp.run()
    golden_rows.assert_rows_match(golden_rows.comparable(results["rows"]),
                                  golden_rows.comparable(GOLDEN[name]["rows"]))
    stages = results["stages"]
    assert sum(s["train_steps"] for s in stages) == GOLDEN[name]["total_steps"]
    assert sum(s["train_flops"] for s in stages) == GOLDEN[name]["train_flops"]
    # What the plan priced is what ran: steps and dense-equivalent FLOPs, to the unit
    # (small-dense runs, priced as the full model, are an upper bound).
    planned = totals(exp.plan)
    assert planned["steps"] == GOLDEN[name]["total_steps"]
    inexact = {s.key.branch for s in exp.plan if not s.flops_exact}
    assert sum(s.flops for s in exp.plan if s.flops_exact) == sum(
        s["train_flops_dense"] for s in stages if s["branch"] not in inexact)
    assert sum(s.flops for s in exp.plan if not s.flops_exact) >= sum(
        s["train_flops_dense"] for s in stages if s["branch"] in inexact)
    assert all(stage.is_done() for stage in exp.plan)


def test_the_plan_lists_each_stage_once_after_its_inputs(tmp_path):
    config = load_config("mnist_sources", "smoke")
    plan = Experiment(config, tmp_path / "run").plan
    seen = set()
    for stage in plan:
        assert stage.key not in seen
        assert all(k in seen for k in stage.inputs), stage.key
        seen.add(stage.key)
    outputs = [p for s in plan for p in s.outputs]
    assert len(outputs) == len(set(outputs))
    kinds = {s.kind for s in plan}
    assert kinds == {PRUNE, TRAIN, TICKET, CONTROL}
    # 7 sources x (levels 1, 2) masks; labels is the evaluation: no transferred tickets.
    assert sum(s.kind == PRUNE for s in plan) == 14
    assert {s.key.source for s in plan if s.kind == TICKET} == {
        "classes50", "exemplar", "rotnet", "samples10", "semisup", "shuffled_labels"}


def test_dry_run_prices_the_run_and_writes_nothing(tmp_path):
    """--dry_run's totals are the smoke run's recorded totals; before the run nothing
    exists, after it every stage counts as done and no file changed."""
    config = load_config("mnist_sources", "smoke")
    workdir = tmp_path / "run"
    printed = []
    before = dry_run(config, workdir, calibrate=False, out=printed.append)
    assert not workdir.exists()
    assert before["done"] == 0 and before["estimated_seconds"] is None
    assert before["steps"] == GOLDEN["mnist_sources"]["total_steps"]
    results = Experiment(config, workdir).run()
    assert before["steps"] == sum(s["train_steps"] for s in results["stages"])
    assert before["flops"] == sum(s["train_flops_dense"] for s in results["stages"])
    assert f"| {before['steps']:,} |" in printed[0]
    files = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
    after = dry_run(config, workdir, calibrate=True, out=printed.append)
    assert after["done"] == after["stages"] and after["estimated_seconds"] == 0.0
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == files


def test_estimate_is_steps_and_evaluations_at_the_measured_rates(tmp_path, monkeypatch):
    """Wall time = sum over stages left of steps x seconds/step + evaluations x
    seconds/evaluation, each at its own setup's calibration."""
    from jaxtickets.experiment import dry_run as dry_run_lib

    measured = []

    def fake(experiment, setup):
        measured.append(setup)
        return dry_run_lib.Calibration(0.01 * len(measured), 0.5)

    monkeypatch.setattr(dry_run_lib, "time_steps", fake)
    config = smoke_config(train__duration="200st", train__eval_every="50st")
    summary = dry_run(config, tmp_path / "run", out=lambda text: None)
    assert len(measured) == 1  # one setup: the evaluation's
    runs = [s for s in Experiment(config, tmp_path / "run").plan if s.steps]
    expected = sum(s.steps * 0.01 + (-(-s.steps // 50) + 1) * 0.5 for s in runs)
    assert summary["estimated_seconds"] == pytest.approx(expected, rel=1e-12)


def test_calibration_times_real_steps(tmp_path):
    from jaxtickets.experiment.dry_run import time_steps

    exp = Experiment(smoke_config(), tmp_path / "run")
    c = time_steps(exp, exp.evaluation)
    assert 0 < c.seconds_per_step < 10 and 0 < c.seconds_per_eval < 60
    assert not (tmp_path / "run").exists()


def test_dry_run_on_the_command_line(tmp_path):
    done = run_cli(tmp_path / "run", "--dry_run", "--nocalibrate",
                   config="configs/mnist_sources.py:smoke")
    assert done.returncode == 0, done.stderr
    assert "total | | 36 | 0 | 4,250 |" in done.stdout
    assert "nothing was written" in done.stdout
    assert not (tmp_path / "run").exists()


# Identity hashes of shipped configs, as recorded in their workdirs: a change here means
# existing workdirs no longer resume (config_schema.ADDED_LATER explains how to avoid it).
PINNED = {("mnist_lenet", None): "f5de58a992e54379",
          ("mnist_lenet", "demo"): "d6cd9f95080d93f2",
          ("mnist_sources", None): "650da7cf5e000484",
          ("imagenet_rotnet", None): "e858d86bf97742b8",
          ("p3_cifar", "resnet20,cifar10"): "4925847c8b9db9f1",
          ("p2_deep_cifar", "vgg19"): "51dca114592cb9fc",
          ("cifar10_p0", "resnet18"): "5e15c1d6bb7a9c69"}


@pytest.mark.parametrize("name,arg", list(PINNED))
def test_shipped_configs_keep_their_identity(name, arg):
    assert identity(load_config(name, arg)) == PINNED[(name, arg)]
