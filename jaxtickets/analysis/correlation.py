"""P3's correlation indicator R_p(theta, theta') between two weight sets (P3 App. G).

Per layer l, T_p(theta^l) is the index set of the top p*100% largest-magnitude weights;

    R_p(theta, theta') = sum_l |T_p(theta^l) & T_p(theta'^l)| / (p * sum_l N_l).

R_p ~ p means independent magnitudes, R_p > p positive and R_p < p negative correlation;
P3 reads a strong init/final correlation as a sign that the LR was too low. For a sparse
network only the remaining (mask True) weights count, both in N_l and in the ranking.

Counting: layer l keeps k_l = floor(p * N_l + 0.5) weights (halves round up; 0 allowed).
The denominator is the paper's p * sum_l N_l, not sum_l k_l, so R_p(theta, theta) is
sum_l k_l / (p * sum_l N_l): exactly 1 when every p * N_l is an integer, within rounding
otherwise. Selection is an exact top-k, not a threshold: among equal magnitudes at the
cut, the lower flat (row-major) index among the remaining weights wins, so the result is
deterministic and each layer contributes exactly k_l indices.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import jax
import numpy as np

from jaxtickets.sparsity.masks import kernel_kind, path_name, prunable_leaves

PyTree = Any
Layers = dict[str, np.ndarray]


def kept_count(p: float, n: int) -> int:
    """round(p * n) with halves rounded up: the size of T_p for a layer of n weights."""
    return int(math.floor(p * n + 0.5))


def top_indices(magnitudes: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of a 1-D array; ties at the cut go to lower
    indices. Exact count even with ties (np.partition finds the k-th value)."""
    n = magnitudes.size
    if k <= 0:
        return np.zeros((0,), dtype=np.int64)
    if k >= n:
        return np.arange(n)
    kth = np.partition(magnitudes, n - k)[n - k]
    above = np.flatnonzero(magnitudes > kth)
    equal = np.flatnonzero(magnitudes == kth)[: k - above.size]
    return np.concatenate([above, equal])


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) \
            or not 0 < p <= 1:
        raise ValueError(f"p must be a number with 0 < p <= 1, got p={p!r}")
    return float(p)


def _remaining(name: str, first: np.ndarray, second: np.ndarray,
               mask: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The layer's remaining weights of both sets as 1-D magnitude arrays, checked."""
    if first.shape != second.shape:
        raise ValueError(f"layer {name!r}: shapes differ, {first.shape} vs {second.shape}")
    if mask is None:
        a, b = first.ravel(), second.ravel()
    else:
        if mask.dtype != np.bool_ or mask.shape != first.shape:
            raise ValueError(f"layer {name!r}: mask must be bool of shape {first.shape}, "
                             f"got {mask.dtype} {mask.shape}")
        a, b = first[mask], second[mask]
    a, b = np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError(f"layer {name!r}: weights contain NaN")
    return a, b


def _same_keys(what: str, got: dict, want: dict) -> None:
    if set(got) != set(want):
        odd = sorted(set(got) ^ set(want))
        raise ValueError(f"{what}: layer(s) {odd} are not in both; layers must match")


def correlation_indicator(first: Layers, second: Layers, p: float,
                          masks: Optional[Layers] = None) -> float:
    """R_p(first, second) over the layers (name -> array) of two weight sets.

    `masks` (name -> bool array) restricts every layer to its remaining weights.
    """
    p = _check_p(p)
    _same_keys("second weight set", second, first)
    if masks is not None:
        _same_keys("masks", masks, first)
    shared = total = 0
    for name in first:
        mask = None if masks is None else np.asarray(masks[name])
        a, b = _remaining(name, np.asarray(first[name]), np.asarray(second[name]), mask)
        k = kept_count(p, a.size)
        shared += np.intersect1d(top_indices(a, k), top_indices(b, k),
                                 assume_unique=True).size
        total += a.size
    if total == 0:
        raise ValueError("no remaining weights: every layer is empty or fully masked")
    return shared / (p * total)


def kernel_layers(params: PyTree, mask: PyTree = None) -> tuple[Layers, Optional[Layers]]:
    """(weights, masks) dicts for `correlation_indicator` from a Flax params tree.

    With a mask tree (bool arrays, None for leaves never pruned) the layers are its
    prunable leaves; without one, every kernel of `params`, dense (masks is None).
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    if mask is None:
        weights = {path_name(path): np.asarray(leaf) for path, leaf in flat
                   if kernel_kind(path, leaf) is not None}
        if not weights:
            raise ValueError("kernel_layers: the params tree has no kernels")
        return weights, None
    by_name = {path_name(path): leaf for path, leaf in flat}
    weights, masks = {}, {}
    for name, m in prunable_leaves(mask):
        if name not in by_name:
            raise ValueError(f"kernel_layers: mask layer {name!r} is not in the params")
        weights[name] = np.asarray(by_name[name])
        masks[name] = np.asarray(m)
    if not weights:
        raise ValueError("kernel_layers: the mask has no prunable leaves")
    return weights, masks
