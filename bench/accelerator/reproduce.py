"""Paper reproductions through the real command line, sized to the time left.

Each reproduction is a shipped config on real data read from an .npz file
(data.source='npz', so no TFDS is needed). A short calibration run of the same config
(fewer iterations, one level) measures the seconds per training iteration, evaluations
included, and the fixed start-up cost; the reproduction then takes as many pruning levels
(and, once every level fits, replicates) as fit in the time left, and runs in a child
process that is stopped if it overruns.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CALIBRATION_STEPS = 1000
SAFETY = 0.8          # the plan uses this fraction of the time left
MAX_REPLICATES = 5    # P2's protocol


@dataclasses.dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    config: str              # path[:argument] relative to the project root
    data_file: str           # in the data folder
    steps: int               # training iterations per run in the paper's recipe
    max_levels: int


P2_LENET = Reproduction("p2_lenet", "P2 Fig. 4: LeNet-300-100 on MNIST, ticket vs random "
                        "reinit", "configs/mnist_lenet.py", "mnist.npz", 50_000, 20)
P2_CONV2 = Reproduction("p2_conv2", "P2 Fig. 5: Conv-2 on CIFAR-10, ticket vs random reinit",
                        "configs/cifar10_conv.py:conv2", "cifar10_jpeg.npz", 20_000, 12)
REPRODUCTIONS = (P2_LENET, P2_CONV2)


def runs(levels: int, replicates: int) -> int:
    """Training runs of an experiment: the dense run, then ticket and reinit per level."""
    return replicates * (1 + 2 * levels)


def cli(repro: Reproduction, workdir: pathlib.Path, data: pathlib.Path,
        overrides: dict, timeout: float) -> dict:
    """Runs jaxtickets.main on the reproduction's config; its results and wall time."""
    flags = [f"--config.{k}={v}" for k, v in {
        "data.source": "npz", "data.npz_file": data / repro.data_file,
        "runtime.plot": False, "pruning.control_draws": 1,  # runs() counts one reinit
        **overrides}.items()]
    command = [sys.executable, "-m", "jaxtickets.main", f"--config={repro.config}",
               f"--workdir={workdir}", *flags]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        return {"status": "timed out", "wall_seconds": time.perf_counter() - start}
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"status": f"failed (exit {done.returncode})", "wall_seconds": wall,
                "stderr_tail": done.stderr[-2000:]}
    results = json.loads((workdir / "results.json").read_text())
    return {"status": "done", "wall_seconds": wall, "results": results}


def calibrate(repro: Reproduction, workdir: pathlib.Path, data: pathlib.Path,
              extra: dict, steps: int, timeout: float) -> dict:
    """Seconds per iteration (evaluations included) and fixed start-up seconds, from one
    level of at most CALIBRATION_STEPS iterations per run."""
    duration = f"{min(CALIBRATION_STEPS, steps)}st"
    overrides = {**extra, "train.duration": duration, "pruning.levels": 1,
                 "num_replicates": 1}
    out = cli(repro, workdir, data, overrides, timeout)
    if out["status"] != "done":
        return out
    # The first run's wall time includes compiling the steps: the fastest run gives the
    # per-iteration cost, and everything else counts as fixed start-up.
    stages = out["results"]["stages"]
    per_step = min(s["wall_seconds"] / s["train_steps"] for s in stages)
    steps = sum(s["train_steps"] for s in stages)
    return {"status": "done", "seconds_per_step": per_step,
            "startup_seconds": max(out["wall_seconds"] - per_step * steps, 0.0),
            "wall_seconds": out["wall_seconds"], "overrides": overrides, "run": out}


def plan(seconds_per_step: float, startup: float, steps: int, max_levels: int,
         seconds: float, max_replicates: int = MAX_REPLICATES) -> tuple[int, int] | None:
    """(levels, replicates) of the largest experiment that fits in `seconds`: levels
    first, then replicates once all `max_levels` fit; None if not even the dense run."""
    def fits(levels: int, replicates: int) -> bool:
        cost = startup + runs(levels, replicates) * steps * seconds_per_step
        return cost <= SAFETY * seconds

    if not fits(0, 1):
        return None
    levels = max(n for n in range(max_levels + 1) if fits(n, 1))
    replicates = 1
    if levels == max_levels:
        replicates = max(r for r in range(1, max_replicates + 1) if r == 1 or fits(levels, r))
    return levels, replicates


