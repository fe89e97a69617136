"""Random masks for P1's baselines (App. A.2), drawn from a ticket's mask.

`permute_global` scatters the ticket's kept count uniformly over the whole prunable set
(P1's "random ticket": no layer statistics survive); `permute_local` permutes within each
layer (per-layer counts survive); `even_density` gives every layer the ticket's overall
density (OpenLTH's `randomly_prune --strategy=even`). Fresh weights come from the
driver's init.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxtickets.sparsity.masks import prunable_leaves

PyTree = Any


def _rebuild(mask: PyTree, arrays: list[np.ndarray]) -> PyTree:
    it = iter(arrays)
    return jax.tree_util.tree_map(lambda m: None if m is None else next(it), mask,
                                  is_leaf=lambda x: x is None)


def _split(flat: np.ndarray, shapes: list[tuple]) -> list[np.ndarray]:
    """One array concatenated over the prunable layers, cut back into their shapes."""
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[offset:offset + size].reshape(shape))
        offset += size
    return out


def permute_global(mask: PyTree, seed: int) -> PyTree:
    """The same number of kept weights, placed uniformly at random over all prunable layers."""
    leaves = [np.asarray(m) for _, m in prunable_leaves(mask)]
    flat = np.concatenate([m.ravel() for m in leaves])
    flat = flat[np.random.default_rng(seed).permutation(flat.size)]
    return _rebuild(mask, _split(flat, [m.shape for m in leaves]))


def permute_local(mask: PyTree, seed: int) -> PyTree:
    """Each layer's mask permuted within the layer: per-layer counts are kept."""
    rng = np.random.default_rng(seed)
    out = []
    for _, m in prunable_leaves(mask):
        m = np.asarray(m)
        out.append(m.ravel()[rng.permutation(m.size)].reshape(m.shape))
    return _rebuild(mask, out)


def even_counts(mask: PyTree) -> dict[str, int]:
    """Per prunable layer, the count `even_density` keeps: the ticket's overall density
    d = K/N (K kept of N prunable) apportioned by largest remainder. Each layer of size
    n gets floor(d n) or ceil(d n), and the counts sum to exactly K, so the control is
    compared at the ticket's own density: the layers' floors first, then one more
    weight each for the K - sum(floors) layers with the largest remainders d n -
    floor(d n), ties to the earlier layer (tree order). Integer arithmetic throughout
    (remainders are K n mod N), so no float rounding decides a count."""
    sizes = {name: int(np.size(m)) for name, m in prunable_leaves(mask)}
    kept = sum(int(np.count_nonzero(np.asarray(m))) for _, m in prunable_leaves(mask))
    total = sum(sizes.values())
    counts = {name: kept * n // total for name, n in sizes.items()}
    order = sorted(sizes, key=lambda name: -(kept * sizes[name] % total))  # stable: ties
    for name in order[:kept - sum(counts.values())]:
        counts[name] += 1
    return counts


def even_density(mask: PyTree, seed: int) -> PyTree:
    """Every prunable layer at the ticket's overall density (counts: `even_counts`),
    the kept positions drawn uniformly within each layer: a random mask with neither
    the ticket's positions nor its layer-wise sparsity."""
    rng = np.random.default_rng(seed)
    counts = even_counts(mask)
    out = []
    for name, m in prunable_leaves(mask):
        keep = np.zeros(np.size(m), dtype=bool)
        keep[rng.permutation(keep.size)[:counts[name]]] = True
        out.append(keep.reshape(np.shape(m)))
    return _rebuild(mask, out)


def _top_k_mask(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the k highest scores, ties broken by a seeded shuffle."""
    order = rng.permutation(scores.size)
    keep = np.zeros(scores.size, dtype=bool)
    if k > 0:
        keep[order[np.argsort(-scores[order], kind="stable")[:k]]] = True
    return keep


def magnitude_at_init(mask: PyTree, theta0: PyTree, seed: int) -> PyTree:
    """P2 App. F.4, pruning at iteration 0: in each layer the largest |theta_0| entries,
    as many as the ticket keeps there (the untrained network's magnitude ticket)."""
    rng = np.random.default_rng(seed)
    weights = dict(prunable_leaves(_aligned(theta0, mask)))
    out = []
    for name, m in prunable_leaves(mask):
        m = np.asarray(m)
        scores = np.abs(np.asarray(weights[name], np.float32)).ravel()
        out.append(_top_k_mask(scores, int(m.sum()), rng).reshape(m.shape))
    return _rebuild(mask, out)


def random_adjusted(mask: PyTree, trained: PyTree, seed: int,
                    threshold: float = float(np.finfo(np.float32).eps)) -> PyTree:
    """P0 Sec. 4.5: as many kept weights as the ticket, over the whole prunable set; the
    trained dense network's natural zeros (|w| < threshold) are pruned first, then
    random non-zero weights. If there are more natural zeros than weights to prune, a
    random subset of them is pruned (the baseline is defined only above that sparsity)."""
    rng = np.random.default_rng(seed)
    shapes = [np.shape(m) for _, m in prunable_leaves(mask)]
    keep_count = sum(int(np.asarray(m).sum()) for _, m in prunable_leaves(mask))
    weights = dict(prunable_leaves(_aligned(trained, mask)))
    magnitudes = np.concatenate([np.abs(np.asarray(weights[name], np.float32)).ravel()
                                 for name, _ in prunable_leaves(mask)])
    # Score 1 for non-zero weights, 0 for natural zeros: the top-k keeps non-zero first,
    # random within each group.
    keep = _top_k_mask((magnitudes >= threshold).astype(np.float32), keep_count, rng)
    return _rebuild(mask, _split(keep, shapes))


def natural_zero_fraction(trained: PyTree, mask: PyTree,
                          threshold: float = float(np.finfo(np.float32).eps)) -> float:
    """Fraction of the prunable set below `threshold` in a trained network (P0 Fig. 6)."""
    leaves = [np.asarray(w) for _, w in prunable_leaves(_aligned(trained, mask))]
    total = sum(w.size for w in leaves)
    return sum(int((np.abs(w) < threshold).sum()) for w in leaves) / total


def _aligned(params: PyTree, mask: PyTree) -> PyTree:
    """`params` with None wherever the mask has None, so prunable_leaves lists weights."""
    return jax.tree_util.tree_map(lambda p, m: None if m is None else p, params, mask,
                                  is_leaf=lambda x: x is None)
