"""Tables in P0's layout (rows = fraction remaining, columns = source/branch) and CSVs.

Markdown cells are "mean ± s.e." (accuracies in percent with 2 decimals, as P0's Tables
2-8) over a cell's runs, replicates and draws of a random control alike; a single run
shows the mean alone. The CSVs are long format (one line per (column, level) or per
column) with every statistic at full float precision, so that other tools can read
them; an empty CSV field means "not available". A cell line's `replicates` and `draws`
list the runs averaged, pairwise.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from typing import Sequence

import numpy as np

from jaxtickets.analysis.aggregate import COMPUTE_KEYS, Cell, Column, Compute

MISSING = "-"


def is_percent(metric: str) -> bool:
    """Accuracies are shown in percent; any other metric as it is stored."""
    return "accuracy" in metric


def format_density(d: float) -> str:
    """P0's 'Remaining' column: 1, 0.8, 0.64, 0.512, 0.410, ..., 0.001.

    Three decimals, trailing zeros dropped only where the value is exact to three decimals
    (so 0.8^4 = 0.4096 shows as 0.410, as in P0); below 0.001, three significant digits so
    that deep levels stay distinct.
    """
    if d == 0:
        return "0"
    if d >= 0.001:
        rounded = round(d, 3)
        text = f"{rounded:.3f}"
        if abs(rounded - d) <= 1e-9 * max(1.0, abs(d)):
            text = text.rstrip("0").rstrip(".")
        return text
    return np.format_float_positional(d, precision=3, fractional=False, unique=False,
                                      trim="k")


def format_value(value: float, metric: str) -> str:
    if is_percent(metric):
        return f"{100 * value:.2f}"
    if abs(value) >= 1e4 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_cell(cell: Cell, metric: str) -> str:
    """'mean ± s.e.' (one run: the mean alone)."""
    s = cell.stats
    if s.n == 1:
        return format_value(s.mean, metric)
    return f"{format_value(s.mean, metric)} ± {format_value(s.sem, metric)}"


def column_names(columns: Sequence[Column]) -> dict[Column, str]:
    """Only the parts that differ between columns: label (several workdirs), source, branch."""
    show_label = len({c.label for c in columns}) > 1
    show_source = len({c.source for c in columns}) > 1
    show_branch = len({c.branch for c in columns}) > 1 or not (show_label or show_source)
    names = {}
    for c in columns:
        parts = ([c.label] if show_label else []) + ([c.source] if show_source else []) + (
            [c.branch] if show_branch else [])
        names[c] = " ".join(parts)
    return names


def _columns(cells: Sequence[Cell]) -> list[Column]:
    seen: dict[Column, None] = {}
    for cell in cells:
        seen.setdefault(cell.column, None)
    return list(seen)


def _n_text(ns: Sequence[int]) -> str:
    lo, hi = min(ns), max(ns)
    return f"n={lo}" if lo == hi else f"n={lo}–{hi}"


def markdown_table(cells: Sequence[Cell], metric: str, sources: Sequence[str] = ()) -> str:
    """P0's layout: | Remaining | Level | column... | with 'mean ± s.e.' cells."""
    columns = _columns(cells)
    names = column_names(columns)
    by_key = {(c.column, c.level): c for c in cells}
    levels = sorted({c.level for c in cells})
    ns: dict[Column, list[int]] = defaultdict(list)
    for c in cells:
        ns[c.column].append(c.stats.n)

    unit = "%, " if is_percent(metric) else ""
    drawn = any(d for c in cells for d in c.draws)
    over = "replicates x draws" if drawn else "replicates"
    lines = [f"**{metric}** ({unit}mean ± s.e. over {over}; n = runs per cell)", ""]
    header = ["Remaining", "Level"] + [f"{names[c]} ({_n_text(ns[c])})" for c in columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    notes = []
    for level in levels:
        present = [by_key[(c, level)] for c in columns if (c, level) in by_key]
        texts = list(dict.fromkeys(format_density(cell.density) for cell in present))
        if len(texts) > 1:
            notes.append(f"Level {level}: the columns' fractions remaining differ "
                         f"({' / '.join(texts)}, in column order).")
        row = [" / ".join(texts), str(level)]
        row += [format_cell(by_key[(c, level)], metric) if (c, level) in by_key else MISSING
                for c in columns]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    fixed = []
    if len({c.label for c in columns}) == 1:
        fixed.append(f"run `{columns[0].label}`")
    if len({c.source for c in columns}) == 1:
        fixed.append(f"source `{columns[0].source}`")
    if len({c.branch for c in columns}) == 1 and len(columns) > 1:
        fixed.append(f"branch `{columns[0].branch}`")
    if fixed:
        lines.append("All columns: " + ", ".join(fixed) + ".")
    lines.append("Remaining: fraction of the prunable weights remaining (`density`), "
                 f"averaged over {over}; rows are pruning levels. "
                 f"s.e. = std (ddof=1) / sqrt(n); `{MISSING}`: no runs.")
    lines.extend(notes)
    if sources:
        lines.append("From: " + ", ".join(f"`{s}`" for s in sources) + ".")
    return "\n".join(lines) + "\n"


def level_markdown(cells: Sequence[Cell], metric: str, level: int) -> str:
    """One level as a comparison table: a row per (workdir, source), a column per branch,
    'mean ± s.e. (n)' cells: the view for controls and criteria side by side."""
    at = [c for c in cells if c.level == level]
    if not at:
        raise ValueError(f"no rows at level {level} (levels: "
                         f"{sorted({c.level for c in cells})})")
    show_label = len({c.column.label for c in at}) > 1
    rows = list(dict.fromkeys((c.column.label, c.column.source) for c in at))
    branches = list(dict.fromkeys(c.column.branch for c in at))
    by_key = {(c.column.label, c.column.source, c.column.branch): c for c in at}
    unit = "%, " if is_percent(metric) else ""
    densities = list(dict.fromkeys(format_density(c.density) for c in at))
    over = "replicates x draws" if any(d for c in at for d in c.draws) else "replicates"
    lines = [f"**{metric}** at level {level} ({unit}mean ± s.e. over {over} (n runs); "
             f"fraction remaining {' / '.join(densities)})", "",
             "| " + " | ".join(["source"] + branches) + " |", "|" + "---|" * (len(branches) + 1)]
    for label, source in rows:
        name = f"{label} {source}" if show_label else source
        texts = [f"{format_cell(by_key[(label, source, b)], metric)} "
                 f"({by_key[(label, source, b)].stats.n})"
                 if (label, source, b) in by_key else MISSING for b in branches]
        lines.append("| " + " | ".join([name] + texts) + " |")
    return "\n".join(lines) + "\n"


def _csv_float(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(
        float(value))


CELL_FIELDS = ["label", "source", "branch", "level", "density", "kernel_density",
               "remaining_weights", "metric", "n", "mean", "std", "sem", "min", "max",
               "replicates", "draws"]


def cells_csv(cells: Sequence[Cell], metric: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CELL_FIELDS)
    for c in cells:
        s = c.stats
        writer.writerow([c.column.label, c.column.source, c.column.branch, c.level,
                         _csv_float(c.density), _csv_float(c.kernel_density),
                         _csv_float(c.remaining_weights), metric, s.n, _csv_float(s.mean),
                         _csv_float(s.std), _csv_float(s.sem), _csv_float(s.min),
                         _csv_float(s.max), ";".join(str(r) for r in c.replicates),
                         ";".join(str(d) for d in c.draws)])
    return out.getvalue()


COMPUTE_LABELS = {"wall_seconds": "wall s", "examples_seen": "examples",
                  "train_steps": "train steps", "train_flops": "train FLOPs"}


def _fmt_total(value: float, key: str) -> str:
    if math.isnan(value):
        return MISSING
    if key == "wall_seconds":
        return f"{value:,.1f}"
    if key == "train_flops":
        return f"{value:.3e}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _cost_key(computes: Sequence[Compute]) -> str:
    """FLOPs when every column has them, else examples processed."""
    if all(not math.isnan(c.totals["train_flops"]) for c in computes):
        return "train_flops"
    return "examples_seen"


def compute_markdown(computes: Sequence[Compute], sources: Sequence[str] = ()) -> str:
    names = column_names([c.column for c in computes])
    keys = [k for k in COMPUTE_KEYS if k != "train_flops" or
            any(not math.isnan(c.totals[k]) for c in computes)]
    cost = _cost_key(computes)
    header = ["column", "replicates", "runs"]
    for k in keys:
        header += [f"{COMPUTE_LABELS[k]} (total)", f"{COMPUTE_LABELS[k]} / replicate"]
    header.append(f"{COMPUTE_LABELS[cost]} / replicate vs first")
    lines = ["**Compute** (summed over every row: all levels and replicates of a column)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = computes[0].per_replicate(cost) if computes else math.nan
    for c in computes:
        row = [names[c.column], str(c.replicates), str(c.runs)]
        for k in keys:
            row += [_fmt_total(c.totals[k], k), _fmt_total(c.per_replicate(k), k)]
        ratio = c.per_replicate(cost) / base if base and not math.isnan(base) else math.nan
        row.append(MISSING if math.isnan(ratio) else f"{ratio:.3f}x")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "runs: training runs (rows of results.json); a replicate's total covers "
              "every level of IMP (finding the ticket) or of the control branch. "
              "`train_flops`, where rows carry it, is the total a run spent. "
              f"`{MISSING}`: some row of the column lacks the field."]
    if sources:
        lines.append("From: " + ", ".join(f"`{s}`" for s in sources) + ".")
    return "\n".join(lines) + "\n"


COMPUTE_FIELDS = (["label", "source", "branch", "replicates", "runs"]
                  + [f"{p}_{k}" for k in COMPUTE_KEYS for p in ("total", "per_replicate")])


def compute_csv(computes: Sequence[Compute]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COMPUTE_FIELDS)
    for c in computes:
        row = [c.column.label, c.column.source, c.column.branch, c.replicates, c.runs]
        for k in COMPUTE_KEYS:
            row += [_csv_float(c.totals[k]), _csv_float(c.per_replicate(k))]
        writer.writerow(row)
    return out.getvalue()
