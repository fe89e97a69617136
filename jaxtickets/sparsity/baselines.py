"""Random masks for P1's baselines (App. A.2), drawn from a ticket's mask.

`permute_global` scatters the ticket's kept count uniformly over the whole prunable set
(P1's "random ticket": no layer statistics survive); `permute_local` permutes within each
layer (per-layer counts survive). Fresh weights come from the driver's init.
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


def permute_global(mask: PyTree, seed: int) -> PyTree:
    """The same number of kept weights, placed uniformly at random over all prunable layers."""
    leaves = [np.asarray(m) for _, m in prunable_leaves(mask)]
    flat = np.concatenate([m.ravel() for m in leaves])
    flat = flat[np.random.default_rng(seed).permutation(flat.size)]
    out, offset = [], 0
    for m in leaves:
        out.append(flat[offset:offset + m.size].reshape(m.shape))
        offset += m.size
    return _rebuild(mask, out)


def permute_local(mask: PyTree, seed: int) -> PyTree:
    """Each layer's mask permuted within the layer: per-layer counts are kept."""
    rng = np.random.default_rng(seed)
    out = []
    for _, m in prunable_leaves(mask):
        m = np.asarray(m)
        out.append(m.ravel()[rng.permutation(m.size)].reshape(m.shape))
    return _rebuild(mask, out)
