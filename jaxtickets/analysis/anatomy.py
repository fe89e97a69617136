"""Anatomy of winning tickets (P2 App. F): what the masks keep, how weights move, wiring.

For each chosen level L of an IMP run, over every prunable layer (mask leaf not None):

* **surviving initial values** (F.1/F.2): the theta_0 values of the weights kept by level
  L's mask, as a per-layer histogram normalized to area 1 (`surviving_init`,
  `init_histograms`). P2 sees them turn bimodal as pruning proceeds.
* **movement** (F.5): with w_i = theta_0 and w_f = the final weights of the *dense* level-0
  run, |w_f - w_i| and |w_f| - |w_i| (growth away from 0) for the weights inside the
  level-L ticket (kept by its mask) vs outside it (`movement`). P2: ticket weights move
  more and grow. (With late rewinding theta_0 is still the start; the dense run starts
  there too.)
* **per-unit connectivity** (F.6): for each kernel, the fraction of each output unit's
  incoming weights kept and of each input unit's outgoing weights kept (`connectivity`).
  Dense kernels are [in, out]; conv kernels [kh, kw, in, out] are read per output / input
  channel (the spatial taps of a channel pair all count as its connections).

    python -m jaxtickets.analysis.anatomy --workdir DIR --levels 1,2 [--replicate 0] \
        [--bins 40] --out OUT

writes OUT/init_histograms.png, OUT/movement.png, OUT/connectivity.png (one figure per
analysis, one column per layer, rows per level) and OUT/anatomy.json (per level and
layer: kept/total, mean |init| of kept vs pruned, mean movement and growth inside vs
outside the ticket, connectivity statistics). Statistics of an empty set are null.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Optional, Sequence

import jax
import numpy as np

from jaxtickets import checkpoints
from jaxtickets.sparsity.masks import path_name

PyTree = Any
JSON_FILE = "anatomy.json"
INIT_PLOT = "init_histograms.png"
MOVEMENT_PLOT = "movement.png"
CONNECTIVITY_PLOT = "connectivity.png"


def _masked_layers(params: PyTree, mask: PyTree) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, param array, bool mask) for every prunable leaf (mask not None), tree order."""
    flat_p = {path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    out = []
    flat_m, _ = jax.tree_util.tree_flatten_with_path(mask, is_leaf=lambda x: x is None)
    for path, m in flat_m:
        if m is None:
            continue
        name = path_name(path)
        if name not in flat_p:
            raise ValueError(f"mask layer {name} has no parameter")
        p, m = np.asarray(flat_p[name]), np.asarray(m, dtype=bool)
        if p.shape != m.shape:
            raise ValueError(f"{name}: parameter shape {p.shape} != mask shape {m.shape}")
        out.append((name, p, m))
    return out


# ---- F.1: initial values of the surviving weights -------------------------------------------
def surviving_init(theta0_params: PyTree, mask: PyTree) -> dict[str, np.ndarray]:
    """Per prunable layer, the theta_0 values of exactly the kept weights (C order)."""
    return {name: p[m] for name, p, m in _masked_layers(theta0_params, mask)}


def pruned_init(theta0_params: PyTree, mask: PyTree) -> dict[str, np.ndarray]:
    """Per prunable layer, the theta_0 values of the pruned weights (C order)."""
    return {name: p[~m] for name, p, m in _masked_layers(theta0_params, mask)}


def init_edges(theta0_params: PyTree, mask: PyTree, bins: int = 40) -> dict[str, np.ndarray]:
    """Per layer, `bins` equal bins over [-max|theta_0|, max|theta_0|] of the whole layer,
    so that histograms of one layer at different levels share their bins."""
    out = {}
    for name, p, _ in _masked_layers(theta0_params, mask):
        r = float(np.max(np.abs(p))) if p.size else 1.0
        out[name] = np.linspace(-r, r, bins + 1) if r > 0 else np.linspace(-1, 1, bins + 1)
    return out


def init_histograms(theta0_params: PyTree, mask: PyTree, bins: int = 40,
                    edges: Optional[dict[str, np.ndarray]] = None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer (density, edges) of the kept weights' initial values, area 1 (all zeros
    when nothing is kept)."""
    edges = edges or init_edges(theta0_params, mask, bins)
    out = {}
    for name, values in surviving_init(theta0_params, mask).items():
        if values.size:
            density, e = np.histogram(values, edges[name], density=True)
        else:
            density, e = np.zeros(len(edges[name]) - 1), edges[name]
        out[name] = (density, e)
    return out


# ---- F.5: movement inside vs outside the ticket ---------------------------------------------
def movement(w_i: PyTree, w_f: PyTree, mask: PyTree) -> dict[str, dict[str, np.ndarray]]:
    """Per prunable layer: |w_f - w_i| ('abs_in', 'abs_out') and |w_f| - |w_i|
    ('growth_in', 'growth_out') for the weights kept ('in') or pruned ('out') by `mask`.

    w_i, w_f are params trees (theta_0 and the dense run's final weights)."""
    final = {name: p for name, p, _ in _masked_layers(w_f, mask)}
    out = {}
    for name, wi, m in _masked_layers(w_i, mask):
        wi64, wf64 = wi.astype(np.float64), final[name].astype(np.float64)
        delta = np.abs(wf64 - wi64)
        growth = np.abs(wf64) - np.abs(wi64)
        out[name] = {"abs_in": delta[m], "abs_out": delta[~m],
                     "growth_in": growth[m], "growth_out": growth[~m]}
    return out


# ---- F.6: per-unit connectivity --------------------------------------------------------------
def unit_connectivity(mask: np.ndarray) -> dict[str, np.ndarray]:
    """For one kernel mask with the input axis second-to-last and the output axis last
    (dense [in, out], conv [kh, kw, in, out]): 'incoming' = fraction kept of each output
    unit's incoming weights, shape [out]; 'outgoing' = fraction kept of each input unit's
    outgoing weights, shape [in]."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim < 2:
        raise ValueError(f"connectivity needs a kernel (ndim >= 2), got shape {m.shape}")
    axes = tuple(range(m.ndim))
    incoming = m.mean(axis=axes[:-1])
    outgoing = m.mean(axis=axes[:-2] + axes[-1:])
    return {"incoming": incoming, "outgoing": outgoing}


def connectivity(mask: PyTree) -> dict[str, dict[str, np.ndarray]]:
    """unit_connectivity for every prunable kernel of a mask tree."""
    flat, _ = jax.tree_util.tree_flatten_with_path(mask, is_leaf=lambda x: x is None)
    return {path_name(p): unit_connectivity(m) for p, m in flat
            if m is not None and np.ndim(m) >= 2}


# ---- summary ---------------------------------------------------------------------------------
def _mean(a: np.ndarray) -> Optional[float]:
    return float(np.mean(a)) if np.size(a) else None


def _describe(a: np.ndarray) -> dict:
    return {"min": float(np.min(a)), "mean": float(np.mean(a)), "max": float(np.max(a)),
            "std": float(np.std(a)), "units": int(np.size(a)),
            "units_with_none_kept": int(np.count_nonzero(a == 0))}


def level_summary(theta0_params: PyTree, dense_final_params: PyTree, mask: PyTree) -> dict:
    """Per prunable layer: the numbers anatomy.json holds for one level."""
    kept_init = surviving_init(theta0_params, mask)
    gone_init = pruned_init(theta0_params, mask)
    moves = movement(theta0_params, dense_final_params, mask)
    conn = connectivity(mask)
    layers = {}
    for name, values in kept_init.items():
        mv = moves[name]
        kept, total = int(values.size), int(values.size + gone_init[name].size)
        entry = {
            "kept": kept, "total": total, "density": kept / total if total else None,
            "mean_abs_init_kept": _mean(np.abs(values)),
            "mean_abs_init_pruned": _mean(np.abs(gone_init[name])),
            "mean_abs_movement_in": _mean(mv["abs_in"]),
            "mean_abs_movement_out": _mean(mv["abs_out"]),
            "mean_growth_in": _mean(mv["growth_in"]),
            "mean_growth_out": _mean(mv["growth_out"]),
            "fraction_growing_in": _mean(mv["growth_in"] > 0),
            "fraction_growing_out": _mean(mv["growth_out"] > 0),
        }
        if name in conn:
            entry["incoming"] = _describe(conn[name]["incoming"])
            entry["outgoing"] = _describe(conn[name]["outgoing"])
        layers[name] = entry
    kept = sum(e["kept"] for e in layers.values())
    total = sum(e["total"] for e in layers.values())
    return {"kept": kept, "total": total, "density": kept / total, "layers": layers}


# ---- plots -----------------------------------------------------------------------------------
def _grid(rows: int, cols: int):
    # A Figure of its own, not pyplot: no global backend switch (a notebook keeps its).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.4 * cols, 2.5 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _save(fig, path: pathlib.Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def plot_init_histograms(per_level: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]],
                         densities: dict[int, dict[str, float]], path: pathlib.Path) -> None:
    levels = sorted(per_level)
    layers = list(per_level[levels[0]])
    fig, axes = _grid(len(levels), len(layers))
    for r, level in enumerate(levels):
        for c, name in enumerate(layers):
            density, edges = per_level[level][name]
            ax = axes[r][c]
            ax.stairs(density, edges, fill=True, alpha=0.7)
            ax.set_title(f"level {level} {name}\n{100 * densities[level][name]:.1f}% kept",
                         fontsize=8)
            ax.tick_params(labelsize=7)
            if c == 0:
                ax.set_ylabel("density", fontsize=8)
            if r == len(levels) - 1:
                ax.set_xlabel("initial value", fontsize=8)
    fig.suptitle("initial values of the surviving weights (P2 App. F.1), area 1", fontsize=10)
    _save(fig, path)


def _overlay(ax, inside: np.ndarray, outside: np.ndarray, bins: int) -> None:
    both = np.concatenate([inside, outside])
    if both.size == 0:
        return
    lo, hi = float(both.min()), float(both.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-12, bins + 1)
    for values, label, color in ((inside, "in ticket", "C0"), (outside, "outside", "C3")):
        if values.size:
            d, _ = np.histogram(values, edges, density=True)
            ax.stairs(d, edges, label=f"{label} ({values.size})", color=color, fill=True,
                      alpha=0.45)


def plot_movement(per_level: dict[int, dict[str, dict[str, np.ndarray]]], path: pathlib.Path,
                  bins: int = 40) -> None:
    levels = sorted(per_level)
    layers = list(per_level[levels[0]])
    rows = [(level, kind) for level in levels for kind in ("abs", "growth")]
    fig, axes = _grid(len(rows), len(layers))
    label = {"abs": "|w_f - w_i|", "growth": "|w_f| - |w_i|"}
    for r, (level, kind) in enumerate(rows):
        for c, name in enumerate(layers):
            mv = per_level[level][name]
            ax = axes[r][c]
            _overlay(ax, mv[f"{kind}_in"], mv[f"{kind}_out"], bins)
            ax.set_title(f"level {level} {name}: {label[kind]}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
    fig.suptitle("movement from theta_0 to the dense run's final weights, inside vs outside "
                 "the ticket (P2 App. F.5), area 1", fontsize=10)
    _save(fig, path)


def plot_connectivity(per_level: dict[int, dict[str, dict[str, np.ndarray]]],
                      densities: dict[int, dict[str, float]], path: pathlib.Path,
                      bins: int = 25) -> None:
    levels = sorted(per_level)
    layers = list(per_level[levels[0]])
    rows = [(level, kind) for level in levels for kind in ("incoming", "outgoing")]
    fig, axes = _grid(len(rows), len(layers))
    edges = np.linspace(0, 1, bins + 1)
    for r, (level, kind) in enumerate(rows):
        for c, name in enumerate(layers):
            values = per_level[level][name][kind]
            ax = axes[r][c]
            counts, _ = np.histogram(values, edges)
            ax.stairs(100 * counts / max(values.size, 1), edges, fill=True, alpha=0.7)
            ax.axvline(densities[level][name], color="k", ls="--", lw=1)
            unit = "output" if kind == "incoming" else "input"
            ax.set_title(f"level {level} {name}: {kind}", fontsize=8)
            ax.set_xlabel(f"fraction kept per {unit} unit", fontsize=7)
            ax.tick_params(labelsize=7)
            if c == 0:
                ax.set_ylabel("% of units", fontsize=8)
    fig.suptitle("per-unit connectivity (P2 App. F.6); dashed: the layer's density",
                 fontsize=10)
    _save(fig, path)


# ---- CLI -------------------------------------------------------------------------------------
def analyze(workdir, levels: Sequence[int], replicate: int = 0, bins: int = 40,
            out: Optional[pathlib.Path] = None) -> dict:
    """Computes (and, with `out`, plots and writes) the anatomy of `levels` of one run."""
    from jaxtickets.analysis.artifacts import RunArtifacts

    art = RunArtifacts.open(workdir)
    levels = sorted(set(int(lv) for lv in levels))
    if not levels:
        raise ValueError("anatomy: no level chosen")
    theta0 = art.theta_0(replicate)["params"]
    dense_final = art.final(replicate, 0, "ticket")["params"]
    masks = {level: art.mask(replicate, level) for level in levels}
    edges = init_edges(theta0, masks[levels[0]], bins)
    hists, moves, conns, densities, summary = {}, {}, {}, {}, {}
    for level, mask in masks.items():
        hists[level] = init_histograms(theta0, mask, bins, edges)
        moves[level] = movement(theta0, dense_final, mask)
        conns[level] = connectivity(mask)
        summary[level] = level_summary(theta0, dense_final, mask)
        densities[level] = {name: e["density"] for name, e in summary[level]["layers"].items()}
    report = {"workdir": str(workdir), "model": art.config["model"]["name"],
              "dataset": art.config["data"]["dataset"], "replicate": replicate,
              "w_i": "theta_0", "w_f": "level 0 ticket final (dense)",
              "levels": {str(level): summary[level] for level in levels}}
    if out is not None:
        out = pathlib.Path(out)
        plot_init_histograms(hists, densities, out / INIT_PLOT)
        plot_movement(moves, out / MOVEMENT_PLOT, bins)
        plot_connectivity(conns, densities, out / CONNECTIVITY_PLOT)
        report["files"] = [INIT_PLOT, MOVEMENT_PLOT, CONNECTIVITY_PLOT]
        checkpoints.write_json(out / JSON_FILE, report)
    return report


def _parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--levels: expected '1,2,...', got {text!r}") from None
    if not levels or min(levels) < 0:
        raise argparse.ArgumentTypeError(f"--levels: expected levels >= 0, got {text!r}")
    return levels


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxtickets.analysis.anatomy",
        description="Winning-ticket anatomy (P2 App. F): surviving initial values, movement "
                    "inside vs outside the ticket, per-unit connectivity.")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--levels", type=_parse_levels, default=None,
                        help="comma-separated levels (default: every level > 0 on disk)")
    parser.add_argument("--replicate", type=int, default=0)
    parser.add_argument("--bins", type=int, default=40)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from jaxtickets.analysis.artifacts import RunArtifacts
    from jaxtickets.checkpoints import CheckpointError

    try:
        levels = args.levels
        if levels is None:
            levels = [lv for lv in RunArtifacts.open(args.workdir).levels(args.replicate)
                      if lv > 0]
            if not levels:
                raise ValueError(f"{args.workdir}: no pruned level on disk for replicate "
                                 f"{args.replicate}; pass --levels")
        report = analyze(args.workdir, levels, args.replicate, args.bins,
                         pathlib.Path(args.out))
    except (OSError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"anatomy of {report['model']}/{report['dataset']} replicate {args.replicate} "
          "(w_i = theta_0, w_f = dense level-0 final)")
    print("level | layer | kept | mean|init| kept | pruned | movement in | out | "
          "growth in | out")
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    for level, entry in report["levels"].items():
        for name, e in entry["layers"].items():
            print(f"{level} | {name} | {e['kept']}/{e['total']} | "
                  f"{fmt(e['mean_abs_init_kept'])} | {fmt(e['mean_abs_init_pruned'])} | "
                  f"{fmt(e['mean_abs_movement_in'])} | {fmt(e['mean_abs_movement_out'])} | "
                  f"{fmt(e['mean_growth_in'])} | {fmt(e['mean_growth_out'])}")
    print(f"wrote {', '.join(report['files'] + [JSON_FILE])} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
