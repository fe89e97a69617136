"""Magnitude pruning with exact counts (docs/design.md, invariant 4).

Each group (a layer, or the whole prunable set for global pruning) loses exactly
round(rate x remaining) of its currently unpruned weights: the lowest scores go,
found by a selection over the unpruned entries only. Ties are broken by a seeded
random permutation, so equal magnitudes never make the count drift. Scores come from
a P4 criterion of the final weights and, for most criteria, the initial ones
(criteria.py); each layer is scored on its own, even when the ranking is global.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np

from jaxtickets.sparsity import criteria
from jaxtickets.sparsity.masks import kernel_kind

PyTree = Any
SPACINGS = ("geometric", "linear")


def num_to_prune(rate: float, remaining: int) -> int:
    """round(rate x remaining), halves rounded up (Python's round() rounds to even)."""
    return int(math.floor(rate * remaining + 0.5))


def _lowest(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k lowest scores; ties resolved by a seeded shuffle of the order."""
    if k <= 0:
        return np.zeros((0,), dtype=np.int64)
    order = rng.permutation(scores.size)
    shuffled = scores[order]
    if k >= scores.size:
        return order
    picked = np.argpartition(shuffled, k - 1)[:k]
    return order[picked]


def _dropped(scores: np.ndarray, k: int, rng: np.random.Generator,
             last_draw: bool) -> np.ndarray:
    """Boolean over `scores`: the k lowest, ties at the k-th value broken by a seeded draw.
    With `last_draw` (the rng is not drawn from again: global pruning) a threshold finds
    them, and only the entries tied at the threshold are drawn from, instead of shuffling
    all n scores (ResNet-50: 2.2 s -> 0.4 s, BENCHMARKS.md). Without ties at the threshold
    this is exactly `_lowest`'s set; with them, another seeded draw among the same ties."""
    if last_draw and 0 < k < scores.size:
        threshold = np.partition(scores, k - 1)[k - 1]
        out = scores < threshold
        tied = np.flatnonzero(scores == threshold)
        need = k - int(np.count_nonzero(out))
        if 0 < need <= tied.size:
            out[tied if need == tied.size else
                np.sort(rng.choice(tied, size=need, replace=False))] = True
            return out
    out = np.zeros(scores.size, dtype=bool)
    out[_lowest(scores, k, rng)] = True
    return out


def _prune_group(weights: list[np.ndarray], inits: list[np.ndarray], masks: list[np.ndarray],
                 rate: float, rng: np.random.Generator, criterion: str,
                 last_draw: bool = False) -> list[np.ndarray]:
    flat_masks = [m.reshape(-1) for m in masks]
    alive = [np.flatnonzero(m) for m in flat_masks]
    scores = np.concatenate([
        criteria.score(criterion, np.asarray(wi, np.float32).reshape(-1)[a],
                       np.asarray(w, np.float32).reshape(-1)[a])
        for w, wi, a in zip(weights, inits, alive)])
    # Split per leaf from one array over the concatenated alive entries: O(N), where a
    # per-leaf filter of the dropped indices was O(leaves x N) (BENCHMARKS.md).
    kept_alive = ~_dropped(scores, num_to_prune(rate, scores.size), rng, last_draw)
    offsets = np.cumsum([0] + [a.size for a in alive])
    new = [m.copy() for m in flat_masks]
    for i, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
        new[i][alive[i]] = kept_alive[start:stop]
    return [n.reshape(m.shape) for n, m in zip(new, masks)]


def _prunable(params: PyTree, mask: PyTree, init: Optional[PyTree], criterion: str):
    """(path, final, initial, mask) per prunable leaf; `init` only if the criterion uses it."""
    if criterion in criteria.NEEDS_INIT and init is None:
        raise ValueError(f"mask criterion {criterion!r} needs the initial weights")
    paths, _ = jax.tree_util.tree_flatten_with_path(params)
    mask_leaves = jax.tree_util.tree_leaves(mask, is_leaf=lambda x: x is None)
    init_leaves = (jax.tree_util.tree_leaves(init) if init is not None
                   else [None] * len(mask_leaves))
    return [(path, np.asarray(w), np.asarray(w if wi is None else wi), np.asarray(m))
            for (path, w), wi, m in zip(paths, init_leaves, mask_leaves) if m is not None]


def _rebuild(mask: PyTree, new_masks: list[np.ndarray]) -> PyTree:
    it = iter(new_masks)
    return jax.tree_util.tree_map(lambda m: None if m is None else next(it), mask,
                                  is_leaf=lambda x: x is None)


def prune_per_layer(params: PyTree, mask: PyTree, rate_of: Callable[[tuple, Any], float],
                    seed: int, criterion: str = "large_final",
                    init: Optional[PyTree] = None) -> PyTree:
    """Prunes each layer on its own at `rate_of(path, kernel)`; one seeded generator
    breaks the ties of every layer, drawn from in the tree's order."""
    rng = np.random.default_rng(seed)
    new_masks = []
    for path, w, wi, m in _prunable(params, mask, init, criterion):
        new_masks.extend(_prune_group([w], [wi], [m], rate_of(path, w), rng, criterion))
    return _rebuild(mask, new_masks)


def prune_layerwise(params: PyTree, mask: PyTree, rates: Mapping[str, float], seed: int,
                    criterion: str = "large_final", init: Optional[PyTree] = None) -> PyTree:
    """Prunes each layer on its own at the rate of its kind (P2 Fig. 2's table)."""
    return prune_per_layer(params, mask, lambda path, w: rates[kernel_kind(path, w)], seed,
                           criterion, init)


def prune_global(params: PyTree, mask: PyTree, rate: float, seed: int,
                 criterion: str = "large_final", init: Optional[PyTree] = None) -> PyTree:
    """Prunes the lowest scores over the whole prunable set at once (P0, P1, P2 Sec. 4)."""
    rng = np.random.default_rng(seed)
    leaves = _prunable(params, mask, init, criterion)
    new_masks = _prune_group([w for _, w, _, _ in leaves], [wi for _, _, wi, _ in leaves],
                             [m for *_, m in leaves], rate, rng, criterion, last_draw=True)
    return _rebuild(mask, new_masks)


def one_shot_rate(rate: float, level: int, spacing: str) -> float:
    """The fraction pruned at once from the dense network for `level` (P2 Sec. 2, P3's
    OMP): 'geometric' matches IMP's remaining 1 - (1 - rate)^level; 'linear' prunes
    level x rate (P2 Fig. 4c's 12.5% steps)."""
    if spacing == "geometric":
        return 1.0 - (1.0 - rate) ** level
    if spacing == "linear":
        if level * rate >= 1.0:
            raise ValueError(f"one-shot level {level} at rate {rate} would prune "
                             f"{100 * level * rate:g}% of a layer; the most is below 100%")
        return level * rate
    raise ValueError(f"unknown one-shot spacing {spacing!r}; choose one of {SPACINGS}")
