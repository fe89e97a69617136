"""Lanes: independent runs trained side by side as one compiled program.

The runs of a group share a model, optimizer, data, schedule and their position in it
(start, end and the step they resume from); their train states are stacked on a
leading lane axis and the compiled chunk is `jax.vmap`ped over it
(CompiledSteps.train_lanes). Each lane keeps what makes it its own run: its batch
order (its indices are gathered per lane), its random stream (in its state), its
mask, its evaluation history and early stopping, its run log and step checkpoints.
A lane's results are those of the same run trained alone (train_run) up to float
reduction order: XLA may sum a batched matmul in another order.

Every lane is evaluated in one call per evaluation chunk (CompiledSteps.eval_lanes),
and the host reads the lanes' sums once per evaluation.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import jax
import numpy as np

from jaxtickets.checkpoints import StepCheckpoints
from jaxtickets.parallel import replicated, to_host
from jaxtickets.sparsity.masks import remaining_and_total
from jaxtickets.training.batches import BatchOrder, DeviceSplit, device_indices
from jaxtickets.training.loop import (CALLS_IN_FLIGHT, Progress, RunOutcome, RunPlan,
                                     RunStart, _device_eval_chunks, _stops, check_finite,
                                     evaluation_record, log_entry, mean_train_loss,
                                     new_interval)
from jaxtickets.training.run_log import RunLog
from jaxtickets.training.state import TrainState
from jaxtickets.training.steps import CompiledSteps


@dataclasses.dataclass
class Lane:
    """One run of a group: what train_run would be given, with its start resolved."""

    plan: RunPlan
    order: BatchOrder
    start: RunStart
    on_capture: Optional[Callable[[TrainState], None]] = None


def schedule_key(lane: Lane) -> tuple:
    """Runs with equal keys (and the same compiled steps) can share a group: they stop
    for evaluations, checkpoints and the capture at the same steps."""
    p = lane.plan
    return (lane.start.step, p.start_step, p.end_step, p.eval_every, p.checkpoint_every,
            p.capture_step)


def stack(states: list[TrainState], mesh) -> TrainState:
    """The states on a leading lane axis, replicated over the mesh like one state."""
    host = jax.tree_util.tree_map(lambda *xs: np.stack([to_host(x) for x in xs]), *states)
    return jax.device_put(host, replicated(mesh))


_take = {}


def lane_of(stacked, index: int, mesh):
    """Lane `index` of a stacked tree, on the devices as a run's own state would be."""
    if mesh not in _take:
        _take[mesh] = jax.jit(lambda tree, i: jax.tree_util.tree_map(lambda x: x[i], tree),
                              out_shardings=replicated(mesh))
    return _take[mesh](stacked, np.int32(index))


def train_lanes(lanes: list[Lane], steps: CompiledSteps, train: DeviceSplit,
                validation: DeviceSplit, test: DeviceSplit, eval_batch: int,
                progress: Progress) -> list[RunOutcome]:
    """Trains every lane to its plan's end; returns each lane's outcome in order.

    The lanes must share a schedule_key. Checkpoints are saved lane by lane at the same
    steps, so a kill leaves each lane resumable alone or in any later group."""
    keys = {schedule_key(lane) for lane in lanes}
    if len(keys) != 1:
        raise ValueError(f"lanes of one group must share their schedule; got {keys}")
    n, mesh, first = len(lanes), steps.mesh, lanes[0].plan
    step = lanes[0].start.step
    label = f"{first.label} (+{n - 1} lanes)"
    checkpoints = [StepCheckpoints(lane.plan.directory / "steps") for lane in lanes]
    logs = [RunLog(lane.plan.directory, step if lane.start.resumed else None)
            for lane in lanes]
    for lane in lanes:
        if lane.start.resumed:
            progress.update(label, step, first.end_step, step - first.start_step, {},
                            force=True)
        elif lane.on_capture and first.capture_step == step:
            lane.on_capture(lane.start.state)
    densities = [_density(lane.start.state) for lane in lanes]
    histories = [list(lane.start.history) for lane in lanes]
    started = time.time()

    def wall(i: int) -> float:
        """A lane's share of the group's time (the lanes' walls add up to it)."""
        return lanes[i].start.wall_seconds + (time.time() - started) / n

    state = stack([lane.start.state for lane in lanes], mesh)
    intervals = [new_interval() for _ in lanes]
    for stop in _stops(first):
        if stop <= step:
            continue
        pending = []
        while step < stop:
            count = min(stop - step, steps.steps_per_call)
            idx = np.stack([lane.order.indices(step, count, steps.steps_per_call)
                            for lane in lanes])
            state, out = steps.train_lanes(state, train.images, train.labels,
                                           device_indices(idx, mesh, 2), np.int32(count))
            pending.append((out, count))
            if len(pending) > CALLS_IN_FLIGHT:
                jax.block_until_ready(pending[-CALLS_IN_FLIGHT - 1][0]["losses"])
            step += count
            progress.update(label, step, first.end_step, count * n, {})
        _add_lane_metrics(intervals, pending)
        if step == first.capture_step:
            for i, lane in enumerate(lanes):
                if lane.on_capture is not None:
                    lane.on_capture(lane_of(state, i, mesh))
        if step % first.eval_every == 0 or step == first.end_step:
            records = _evaluate_lanes(state, steps, validation, test, eval_batch, intervals,
                                      step, [lane.plan.label for lane in lanes])
            for i, record in enumerate(records):
                histories[i].append(record)
                logs[i].write(log_entry(record, densities[i], intervals[i], steps))
            intervals = [new_interval() for _ in lanes]
            progress.update(label, step, first.end_step, 0, records[0],
                            force=step == first.end_step)
        if step % first.checkpoint_every == 0 and step < first.end_step:
            for i in range(n):
                checkpoints[i].save(step, lane_of(state, i, mesh),
                                    {"history": histories[i], "wall_seconds": wall(i)})
    for closing in checkpoints + logs:
        closing.close()
    return [RunOutcome(lane_of(state, i, mesh), histories[i], wall(i)) for i in range(n)]


