"""The executor's side of lanes (runtime.lanes): which stages run together, and which
of their runs train side by side as one program (training/lanes.py).

The plan is run in waves. A wave takes, from every (source, replicate), the stages of
its next level whose inputs have run: a level's prune stage and, after it, the
level's own run, ticket and controls (the dense level 0 first, then its controls,
which read its rewind weights). Stages of different replicates and sources never
read each other's outputs, so a wave's runs are independent. The executor runs a
wave's prune stages, then collects the runs its other stages would train
(Experiment.train in collecting mode records the run and raises Deferred), trains
those that can share a program as lanes, writing each run's usual outputs, and then
runs the stages in plan order as the sequential executor would: each finds its
run's outputs and loads them, so rows, files and resumption are the same either way.

A run trains alone (in the stage's own turn) when it cannot be a lane: data streamed
from the host, FSDP, a value mask (P4's mask-0 actions), a branch with its own
training loop (learned supermasks), or nothing to share a group with.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
from typing import Any, Optional

import jax
import numpy as np

from jaxtickets.config_schema import parse_lanes
from jaxtickets.experiment.plan import PRUNE, Stage, StageKey
from jaxtickets.training.batches import DeviceSplit

PyTree = Any
# runtime.lanes = auto on an accelerator: the memory left after this share of the
# device's free memory is the margin for XLA's own buffers and fragmentation.
MEMORY_SHARE = 0.8


class Deferred(Exception):
    """Raised by Experiment.train while collecting: the run is recorded, not trained."""


@dataclasses.dataclass
class TrainRequest:
    """One run a stage asks Experiment.train for."""

    setup: Any                    # experiment.setup.Setup
    run_dir: pathlib.Path
    label: str
    weights: PyTree
    start_step: int
    mask: PyTree
    replicate: int
    capture_path: Optional[pathlib.Path]
    values: PyTree = None


def lane_cap(setting: str, backend: str) -> int:
    """The most lanes of a group before memory is considered: 1 on CPU for 'auto'
    (lanes measured slower there: BENCHMARKS.md, lanes), unbounded on accelerators,
    where each group is bounded by memory (lanes_that_fit)."""
    cap = parse_lanes(setting)
    if cap is not None:
        return cap
    return 1 if backend == "cpu" else 2 ** 31


def lane_capable(request: TrainRequest) -> bool:
    return (request.values is None and isinstance(request.setup.train, DeviceSplit)
            and not request.setup.fsdp and request.setup.steps.train_lanes is not None)


def stage_queues(plan: list[Stage]) -> dict[tuple[str, int], collections.deque]:
    """Every (source, replicate)'s stages, in plan order."""
    queues: dict[tuple[str, int], collections.deque] = {}
    for stage in plan:
        queues.setdefault((stage.key.source, stage.key.replicate),
                          collections.deque()).append(stage)
    return queues


def next_wave(queues: dict[tuple[str, int], collections.deque],
              ran: set[StageKey]) -> list[Stage]:
    """Takes the next wave's stages off the queues: per (source, replicate), the
    leading stages of one level whose inputs have run or are the wave's prune stages
    (which run first)."""
    wave: list[Stage] = []
    for queue in queues.values():
        level, pruned = None, set()
        while queue:
            stage = queue[0]
            if level is not None and stage.key.level != level:
                break
            if not all(key in ran or key in pruned for key in stage.inputs):
                break
            level = stage.key.level
            if stage.kind == PRUNE:
                pruned.add(stage.key)
            wave.append(queue.popleft())
    if not wave and any(queues.values()):
        stuck = next(q[0] for q in queues.values() if q)
        raise RuntimeError(f"plan error: stage {stuck.key} reads {stuck.inputs}, which "
                           "no earlier stage produces")
    return wave


def groups(keyed: list[tuple[Any, Any]], sizes: dict[Any, int]) -> list[list[Any]]:
    """Items with equal keys in groups of at most sizes[key] (order kept); groups of a
    key are as even as possible, so a split group compiles few lane counts."""
    by_key: dict[Any, list[Any]] = {}
    for key, item in keyed:
        by_key.setdefault(key, []).append(item)
    out = []
    for key, items in by_key.items():
        count = -(-len(items) // max(sizes[key], 1))
        base, extra = divmod(len(items), count)
        start = 0
        for g in range(count):
            size = base + (g < extra)
            out.append(items[start:start + size])
            start += size
    return out


def lanes_that_fit(free_bytes: int, per_lane_bytes: int) -> int:
    """How many lanes fit in MEMORY_SHARE of `free_bytes` (at least 1: a lone run is
    what the sequential executor would try)."""
    return max(1, int(free_bytes * MEMORY_SHARE) // max(per_lane_bytes, 1))


def memory_fit(steps, stacked_one_lane, train: DeviceSplit, chunk_idx) -> Optional[int]:
    """Lanes of this step that fit on the device, from its free memory and the compiled
    one-lane program's footprint (state arguments, outputs and temporaries; the shared
    data are already on the device). None where the device reports no memory (CPU)."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if not stats or "bytes_limit" not in stats:
        return None
    compiled = steps.train_lanes.lower(stacked_one_lane, train.images, train.labels,
                                       chunk_idx, np.int32(1)).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    data_bytes = train.images.nbytes + train.labels.nbytes
    per_lane = (analysis.argument_size_in_bytes - data_bytes + analysis.output_size_in_bytes
                + analysis.temp_size_in_bytes)
    free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    return lanes_that_fit(free, per_lane)
