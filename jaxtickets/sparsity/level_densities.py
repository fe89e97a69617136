"""The fraction of weights each pruning level keeps, from a config alone (no training).

Pruning removes round(rate x remaining) weights per layer (layer-wise) or over the
pooled prunable set (global) at every level (sparsity/pruning.py), so the counts at each
level follow from the layer shapes and the rates, whatever the weights are. The papers'
plots put "percent of weights remaining" on their x-axes over all kernel weights,
unpruned ones included (P2's ResNet: 41.7% after 4 levels of 20%, because its 3,200
shortcut and output weights stay), which is what `remaining_fractions` returns: it lets
a config be checked against the last density a paper plots before anything runs.
"""

from __future__ import annotations

import jax
import ml_collections

from jaxtickets.data.datasets import input_shape, num_classes
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.sparsity.masks import PrunablePolicy, kernel_kind
from jaxtickets.sparsity.pruning import num_to_prune, one_shot_rate


def kernel_counts(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
    """(kind, weights) of every kernel of the config's model on its dataset."""
    d = config.data
    shapes = abstract_variables(create_model(config.model.name, num_classes(d.dataset)),
                                input_shape(d.dataset, d.image_size))["params"]
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        kind = kernel_kind(path, leaf)
        if kind:
            size = 1
            for n in leaf.shape:
                size *= n
            out.append((kind, size))
    return out


def remaining_fractions(config: ml_collections.ConfigDict, one_shot: bool = False
                        ) -> list[float]:
    """Remaining kernel weights / all kernel weights at levels 0..pruning.levels, for an
    iterative trajectory or (one_shot) for each level pruned at once from the dense
    network with pruning.one_shot_spacing."""
    p = config.pruning
    policy = PrunablePolicy(**p.prune.to_dict())
    layers = kernel_counts(config)
    total = sum(n for _, n in layers)
    fixed = sum(n for kind, n in layers if not policy.allows(kind))
    pruned = [(kind, n) for kind, n in layers if policy.allows(kind)]
    fractions = []
    kept = [n for _, n in pruned]
    for level in range(p.levels + 1):
        if level and one_shot:
            kept = _prune([n for _, n in pruned], [k for k, _ in pruned], p,
                          lambda r: one_shot_rate(r, level, p.one_shot_spacing))
        elif level:
            kept = _prune(kept, [k for k, _ in pruned], p, lambda r: r)
        fractions.append((sum(kept) + fixed) / total)
    return fractions


def _prune(kept: list[int], kinds: list[str], p: ml_collections.ConfigDict,
           rate_of) -> list[int]:
    """One pruning step of the counts `kept` (per prunable layer)."""
    if p.method == "global":  # only the pooled total is determined by the rate
        removed = num_to_prune(rate_of(p.rate), sum(kept))
        return [sum(kept) - removed] + [0] * (len(kept) - 1)
    return [n - num_to_prune(rate_of(p.rates[kind]), n) for n, kind in zip(kept, kinds)]
