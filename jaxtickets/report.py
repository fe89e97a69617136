"""Tables and plots over replicates from finished runs' results.json files.

    python -m jaxtickets.report --workdir DIR [--workdir DIR2 ...] [--label NAME ...] \\
        --out OUT [--metric early_stop_test_accuracy] [--band sem|std|minmax]

Reads only each DIR/results.json (schema version 1) and writes to OUT:

* table.md    P0's layout: rows = fraction of prunable weights remaining (per level),
              columns = (workdir label,) source, branch; cells "mean ± s.e." (accuracies in %)
* table.csv   one line per (column, level): density, n, mean, std (ddof=1), sem, min, max
* accuracy_vs_remaining.png   the metric's mean vs % remaining (log x), band per --band
* early_stop_vs_remaining.png early-stop step vs % remaining (P2 Fig. 4a)
* compute.md, compute.csv     per column: wall seconds, examples, train steps (and
              train_flops where rows carry it), totals over all rows and per replicate

A missing or unreadable results.json stops with a message naming it and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from typing import Optional, Sequence

from jaxtickets.analysis import aggregate, plots, tables

EARLY_STOP_KEY = "early_stop_step"
OUTPUTS = ("table.md", "table.csv", "accuracy_vs_remaining.png",
           "early_stop_vs_remaining.png", "compute.md", "compute.csv")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jaxtickets.report",
        description="Replicate tables (P0 layout), plots and compute totals from "
                    "results.json files.")
    p.add_argument("--workdir", action="append", required=True, metavar="DIR",
                   help="a finished run's workdir (repeat to overlay several)")
    p.add_argument("--label", action="append", default=None, metavar="NAME",
                   help="name for each --workdir, in order (default: its basename)")
    p.add_argument("--out", required=True, metavar="OUT", help="output directory")
    p.add_argument("--metric", default="early_stop_test_accuracy",
                   help="row key to tabulate and plot (default: %(default)s)")
    p.add_argument("--band", choices=plots.BANDS, default="sem",
                   help="plot band: ±1 s.e., ±1 std or min-max (default: %(default)s)")
    p.add_argument("--branch", action="append", default=[], metavar="NAME",
                   help="only rows of this branch (repeat for several; default: all)")
    p.add_argument("--level", action="append", type=int, default=[], metavar="L",
                   help="also write level_L.md: that level with a row per source and a "
                        "column per branch (repeat for several levels)")
    return p


def _ylabel(metric: str, basis: str = "") -> str:
    """The metric's axis label; `basis` names the early-stopping rule where it is not
    P2's minimum validation loss (runs without a validation split stop at the last
    evaluation, so their 'early stop' is the end of training)."""
    if metric == "early_stop_test_accuracy":
        return f"test accuracy at early stop{f' ({basis})' if basis else ''} (%)"
    return f"{metric} (%)" if tables.is_percent(metric) else metric


def _early_stop_note(runs: Sequence[aggregate.Run], metric: str) -> str:
    """A table note for early_stop_* metrics of runs without a validation split, whose
    early stop is the last evaluation; none where every run chose by validation loss
    (P2's rule, docs/results.md)."""
    if not metric.startswith("early_stop_") or aggregate.early_stop_bases(runs) == [
            aggregate.VALIDATION_LOSS]:
        return ""
    return (f"Early stop: {aggregate.describe_early_stop(runs)} (`early_stop_basis`): a run "
            "without a validation split (data.validation_size = 0) stops at its last "
            "evaluation.\n")


def make_report(workdirs: Sequence[str], out: str | pathlib.Path,
                labels: Optional[Sequence[str]] = None,
                metric: str = "early_stop_test_accuracy", band: str = "sem",
                levels: Sequence[int] = (), branches: Sequence[str] = ()) -> dict:
    """Writes every output; returns {name: path}. Raises ResultsError for bad inputs."""
    if labels and len(labels) != len(workdirs):
        raise aggregate.ResultsError(f"{len(labels)} --label for {len(workdirs)} --workdir; "
                                     "give one label per workdir or none")
    runs = [aggregate.load_results(w, labels[i] if labels else None)
            for i, w in enumerate(workdirs)]
    seen: dict[str, pathlib.Path] = {}
    for run in runs:
        if run.label in seen:
            raise aggregate.ResultsError(
                f"{seen[run.label]} and {run.path} have the same label {run.label!r}; "
                "name them with --label")
        seen[run.label] = run.path
    sources = [str(run.path) for run in runs]
    if branches:
        runs = [_only_branches(run, branches) for run in runs]

    cells = aggregate.aggregate(runs, metric)
    computes = aggregate.compute(runs)
    level_texts = {}
    for level in levels:  # checked before anything is written
        try:
            level_texts[f"level_{level}.md"] = tables.level_markdown(cells, metric, level)
        except ValueError as err:
            raise aggregate.ResultsError(f"--level {level}: {err}") from err
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in OUTPUTS}
    paths["table.md"].write_text(tables.markdown_table(cells, metric, sources)
                                 + _early_stop_note(runs, metric))
    paths["table.csv"].write_text(tables.cells_csv(cells, metric))
    paths["compute.md"].write_text(tables.compute_markdown(computes, sources))
    paths["compute.csv"].write_text(tables.compute_csv(computes))
    for name, text in level_texts.items():
        paths[name] = out / name
        paths[name].write_text(text)
    scale = 100.0 if tables.is_percent(metric) else 1.0
    basis = aggregate.describe_early_stop(runs)
    p2_rule = aggregate.early_stop_bases(runs) == [aggregate.VALIDATION_LOSS]
    plots.plot_vs_remaining(cells, paths["accuracy_vs_remaining.png"],
                            ylabel=_ylabel(metric, "" if p2_rule else basis),
                            title=metric, scale=scale, band=band)
    stop_cells = aggregate.aggregate(runs, EARLY_STOP_KEY)
    plots.plot_vs_remaining(stop_cells, paths["early_stop_vs_remaining.png"],
                            ylabel=f"early-stop step ({basis})",
                            title=EARLY_STOP_KEY, band=band)
    return paths


def _only_branches(run: aggregate.Run, branches: Sequence[str]) -> aggregate.Run:
    keep = lambda rows: [r for r in rows if r.get("branch") in branches]  # noqa: E731
    if not keep(run.rows):
        raise aggregate.ResultsError(f"{run.path}: no rows of branch {', '.join(branches)} "
                                     f"(branches: {sorted({r['branch'] for r in run.rows})})")
    return dataclasses.replace(run, rows=keep(run.rows), stages=keep(run.stages))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        paths = make_report(args.workdir, args.out, args.label, args.metric, args.band,
                            args.level, args.branch)
    except aggregate.ResultsError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    print(paths["table.md"].read_text())
    print(paths["compute.md"].read_text())
    for level in args.level:
        print(paths[f"level_{level}.md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
