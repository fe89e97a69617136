"""SIGKILL at random instants spread over every stage; each rerun must reproduce the
uninterrupted results.json exactly and leave no half-written file (make test-slow)."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, comparable_rows, run_cli

pytestmark = pytest.mark.slow
KILLS = 20


def stage_reached(workdir) -> str:
    """The newest artifact on disk: which stage the kill interrupted."""
    paths = [p for p in workdir.rglob("*") if p.name in (
        "theta_0", "rewind", "mask", "final", "metrics.json", "results.json")
        or p.parent.name == "steps"]
    if not paths:
        return "start-up"
    newest = max(paths, key=lambda p: p.stat().st_mtime_ns)
    return str(newest.relative_to(workdir))


def assert_nothing_half_written(workdir) -> None:
    for path in workdir.rglob("*.json"):
        json.loads(path.read_text())  # every visible JSON file is complete
    leftovers = [p for p in workdir.rglob("*") if ".orbax-checkpoint-tmp" in p.name
                 or (p.name.startswith(".") and p.name.endswith(".tmp"))]
    assert not leftovers, leftovers


def kill_at(workdir, instant: float) -> bool:
    """Starts the smoke run and SIGKILLs it after `instant` s; False if it ended first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxtickets.main", "--config=configs/mnist_lenet.py:smoke",
         f"--workdir={workdir}"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=instant)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def test_sigkill_at_random_instants_then_resume(smoke_run, tmp_path):
    _, reference = smoke_run
    # Time one whole uninterrupted CLI run to spread the kill instants over it.
    started = time.time()
    timed = run_cli(tmp_path / "timed")
    assert timed.returncode == 0, timed.stderr[-2000:]
    duration = time.time() - started
    rng = random.Random(20261121)
    outcomes = []
    for i in range(KILLS):
        workdir = tmp_path / f"kill_{i}"
        instant = duration * (i + rng.random()) / KILLS  # one instant per slice of the run
        for _ in range(4):  # the machine's speed varies: pull late instants in until one hits
            shutil.rmtree(workdir, ignore_errors=True)
            killed = kill_at(workdir, instant)
            if killed:
                break
            instant *= 0.8
        stage = stage_reached(workdir) if workdir.exists() else "before any file"
        done = run_cli(workdir)
        assert done.returncode == 0, done.stderr[-2000:]
        resumed = json.loads((workdir / "results.json").read_text())
        assert comparable_rows(resumed) == comparable_rows(reference), (i, stage)
        assert_nothing_half_written(workdir)
        outcomes.append((round(instant, 1), killed, stage))
        shutil.rmtree(workdir)
    print("\nkill instant (s), killed, newest artifact at the kill:")
    for row in outcomes:
        print(*row)
    assert all(killed for _, killed, _ in outcomes)
