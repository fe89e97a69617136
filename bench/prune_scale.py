r"""Target 6 (issue 6), pruning at scale: one global magnitude pruning step over a
ResNet-50-sized parameter tree, with exact counts.

The tree is jaxtickets' own ResNet-50 (ImageNet stem, 1000 classes: 25.6M parameters)
filled with Gaussian weights, pruned at 20% by `prune_global` (the pruner the driver
calls: seeded tie-breaks over the whole prunable set). A second step prunes the result
again, so the pruner also works on an already-sparse mask. Counts are checked exactly.

  python -m bench.prune_scale [--model resnet50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from bench.common import table
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.sparsity.masks import PrunablePolicy, init_mask, remaining_and_total
from jaxtickets.sparsity.pruning import num_to_prune, prune_global

SHAPES = {"resnet50": (224, 224, 3), "resnet20": (32, 32, 3), "lenet300_100": (28, 28, 1)}


def random_tree(model_name: str, seed: int = 0):
    classes = 1000 if model_name == "resnet50" else 10
    shapes = abstract_variables(create_model(model_name, classes), SHAPES[model_name])
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: rng.standard_normal(s.shape, dtype=np.float32), shapes["params"])


def measure(model_name: str, repeats: int, rate: float = 0.2) -> list:
    params = random_tree(model_name)
    total_params = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(params))
    mask = init_mask(params, PrunablePolicy())
    rows = []
    for step in (1, 2):
        before, prunable = remaining_and_total(mask)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            new = prune_global(params, mask, rate, seed=step)
            times.append(time.perf_counter() - start)
        after, _ = remaining_and_total(new)
        expected = before - num_to_prune(rate, before)
        if after != expected:
            raise AssertionError(f"step {step}: {after} weights kept, expected {expected}")
        rows.append([model_name, total_params, prunable, step, before, after,
                     float(np.median(times))])
        mask = new
    return rows


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(SHAPES))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    out = table(["model", "parameters", "prunable", "pruning step", "kept before",
                 "kept after (exact)", "seconds (median)"],
                measure(args.model, args.repeats))
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
