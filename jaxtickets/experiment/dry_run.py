"""`--dry_run`: what an experiment will cost, before running it.

Builds the experiment as a real run would (the config validated, the data read, the
models traced) and prints its plan: one line per group of stages (kind, branch, level)
with runs, steps, examples and dense-equivalent training FLOPs, the totals, how many
stages this workdir already holds, and an estimated wall time from a calibration on
this machine (a few train steps of every model and data the plan trains). Nothing is
written to the workdir; label indexes that a selection needs go to a temporary
directory.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import Callable

import jax

from jaxtickets.experiment.plan import PRUNE, TICKET, TRAIN, Stage, totals
from jaxtickets.training.batches import BatchOrder
from jaxtickets.training.loop import streamed_batches, train_call

CALIBRATION_CALLS = 2  # timed train calls per setup, after one that compiles


@dataclasses.dataclass(frozen=True)
class Calibration:
    seconds_per_step: float
    seconds_per_eval: float   # one pass over the validation and test splits (estimated)


def dry_run(config, workdir, calibrate: bool = True, out: Callable[[str], None] = print
            ) -> dict:
    """Prints the plan of `config` in `workdir` and returns its summary (see the module
    docstring); `calibrate=False` skips the timing (no wall-time estimate)."""
    from jaxtickets.experiment.driver import Experiment

    with tempfile.TemporaryDirectory() as tmp:
        experiment = Experiment(config, workdir, label_cache=tmp)
        plan = experiment.plan
        done = {s.key for s in plan if s.is_done()}  # one look at the workdir per stage
        left = [s for s in plan if s.key not in done]
        calibrations = _calibrate(experiment, left) if calibrate else {}
    seconds = sum(_seconds(experiment, s, calibrations) for s in left) if calibrate else None
    summary = {**totals(plan), "done": len(done), "estimated_seconds": seconds,
               "identity": experiment.id}
    out(format_plan(plan, summary, done))
    return summary


def setup_of(experiment, stage: Stage):
    """The setup a stage trains with: the source's for its own runs, else the
    evaluation's (P3's small-dense models are priced as the full one)."""
    if stage.kind == TRAIN:
        return next(s.setup for s in experiment.sources if s.name == stage.key.source)
    return experiment.evaluation


def _calibrate(experiment, left: list[Stage]) -> dict[int, Calibration]:
    """A calibration per setup that the stages left to run train with."""
    setups = {id(setup): setup for setup in (setup_of(experiment, s) for s in left if s.steps)}
    return {key: time_steps(experiment, setup) for key, setup in setups.items()}


def time_steps(experiment, setup) -> Calibration:
    """Seconds per train step of `setup` on this machine: one call to compile, then
    CALIBRATION_CALLS timed calls on the real training data. An evaluation is priced
    as forward passes over the held-out images (a forward pass ~ 1/3 of a train step)."""
    weights = experiment.init_weights(setup, experiment.key(0, 1))
    from jaxtickets.sparsity.masks import init_mask

    state = experiment.device_state(setup, weights, init_mask(weights["params"],
                                                              experiment.policy), 0, 0)
    steps, train = setup.steps, setup.train
    order = BatchOrder(len(setup.splits.train), setup.recipe.batch_size, 0)
    calls = 1 + CALIBRATION_CALLS
    streamed = streamed_batches(train, steps, order, 0, calls)  # one step per call
    step, timed, started = 0, 0, 0.0
    for call in range(calls):
        if call == 1:
            started, timed = time.perf_counter(), 0
        state, metrics, count = train_call(state, steps, train, order, step,
                                           steps.steps_per_call, streamed)
        jax.block_until_ready(metrics["losses"])
        step, timed = step + count, timed + count
    per_step = (time.perf_counter() - started) / timed
    held_out = len(setup.splits.validation) + len(setup.splits.test)
    return Calibration(per_step, held_out / setup.recipe.batch_size * per_step / 3)


def _seconds(experiment, stage: Stage, calibrations: dict[int, Calibration]) -> float:
    if not stage.steps:
        return 0.0
    setup = setup_of(experiment, stage)
    c = calibrations[id(setup)]
    evals = -(-stage.steps // setup.schedule.eval_every) + 1
    return stage.steps * c.seconds_per_step + evals * c.seconds_per_eval


def format_plan(plan: list[Stage], summary: dict, done: set) -> str:
    """The plan grouped by level, then (kind, branch) in run order, then the totals;
    `done`: the keys of the stages whose outputs exist."""
    groups: dict[tuple, list[Stage]] = {}
    for s in sorted(plan, key=lambda s: s.key.level):  # stable: run order within a level
        groups.setdefault((s.key.level, s.kind, s.key.branch), []).append(s)
    lines = ["level | stage | runs | done | steps | examples | FLOPs (dense)",
             "--- | --- | --- | --- | --- | --- | ---"]
    for (level, kind, name), stages in groups.items():
        t = totals(stages)
        lines.append(f"{level} | {_STAGE_LABELS.get((kind, name), name)} | {len(stages)} | "
                     f"{sum(s.key in done for s in stages)} | {t['steps']:,} | "
                     f"{t['examples']:,} | {_flops(t)}")
    lines.append(f"total | | {summary['stages']} | {summary['done']} | "
                 f"{summary['steps']:,} | {summary['examples']:,} | {_flops(summary)}")
    if not summary["flops_exact"]:
        lines.append("<=: an upper bound (small-dense runs priced as the full model)")
    seconds = summary["estimated_seconds"]
    if seconds is not None:
        lines.append(f"estimated wall time of what is left: {_hms(seconds)} on this machine "
                     f"({jax.device_count()} x {jax.devices()[0].device_kind}); "
                     "compilation not included")
    lines.append(f"experiment {summary['identity']}: nothing was written")
    return "\n".join(lines)


_STAGE_LABELS = {(PRUNE, "mask"): "mask (pruning)",
                 (TRAIN, "generation"): "generation run",
                 (TRAIN, "ticket"): "ticket (the source is the evaluation)",
                 (TICKET, "ticket"): "ticket (transferred)"}


def _flops(t: dict) -> str:
    return ("" if t["flops_exact"] else "<= ") + f"{t['flops']:.3g}"


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

