"""Replicate statistics from `results.json` files (schema version 1) and nothing else.

A *column* is (label, source, branch): label names the workdir (its basename unless
given), source the data that found the mask (`labels:mnist`, later `rotnet:...`), branch
the control (`ticket`, `random_reinit`, ...). Rows of a table are pruning *levels*, grouped
by the integer level, never by float equality of densities. Each (column, level) cell
aggregates one metric over its runs: every replicate and, for a random control with
`pruning.control_draws` > 1, every draw (P2 averages 3 reinitializations x 5 trials = 15
runs per point): mean, standard deviation (ddof=1; 0 for one run), standard error
(std / sqrt(n)), min, max and n, the number of runs. A row without `draw` is draw 0.

Unknown row keys are ignored, so later additions to the schema (evaluations, FLOP counts)
do not break reports.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections import defaultdict
from typing import Iterable, Optional, Sequence

import numpy as np

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1
REQUIRED_ROW_KEYS = ("replicate", "level", "branch", "source", "density")
# Summed per column in the compute table when every row of the column has them.
COMPUTE_KEYS = ("wall_seconds", "examples_seen", "train_steps", "train_flops")
# A row's `early_stop_basis` (training/loop.py); rows written before the field existed
# all chose by validation loss, the only rule there was.
VALIDATION_LOSS, LAST_EVALUATION = "validation_loss", "last_evaluation"
BASIS_TEXT = {VALIDATION_LOSS: "min. validation loss", LAST_EVALUATION: "last evaluation"}


class ResultsError(ValueError):
    """A results.json that is missing, unreadable or not the expected schema; names the file."""


@dataclasses.dataclass(frozen=True, order=True)
class Column:
    label: str
    source: str
    branch: str


@dataclasses.dataclass
class Run:
    """One workdir's results: its label, the file read and its rows."""

    label: str
    path: pathlib.Path
    rows: list[dict]
    stages: list[dict]  # one per training run incl. levels without rows; else the rows


