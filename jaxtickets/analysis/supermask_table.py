"""P4 Table 1 from a finished run: the best supermask accuracies and the trained network.

For each kind of supermask (mask x initial weights, mask x signed constant, learned
mask) the replicate-mean test accuracy of every (trajectory, level) or learned-mask
setting is computed, and the best one is reported with where it was found (P4 takes
the maximum over pruning percentages). The trained network is the dense level 0.

  python -m jaxtickets.analysis.supermask_table --workdir runs/mnist_supermask
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import sys

import numpy as np

from jaxtickets import checkpoints

COLUMNS = (("mask x initial weights", "supermask_init"),
           ("mask x signed constant", "supermask_constant"),
           ("learned mask x initial weights", "learned_supermask"),
           ("trained network", "ticket"))


def best_cells(rows: list[dict], metric: str = "test_accuracy") -> dict[str, dict]:
    """Per column: the best replicate-mean accuracy and its trajectory, level, density;
    `replicate_best` is the other reading of P4's "max over any prune percentage": each
    replicate's own best, averaged over replicates."""
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in rows:
        groups[(r["source_name"], r["level"], r["branch"])].append(r)
    out = {}
    for title, prefix in COLUMNS:
        candidates = []
        per_replicate: dict[int, float] = {}
        for (source, level, branch), members in groups.items():
            if prefix == "ticket":
                if branch != "ticket" or level != 0:
                    continue
            elif not branch.startswith(prefix):
                continue
            candidates.append({"accuracy": float(np.mean([m[metric] for m in members])),
                               "n": len(members), "source": source, "level": level,
                               "branch": branch,
                               "density": float(np.mean([m["density"] for m in members]))})
            for m in members:
                per_replicate[m["replicate"]] = max(per_replicate.get(m["replicate"], 0.0),
                                                    float(m[metric]))
        if candidates:
            out[title] = {**max(candidates, key=lambda c: c["accuracy"]),
                          "replicate_best": float(np.mean(list(per_replicate.values())))}
    return out


def markdown(cells: dict[str, dict]) -> str:
    lines = ["| supermask | best test accuracy (%) | where | % remaining | n | mean of "
             "each replicate's best (%) |", "|---|---|---|---|---|---|"]
    for title, _ in COLUMNS:
        c = cells.get(title)
        if c is None:
            lines.append(f"| {title} | - | | | | |")
            continue
        lines.append(f"| {title} | {100 * c['accuracy']:.2f} | {c['source']} level "
                     f"{c['level']} {c['branch']} | {100 * c['density']:.1f} | {c['n']} | "
                     f"{100 * c['replicate_best']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--metric", default="test_accuracy",
                        choices=("test_accuracy", "early_stop_test_accuracy"))
    args = parser.parse_args(argv)
    path = pathlib.Path(args.workdir) / "results.json"
    try:
        results = checkpoints.read_json(path)
    except (FileNotFoundError, checkpoints.CheckpointError) as err:
        print(f"error: cannot read {path}: {err}", file=sys.stderr)
        return 2
    print(markdown(best_cells(results["rows"], args.metric)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
