"""Replicate means against % remaining (log x, decreasing to the right, as in P0-P2).

One line per column (workdir, source, branch); several workdirs are overlaid with one
line style each. The shaded band is ±1 s.e. (`sem`), ±1 std (`std`) or the replicates'
min to max (`minmax`). Matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

import pathlib
from typing import Sequence

from jaxtickets.analysis.aggregate import Cell, Column
from jaxtickets.analysis.tables import column_names

BANDS = ("sem", "std", "minmax")
BAND_TEXT = {"sem": "±1 s.e.", "std": "±1 std", "minmax": "min–max"}
MARKERS = ("o", "s", "^", "D", "v")
LINESTYLES = ("-", "--", ":", "-.")


def _band(cell: Cell, band: str) -> tuple[float, float]:
    s = cell.stats
    if band == "sem":
        return s.mean - s.sem, s.mean + s.sem
    if band == "std":
        return s.mean - s.std, s.mean + s.std
    if band == "minmax":
        return s.min, s.max
    raise ValueError(f"band must be one of {BANDS}, got {band!r}")


def plot_vs_remaining(cells: Sequence[Cell], path: pathlib.Path, *, ylabel: str,
                      title: str, scale: float = 1.0, band: str = "sem") -> None:
    """Mean of `cells`' metric (x scale) against 100 x density, one line per column."""
    import matplotlib

    # A Figure of its own, not pyplot: no global backend switch (a notebook keeps its).
    from matplotlib.figure import Figure
    from matplotlib import ticker

    columns: list[Column] = list(dict.fromkeys(c.column for c in cells))
    names = column_names(columns)
    labels = list(dict.fromkeys(c.label for c in columns))
    series = list(dict.fromkeys((c.source, c.branch) for c in columns))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]

    crowded = len(columns) > 10  # legend beside the axes, markers tell colour repeats apart
    fig = Figure(figsize=(11, 5) if crowded else (7, 4.5))
    ax = fig.subplots()
    for column in columns:
        mine = sorted((c for c in cells if c.column == column), key=lambda c: c.level)
        x = [100 * c.density for c in mine]
        y = [scale * c.stats.mean for c in mine]
        lo, hi = zip(*(_band(c, band) for c in mine))
        index = series.index((column.source, column.branch))
        color = colors[index % len(colors)]
        marker = MARKERS[(index // len(colors)) % len(MARKERS)]
        style = LINESTYLES[labels.index(column.label) % len(LINESTYLES)]
        n = sorted({c.stats.n for c in mine})
        n_text = f"n={n[0]}" if len(n) == 1 else f"n={n[0]}–{n[-1]}"
        ax.plot(x, y, marker=marker, markersize=4, color=color, linestyle=style,
                label=f"{names[column]} ({n_text})")
        ax.fill_between(x, [scale * v for v in lo], [scale * v for v in hi], color=color,
                        alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.invert_xaxis()
    # Ticks at the levels' % remaining when there are few, else at 1, 2, 5 x 10^k.
    xs = sorted({float(f"{100 * c.density:.3g}") for c in cells})
    if len(xs) <= 12:
        ax.xaxis.set_major_locator(ticker.FixedLocator(xs))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
    else:
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("% of prunable weights remaining")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (mean, band {BAND_TEXT[band]})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if crowded:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format="png")
    tmp.replace(path)