@dataclasses.dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    std: float
    sem: float
    min: float
    max: float


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (column, level): the metric's statistics and the level's mean densities.
    `replicates` and `draws` name the runs averaged, one entry each, in the same order
    (sorted by replicate, then draw)."""

    column: Column
    level: int
    density: float
    kernel_density: float
    remaining_weights: float
    replicates: tuple[int, ...]
    stats: Stats
    draws: tuple[int, ...] = ()


def load_results(workdir: str | pathlib.Path, label: Optional[str] = None) -> Run:
    """Reads WORKDIR/results.json; any problem raises ResultsError naming the file."""
    workdir = pathlib.Path(workdir)
    path = workdir / RESULTS_FILE
    if not path.is_file():
        raise ResultsError(f"{path}: no such file (is {workdir} a finished run's workdir?)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: not readable as JSON ({e})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {version!r}; this report reads "
                           f"version {SCHEMA_VERSION}")
    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ResultsError(f"{path}: 'rows' is missing or empty")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ResultsError(f"{path}: rows[{i}] is not an object")
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise ResultsError(f"{path}: rows[{i}] lacks {', '.join(missing)}")
    label = label if label is not None else (workdir.resolve().name or str(workdir))
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        stages = rows  # older results.json: only the evaluated levels are known
    return Run(label, path, rows, stages)


def column_of(run: Run, row: dict) -> Column:
    return Column(run.label, str(row["source"]), str(row["branch"]))


def _number(run: Run, i: int, row: dict, key: str) -> float:
    if key not in row:
        raise ResultsError(f"{run.path}: rows[{i}] has no {key!r}")
    value = row[key]
    if value is None and "validation" in key and row.get(
            "early_stop_basis") == LAST_EVALUATION:
        raise ResultsError(f"{run.path}: rows[{i}][{key!r}] is null: the run had no "
                           "validation split (data.validation_size = 0); report a test "
                           "or training metric")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsError(f"{run.path}: rows[{i}][{key!r}] = {value!r} is not a number")
    return float(value)


def early_stop_bases(runs: Sequence[Run]) -> list[str]:
    """The rules the runs' early_stop_* fields were chosen by, sorted: one unless some
    runs had a validation split and others none (data.validation_size = 0)."""
    return sorted({str(row.get("early_stop_basis", VALIDATION_LOSS))
                   for run in runs for row in run.rows})


def describe_early_stop(runs: Sequence[Run]) -> str:
    """'min. validation loss', 'last evaluation', or both joined by ' or ': what an
    early-stop metric of these runs means, for axis labels and table notes."""
    return " or ".join(BASIS_TEXT.get(b, b) for b in early_stop_bases(runs))


def stats(values: Sequence[float]) -> Stats:
    """mean, std (ddof=1; 0 for n=1), s.e. = std/sqrt(n), min, max, n."""
    a = np.asarray(values, dtype=np.float64)
    n = a.size
    if n == 0:
        raise ValueError("stats of no values")
    std = float(np.std(a, ddof=1)) if n > 1 else 0.0
    return Stats(n=n, mean=float(np.mean(a)), std=std, sem=std / math.sqrt(n),
                 min=float(np.min(a)), max=float(np.max(a)))


def column_order(columns: Iterable[Column], runs: Sequence[Run]) -> list[Column]:
    """Workdirs in the order given; within one, sources then branches (ticket first)."""
    label_index = {run.label: i for i, run in enumerate(runs)}
    return sorted(set(columns), key=lambda c: (label_index.get(c.label, len(runs)), c.source,
                                               c.branch != "ticket", c.branch))


def aggregate(runs: Sequence[Run], metric: str) -> list[Cell]:
    """One Cell per (column, level) present, columns ordered, levels ascending."""
    groups: dict[tuple[Column, int], list[tuple[int, dict, Run]]] = defaultdict(list)
    for run in runs:
        for i, row in enumerate(run.rows):
            level = row["level"]
            if isinstance(level, bool) or not isinstance(level, int):
                raise ResultsError(f"{run.path}: rows[{i}]['level'] = {level!r} is not an int")
            groups[(column_of(run, row), level)].append((i, row, run))
    order = {c: k for k, c in enumerate(column_order((c for c, _ in groups), runs))}
    cells = []
    for (column, level) in sorted(groups, key=lambda key: (order[key[0]], key[1])):
        members = sorted(groups[(column, level)],
                         key=lambda m: (m[1]["replicate"], m[1].get("draw", 0)))
        values = [_number(run, i, row, metric) for i, row, run in members]
        densities = [_number(run, i, row, "density") for i, row, run in members]
        kd = [float(row["kernel_density"]) for _, row, _ in members if "kernel_density" in row]
        rw = [float(row["remaining_weights"]) for _, row, _ in members
              if "remaining_weights" in row]
        cells.append(Cell(
            column=column, level=level, density=float(np.mean(densities)),
            kernel_density=float(np.mean(kd)) if len(kd) == len(members) else math.nan,
            remaining_weights=float(np.mean(rw)) if len(rw) == len(members) else math.nan,
            replicates=tuple(row["replicate"] for _, row, _ in members),
            stats=stats(values), draws=tuple(row.get("draw", 0) for _, row, _ in members)))
    return cells


@dataclasses.dataclass(frozen=True)
class Compute:
    """One column's cost: totals over all its rows (every level, replicate and draw);
    `runs` counts them, so per_replicate includes every draw a replicate trained."""

    column: Column
    replicates: int
    runs: int
    totals: dict  # key -> float, or nan when some row of the column lacks the key

    def per_replicate(self, key: str) -> float:
        return self.totals[key] / self.replicates


def compute(runs: Sequence[Run]) -> list[Compute]:
    """Per column: training runs, distinct replicates and the sums of COMPUTE_KEYS, over
    every trained run (`stages`: all IMP levels, evaluated or not)."""
    groups: dict[Column, list[tuple[int, dict, Run]]] = defaultdict(list)
    for run in runs:
        for i, row in enumerate(run.stages):
            groups[column_of(run, row)].append((i, row, run))
    out = []
    for column in column_order(groups, runs):
        members = groups[column]
        totals = {}
        for key in COMPUTE_KEYS:
            if all(key in row for _, row, _ in members):
                totals[key] = float(sum(_number(run, i, row, key) for i, row, run in members))
            else:
                totals[key] = math.nan
        out.append(Compute(column, len({row["replicate"] for _, row, _ in members}),
                           len(members), totals))
    return out
