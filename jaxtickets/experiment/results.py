"""results.json, the per-level table printed at the end, and the accuracy plot.

The schema (one row per replicate x level x branch x draw) is documented in docs/results.md
and kept stable: reports and plots are made from it alone. `draw` numbers the independent
draws of a random control (`pruning.control_draws`); rows written before draws existed
have none and are draw 0, the run a single draw repeats exactly. Tables and plots average
a branch over all its rows, replicates and draws alike (P2's dashed lines: 15 runs).
"""

from __future__ import annotations

import pathlib
from collections import defaultdict

from jaxtickets import distributed
from jaxtickets.checkpoints import CheckpointError, read_json, write_json

RESULTS_FILE = "results.json"
PLOT_FILE = "accuracy_vs_remaining.png"
SCHEMA_VERSION = 1


def run_key(row: dict) -> tuple:
    """What identifies a run's row (or stage): (source, replicate, level, branch, draw)."""
    return (row["source"], row["replicate"], row["level"], row["branch"], row.get("draw", 0))


def write_results(workdir: pathlib.Path, experiment_id: str, rows: list[dict],
                  extra: dict) -> None:
    rows = sorted(rows, key=lambda r: (r.get("source_name", ""), r["replicate"], r["level"],
                                       r["branch"] != "ticket", r["branch"],
                                       r.get("draw", 0)))
    write_json(workdir / RESULTS_FILE, {"schema_version": SCHEMA_VERSION,
                                        "experiment": experiment_id, "rows": rows, **extra})


def write_merged(workdir: pathlib.Path, experiment_id: str, rows: list[dict],
                 stages: list[dict], extra: dict, plot: bool) -> dict:
    """Writes results.json with `rows` and `stages` merged into what it already holds for
    this experiment (by run_key), so an interrupted rerun never shrinks it; plots the
    rows if asked; returns the file as written."""
    stored = _stored(workdir, experiment_id)
    rows = _merged(stored, rows, "rows")
    write_results(workdir, experiment_id, rows,
                  {"stages": _merged(stored, stages, "stages"), **extra})
    if plot and rows:
        distributed.on_primary(lambda: plot_accuracy(rows, workdir / PLOT_FILE),
                               f"plotting {workdir / PLOT_FILE}")
    return read_json(workdir / RESULTS_FILE)


def _stored(workdir: pathlib.Path, experiment_id: str) -> dict:
    path = workdir / RESULTS_FILE
    try:
        stored = read_json(path) if path.exists() else {}
    except CheckpointError:
        return {}  # rebuilt from the stages' metrics.json files
    return stored if stored.get("experiment") == experiment_id else {}


def _merged(stored: dict, fresh: list[dict], field: str) -> list[dict]:
    merged = {run_key(r): r for r in stored.get(field, [])}
    merged.update({run_key(r): r for r in fresh})
    return list(merged.values())


def column(row: dict, rows: list[dict]) -> str:
    """The branch, prefixed by the source's name when the rows hold several sources."""
    several = len({r.get("source_name", r["source"]) for r in rows}) > 1
    name = row.get("source_name", row["source"])
    return f"{name} {row['branch']}" if several else row["branch"]


def _mean_by(rows: list[dict], key: str) -> dict[tuple[int, str], float]:
    groups: dict[tuple[int, str], list[float]] = defaultdict(list)
    for r in rows:
        groups[(r["level"], column(r, rows))].append(r[key])
    return {k: sum(v) / len(v) for k, v in groups.items()}


def format_table(rows: list[dict]) -> str:
    """% remaining and, per branch, early-stop and final test accuracy (replicate mean).
    Runs without a validation split stop at their last evaluation; a closing line says
    so, since their 'acc@stop' is then their final accuracy."""
    branches = list(dict.fromkeys(column(r, rows) for r in rows))
    density = {r["level"]: r["density"] for r in rows}
    early = _mean_by(rows, "early_stop_test_accuracy")
    final = _mean_by(rows, "test_accuracy")
    stop = _mean_by(rows, "early_stop_step")
    header = ["level", "% remaining"]
    for b in branches:
        header += [f"{b} acc@stop", f"{b} acc@end", f"{b} stop step"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for level in sorted(density):
        cells = [str(level), f"{100 * density[level]:.2f}"]
        for b in branches:
            if (level, b) in early:
                cells += [f"{100 * early[(level, b)]:.2f}", f"{100 * final[(level, b)]:.2f}",
                          f"{stop[(level, b)]:.0f}"]
            else:
                cells += ["-", "-", "-"]
        lines.append(" | ".join(cells))
    if any(r.get("early_stop_basis") == "last_evaluation" for r in rows):
        lines.append("early stop: the last evaluation (no validation split: "
                     "data.validation_size = 0)")
    return "\n".join(lines)


def plot_accuracy(rows: list[dict], path: pathlib.Path) -> None:
    """Test accuracy at early stop against % remaining (log x), one line per branch."""
    # A Figure of its own, not pyplot: no global backend switch (a notebook keeps its).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    early = _mean_by(rows, "early_stop_test_accuracy")
    density = {r["level"]: r["density"] for r in rows}
    for branch in dict.fromkeys(column(r, rows) for r in rows):
        levels = sorted(lv for lv, b in early if b == branch)
        ax.plot([100 * density[lv] for lv in levels],
                [100 * early[(lv, branch)] for lv in levels], marker="o", label=branch)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("% of prunable weights remaining")
    last = any(r.get("early_stop_basis") == "last_evaluation" for r in rows)
    ax.set_ylabel(f"test accuracy at early stop{' (last evaluation)' if last else ''} (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format="png")
    tmp.replace(path)


def sources_table(workdir: pathlib.Path, metric: str = "early_stop_test_accuracy") -> str:
    """P0's layout (rows: fraction remaining; columns: source and branch; mean ± s.e.)."""
    from jaxtickets.analysis import aggregate, tables

    cells = aggregate.aggregate([aggregate.load_results(workdir)], metric)
    return tables.markdown_table(cells, metric)