def _density(state: TrainState) -> float:
    remaining, total = remaining_and_total(state.mask)
    return remaining / total


def _add_lane_metrics(intervals: list[dict], pending: list[tuple[dict, int]]) -> None:
    """training/loop.py's _add_chunk_metrics for every lane: one transfer, then each
    lane's losses summed in step order (the order a lone run sums them in)."""
    fetched = jax.device_get([out for out, _ in pending])
    for out, (_, count) in zip(fetched, pending):
        losses = np.asarray(out["losses"])
        for i, interval in enumerate(intervals):
            for loss in losses[i, :count]:
                interval["loss_sum"] += float(loss)
            interval["correct"] += int(out["correct"][i])
            interval["count"] += int(out["count"][i])
            interval["steps"] += count


def _evaluate_lanes(state: TrainState, steps: CompiledSteps, validation: DeviceSplit,
                    test: DeviceSplit, eval_batch: int, intervals: list[dict], step: int,
                    labels: list[str]) -> list[dict]:
    """Every lane's evaluation record; a diverged lane stops the group (DivergenceError
    naming it) before anything is written, as a lone run would."""
    params = jax.device_get(state.params)
    for i, interval in enumerate(intervals):
        check_finite(jax.tree_util.tree_map(lambda x: x[i], params),
                     mean_train_loss(interval), step, interval["steps"], steps, labels[i])
    val = (_split_metrics(state, steps, validation, eval_batch) if validation.size
           else [{"loss": None, "accuracy": None}] * len(intervals))
    tst = _split_metrics(state, steps, test, eval_batch)
    return [evaluation_record(step, interval, val[i], tst[i])
            for i, interval in enumerate(intervals)]


def _split_metrics(state: TrainState, steps: CompiledSteps, split: DeviceSplit,
                   batch: int) -> list[dict]:
    """Each lane's loss and accuracy over the split: one call per chunk for all lanes,
    the chunk sums added per lane in chunk order (as evaluate adds a lone run's)."""
    outputs = []
    for idx, weights in _device_eval_chunks(split.size, batch, steps.mesh):
        outputs.append(steps.eval_lanes(state.params, state.batch_stats, state.visible_mask,
                                        split.images, split.labels, idx, weights))
        if len(outputs) > CALLS_IN_FLIGHT:
            jax.block_until_ready(outputs[-CALLS_IN_FLIGHT - 1])
    totals = [{"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
              for _ in range(state.step.shape[0])]
    for out in jax.device_get(outputs):
        for i, total in enumerate(totals):
            for k in total:
                total[k] += float(out[k][i])
    for total in totals:
        assert int(total["count"]) == split.size, "evaluation must see every example once"
    return [{"loss": t["loss_sum"] / split.size, "accuracy": t["correct"] / split.size}
            for t in totals]