def summarize(rows: list[dict]) -> list[dict]:
    """The rows' fields a reader compares, in the driver's order."""
    keys = ("replicate", "level", "branch", "density", "early_stop_step",
            "early_stop_test_accuracy", "test_accuracy", "wall_seconds")
    return [{k: r.get(k) for k in keys} for r in rows]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _accuracy(rows: list[dict], level: int, branch: str) -> float | None:
    return _mean([r["early_stop_test_accuracy"] for r in rows
                  if r["level"] == level and r["branch"] == branch])


def lenet_goal(rows: list[dict], density: float = 0.211) -> dict:
    """P2: the ticket near 21% remaining is at least as accurate as the dense network
    (early-stop test accuracy, mean over replicates)."""
    tickets = [r for r in rows if r["branch"] == "ticket" and r["level"] > 0]
    if not tickets:
        return {"checked": False, "why": "no pruned level was trained"}
    near = min(tickets, key=lambda r: abs(r["density"] - density))
    dense, ticket = _accuracy(rows, 0, "ticket"), _accuracy(rows, near["level"], "ticket")
    return {"checked": True, "level": near["level"], "density": near["density"],
            "dense_accuracy": dense, "ticket_accuracy": ticket,
            "ticket_minus_dense": ticket - dense, "met": ticket >= dense}


def conv2_goal(rows: list[dict], below: float = 0.2) -> dict:
    """P2: below 20% remaining the ticket is more accurate than its random reinit."""
    levels = sorted({r["level"] for r in rows if r["branch"] == "random_reinit"
                     and r["density"] < below})
    if not levels:
        return {"checked": False, "why": f"no level below {below:.0%} remaining was trained"}
    gaps = {str(l): _accuracy(rows, l, "ticket") - _accuracy(rows, l, "random_reinit")
            for l in levels}
    return {"checked": True, "ticket_minus_reinit_by_level": gaps,
            "met": all(g > 0 for g in gaps.values())}


GOALS = {"p2_lenet": lenet_goal, "p2_conv2": conv2_goal}


def reproduce(repro: Reproduction, data: pathlib.Path, workroot: pathlib.Path,
              seconds: float, extra: dict | None = None, steps: int | None = None,
              max_levels: int | None = None, max_replicates: int | None = None) -> dict:
    """Calibrates, plans and runs `repro` within `seconds`; `extra` overrides config keys
    (the smoke run's small sizes), `steps` the iterations per run, `max_levels` and
    `max_replicates` the largest experiment tried."""
    extra = dict(extra or {})
    steps = steps or repro.steps
    start = time.perf_counter()
    cal = calibrate(repro, workroot / f"{repro.name}_calibration", data, extra, steps,
                    seconds)
    if cal["status"] != "done":
        return {"skipped": f"calibration {cal['status']}", **cal}
    calibration_run, calibration_overrides = cal.pop("run"), cal.pop("overrides")
    left = seconds - (time.perf_counter() - start)
    chosen = plan(cal["seconds_per_step"], cal["startup_seconds"], steps,
                  max_levels or repro.max_levels, left, max_replicates or MAX_REPLICATES)
    if chosen is None:
        return {"skipped": f"not even the dense run fits in the {left:.0f} s left",
                "calibration": cal}
    levels, replicates = chosen
    overrides = {**extra, "train.duration": f"{steps}st", "pruning.levels": levels,
                 "num_replicates": replicates}
    if overrides == calibration_overrides:  # the calibration ran this experiment already
        out = calibration_run
    else:
        out = cli(repro, workroot / repro.name, data, overrides, left)
    result = {"title": repro.title, "config": repro.config, "levels": levels,
              "replicates": replicates, "steps_per_run": steps, "calibration": cal,
              "status": out["status"], "wall_seconds": out["wall_seconds"]}
    if out["status"] != "done":
        return {**result, **{k: v for k, v in out.items() if k == "stderr_tail"}}
    rows = out["results"]["rows"]
    return {**result, "rows": summarize(rows), "goal": GOALS[repro.name](rows)}
