"""Natural sparsity of trained networks (P0 Sec. 4.5, App. D, Figs. 6 and 9).

P0 sorts the weight magnitudes of a trained network on a log axis and counts the
weights below "machine precision" as naturally zero, "not considering the batch-norm
layers parameters, nor the parameters of the last fully-connected layer".

Which parameters are counted (decided here, since P0 leaves it open):

* **normalization parameters are never counted**: a leaf is normalization if any module
  on its path has a name that contains `norm` (Flax's `BatchNorm_0`, `LayerNorm_0`,
  `GroupNorm_0`, a custom `pre_norm`) or has `bn` as a separate token (`bn`, `bn1`,
  `conv_bn`, but not `subnet`), case-insensitive, or if the leaf is called `scale`
  (Flax's name for the multiplicative parameter of every normalization layer; dense and
  conv layers have only `kernel` and `bias`);
* **the last layer** (the module named `output`, `models.layers.OUTPUT_LAYER`) is left out
  whole (kernel and bias) unless `exclude_output=False`;
* **kernels only by default**: P0 counts the weights it prunes, and biases are never pruned
  (docs/choices.md#biases), so the default fraction is over the weight kernels. `include_biases=True`
  adds the biases of the counted layers. Any other leaf (none in this package's models,
  e.g. an embedding table) is counted with the kernels.

A weight is below the threshold when |w| < threshold (strictly; a weight exactly at the
threshold is not counted). The default threshold is float32 machine epsilon, 2^-23 ~
1.19e-7 (the bottom of P0's y axis: docs/choices.md#natural-sparsity). Comparisons are exact (float64).

At level 0 (default) the weights are the dense trained network's, which is what P0
measures. At a level L > 0 the pruned weights are exactly zero and count as below the
threshold; given the level's mask, the result also holds `below_unpruned`, the count
among the weights the mask kept.

    python -m jaxtickets.analysis.natural_sparsity --workdir runs/a [--workdir runs/b ...] \
        [--level 0] [--branch ticket] [--replicate 0] [--threshold 1.19e-7] \
        [--include-biases] [--include-output] --out OUT

writes OUT/natural_sparsity.json and OUT/natural_sparsity.png (sorted |w| on a log axis,
one curve per run, a horizontal line at the threshold).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
from typing import Any, Optional, Sequence

import jax
import numpy as np

from jaxtickets import checkpoints
from jaxtickets.models.layers import OUTPUT_LAYER
from jaxtickets.sparsity.masks import path_name

PyTree = Any
EPS32 = float(np.finfo(np.float32).eps)  # 2**-23 = 1.1920929e-07
JSON_FILE = "natural_sparsity.json"
PLOT_FILE = "natural_sparsity.png"
_BN_TOKEN = re.compile(r"(^|[^a-z])bn([^a-z]|$)")
PLOT_POINTS = 4000  # curve points per run (quantiles of the sorted magnitudes)


def is_normalization(name: str) -> bool:
    """True for a parameter of a normalization layer, given its '/'-joined path."""
    *modules, leaf = name.split("/")
    if leaf == "scale":
        return True
    return any("norm" in m.lower() or _BN_TOKEN.search(m.lower()) for m in modules)


def is_output(name: str) -> bool:
    """True for a parameter of the last layer (a module named OUTPUT_LAYER on the path)."""
    return OUTPUT_LAYER in name.split("/")[:-1]


def classify(name: str, exclude_output: bool = True, include_biases: bool = False) -> str:
    """'counted' or the reason a parameter is left out: 'normalization', 'output', 'bias'."""
    if is_normalization(name):
        return "normalization"
    if exclude_output and is_output(name):
        return "output"
    if name.split("/")[-1] == "bias" and not include_biases:
        return "bias"
    return "counted"


def _flat(tree: PyTree) -> list[tuple[str, Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)
    return [(path_name(p), leaf) for p, leaf in flat]


def counted_leaves(params: PyTree, exclude_output: bool = True,
                   include_biases: bool = False) -> list[tuple[str, np.ndarray]]:
    """(name, array) of the parameters natural sparsity counts, in tree order."""
    return [(name, np.asarray(leaf)) for name, leaf in _flat(params)
            if classify(name, exclude_output, include_biases) == "counted"]


def natural_sparsity(params: PyTree, threshold: float = EPS32, exclude_output: bool = True,
                     include_biases: bool = False, mask: Optional[PyTree] = None) -> dict:
    """Fraction and counts of the counted parameters with |w| < threshold.

    `params` is a params tree (not {"params", "batch_stats"}). `mask` (optional, a mask
    tree mirroring params, None = never pruned) adds the pruned count and the count below
    the threshold among the kept weights. Returns plain Python numbers (JSON-ready).
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    masks = dict(_flat(mask)) if mask is not None else {}
    layers, excluded = {}, {}
    below = total = zeros = pruned = below_unpruned = 0
    for name, leaf in _flat(params):
        reason = classify(name, exclude_output, include_biases)
        if reason != "counted":
            excluded[name] = reason
            continue
        mag = np.abs(np.asarray(leaf, dtype=np.float64))
        small = mag < threshold
        n_below, n = int(np.count_nonzero(small)), int(mag.size)
        layers[name] = {"below": n_below, "total": n, "fraction": n_below / n if n else 0.0}
        below, total = below + n_below, total + n
        zeros += int(np.count_nonzero(mag == 0))
        m = masks.get(name)
        if m is not None:
            kept = np.asarray(m, dtype=bool)
            pruned += int(kept.size - np.count_nonzero(kept))
            below_unpruned += int(np.count_nonzero(small & kept))
        elif mask is not None:
            below_unpruned += n_below
    if total == 0:
        raise ValueError("natural sparsity: no parameter is counted (all excluded)")
    out = {"threshold": float(threshold), "exclude_output": exclude_output,
           "include_biases": include_biases, "below": below, "total": total,
           "fraction": below / total, "exact_zeros": zeros, "layers": layers,
           "excluded": excluded}
    if mask is not None:
        out.update(pruned_by_mask=pruned, below_unpruned=below_unpruned,
                   fraction_unpruned=below_unpruned / max(total - pruned, 1))
    return out


def sorted_magnitudes(params: PyTree, exclude_output: bool = True,
                      include_biases: bool = False) -> np.ndarray:
    """|w| of every counted parameter, ascending (float64): the curve of P0 Figs. 6/9.

    At x = fraction f of the weights the curve is the f-quantile of |w|, so it crosses the
    threshold line at x = the natural sparsity."""
    leaves = counted_leaves(params, exclude_output, include_biases)
    if not leaves:
        raise ValueError("natural sparsity: no parameter is counted (all excluded)")
    return np.sort(np.concatenate([np.abs(a.astype(np.float64)).ravel() for _, a in leaves]))


def plot_sorted_magnitudes(curves: Sequence[tuple[str, np.ndarray, float]], threshold: float,
                           path: pathlib.Path, title: str = "") -> None:
    """curves: (label, ascending magnitudes, fraction below). Zeros are drawn at the floor."""
    # A Figure of its own, not pyplot: no global backend switch (a notebook keeps its).
    from matplotlib.figure import Figure

    floor = threshold / 100.0
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    top = threshold
    for label, mags, fraction in curves:
        n = mags.size
        idx = np.unique(np.linspace(0, n - 1, min(n, PLOT_POINTS)).round().astype(np.int64))
        x = (idx + 0.5) / n
        y = np.maximum(mags[idx], floor)
        top = max(top, float(mags[-1]))
        ax.plot(x, y, lw=1.6, label=f"{label}: {100 * fraction:.1f}% below")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    ax.set_yscale("log")
    ax.set_ylim(floor * 0.5, top * 2)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of weights (sorted by |w|)")
    ax.set_ylabel(f"|w| (zeros drawn at {floor:.0e})")
    ax.set_title(title or "natural sparsity (P0 Fig. 6): sorted weight magnitudes")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _unique_labels(workdirs: Sequence[str]) -> list[str]:
    names = [pathlib.Path(w).name or str(w) for w in workdirs]
    return names if len(set(names)) == len(names) else [str(w) for w in workdirs]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxtickets.analysis.natural_sparsity",
        description="Fraction of trained weights with |w| below machine precision (P0 Fig. 6), "
                    "excluding normalization parameters and the output layer.")
    parser.add_argument("--workdir", action="append", required=True,
                        help="a finished run's workdir; repeat for one curve per run")
    parser.add_argument("--level", type=int, default=0,
                        help="pruning level whose trained weights are read (0 = dense)")
    parser.add_argument("--branch", default="ticket")
    parser.add_argument("--replicate", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=EPS32,
                        help="|w| < threshold counts as zero (default float32 eps 1.19e-7)")
    parser.add_argument("--include-biases", action="store_true",
                        help="count biases too (default: weight kernels only)")
    parser.add_argument("--include-output", action="store_true",
                        help="count the output layer too (P0 excludes it)")
    parser.add_argument("--out", required=True, help="directory for the JSON and the PNG")
    args = parser.parse_args(argv)

    from jaxtickets.analysis.artifacts import RunArtifacts
    from jaxtickets.checkpoints import CheckpointError

    out = pathlib.Path(args.out)
    runs, curves = [], []
    for workdir, label in zip(args.workdir, _unique_labels(args.workdir)):
        try:
            art = RunArtifacts.open(workdir)
            params = art.final(args.replicate, args.level, args.branch)["params"]
            mask = art.mask(args.replicate, args.level) if args.level > 0 else None
            result = natural_sparsity(params, args.threshold, not args.include_output,
                                      args.include_biases, mask)
        except (OSError, CheckpointError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        runs.append({"workdir": str(workdir), "label": label,
                     "model": art.config["model"]["name"],
                     "dataset": art.config["data"]["dataset"], **result})
        curves.append((f"{label} ({art.name})",
                       sorted_magnitudes(params, not args.include_output, args.include_biases),
                       result["fraction"]))
    report = {"level": args.level, "branch": args.branch, "replicate": args.replicate,
              "threshold": args.threshold, "include_biases": args.include_biases,
              "exclude_output": not args.include_output, "runs": runs}
    checkpoints.write_json(out / JSON_FILE, report)
    plot_sorted_magnitudes(curves, args.threshold, out / PLOT_FILE,
                           f"sorted |w|, level {args.level} {args.branch} "
                           f"({'kernels + biases' if args.include_biases else 'kernels'}"
                           f"{'' if args.include_output else ', no output layer'})")
    print(f"natural sparsity: |w| < {args.threshold:.3g}, level {args.level} {args.branch}, "
          f"replicate {args.replicate}")
    print("run | model | counted | below | % below" + (" | below among kept" if args.level else ""))
    for r in runs:
        extra = f" | {r['below_unpruned']}" if args.level else ""
        print(f"{r['label']} | {r['model']}/{r['dataset']} | {r['total']} | {r['below']} | "
              f"{100 * r['fraction']:.2f}{extra}")
    print(f"wrote {out / JSON_FILE} and {out / PLOT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
