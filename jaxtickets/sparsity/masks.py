"""Masks are boolean pytrees mirroring the params, with None for leaves never pruned.

Kept as a separate tree (not folded into the weights or the optimizer) so that the
train step can multiply it in, rewinding can restore every weight while keeping it,
and an optimizer reset at rewind cannot lose it (docs/design.md, invariants 1 and 5).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtickets.parallel import to_host
from jaxtickets.sparsity.naming import OUTPUT_LAYER, SHORTCUT_MARK

PyTree = Any
KINDS = ("conv", "dense", "output", "shortcut")


@dataclasses.dataclass(frozen=True)
class PrunablePolicy:
    """Which kernels may be pruned. Biases and normalization parameters never are."""

    conv: bool = True
    dense: bool = True
    output: bool = True
    shortcut: bool = False

    def allows(self, kind: Optional[str]) -> bool:
        return kind is not None and getattr(self, kind)


def path_name(path: tuple) -> str:
    """'/'-joined readable name of a pytree path, used in logs, counts and files."""
    parts = []
    for entry in path:
        key = getattr(entry, "key", getattr(entry, "name", getattr(entry, "idx", entry)))
        parts.append(str(key))
    return "/".join(parts)


def kernel_kind(path: tuple, leaf: Any) -> Optional[str]:
    """Classifies a parameter by path and shape: conv, dense, output, shortcut or None."""
    name = path_name(path)
    if not name.endswith("kernel"):
        return None
    module = name.split("/")[-2] if "/" in name else ""
    if module == OUTPUT_LAYER:
        return "output"
    if SHORTCUT_MARK in module:
        return "shortcut"
    return "conv" if np.ndim(leaf) == 4 else "dense" if np.ndim(leaf) == 2 else None


def layer_kinds(params: PyTree) -> PyTree:
    """A tree of kind strings (or None) mirroring `params`."""
    return jax.tree_util.tree_map_with_path(kernel_kind, params)


def init_mask(params: PyTree, policy: PrunablePolicy) -> PyTree:
    """The all-ones mask over the prunable set; None elsewhere."""

    def make(path, leaf):
        kind = kernel_kind(path, leaf)
        return np.ones(np.shape(leaf), dtype=bool) if policy.allows(kind) else None

    mask = jax.tree_util.tree_map_with_path(make, params)
    if not any(m is not None for m in jax.tree_util.tree_leaves(mask)):
        raise ValueError("pruning: the prunable set is empty for this model and policy")
    return mask


def apply_mask(params: PyTree, mask: PyTree) -> PyTree:
    """params with pruned entries set to exactly zero; unprunable leaves untouched."""
    return jax.tree_util.tree_map(
        lambda p, m: p if m is None else jnp.where(m, p, jnp.zeros((), p.dtype)),
        params, mask, is_leaf=lambda x: x is None)


def masked_apply_updates(params: PyTree, updates: PyTree, mask: PyTree,
                         value_mask: PyTree = None) -> PyTree:
    """params + updates on trainable entries; the others stay exactly zero, or, where
    `value_mask` marks them frozen, keep their value bit for bit (no `+ 0.0`, which
    would turn a -0.0 into +0.0)."""
    if value_mask is None:
        return apply_mask(optax.apply_updates(params, updates), mask)

    def update(p, u, m, v):
        if m is None:
            return (p + u).astype(p.dtype)
        frozen = jnp.where(v, p, jnp.zeros((), p.dtype))
        return jnp.where(m, (p + u).astype(p.dtype), frozen)

    return jax.tree_util.tree_map(update, params, updates, mask, value_mask,
                                  is_leaf=lambda x: x is None)


def prunable_leaves(mask: PyTree) -> list[tuple[str, Any]]:
    """(name, mask array) for each prunable leaf, in a fixed (tree) order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(mask)
    return [(path_name(p), m) for p, m in flat if m is not None]


def layer_counts(mask: PyTree) -> dict[str, tuple[int, int]]:
    """Per prunable layer: (remaining, total)."""
    return {name: (int(np.count_nonzero(to_host(m))), int(np.size(m)))
            for name, m in prunable_leaves(mask)}


def remaining_and_total(mask: PyTree) -> tuple[int, int]:
    counts = layer_counts(mask)
    return sum(r for r, _ in counts.values()), sum(t for _, t in counts.values())


def density(mask: PyTree) -> float:
    """Fraction of the prunable set remaining (P0/P1 tables use this)."""
    remaining, total = remaining_and_total(mask)
    return remaining / total


def kernel_density(mask: PyTree, params: PyTree) -> float:
    """Remaining over all weight kernels, pruned or not (P2's plots use this)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    all_kernels = sum(np.size(leaf) for path, leaf in flat
                      if kernel_kind(path, leaf) is not None)
    remaining, total = remaining_and_total(mask)
    return (remaining + all_kernels - total) / all_kernels


def to_flat_dict(mask: PyTree) -> dict[str, np.ndarray]:
    """Storage form of a mask: {layer name: bool array} (Orbax stores no None leaves)."""
    return {name: np.asarray(m) for name, m in prunable_leaves(mask)}


def from_flat_dict(flat: dict[str, np.ndarray], like: PyTree) -> PyTree:
    """Rebuilds a mask shaped like `like` (a mask) and checks every shape exactly."""
    expected = dict(prunable_leaves(like))
    if set(flat) != set(expected):
        raise ValueError(f"stored mask layers {sorted(flat)} differ from the model's "
                         f"prunable layers {sorted(expected)}")

    def take(path, m):
        if m is None:
            return None
        stored = np.asarray(flat[path_name(path)])
        if stored.shape != np.shape(m) or stored.dtype != np.bool_:
            raise ValueError(f"stored mask {path_name(path)} has shape {stored.shape} "
                             f"dtype {stored.dtype}; expected {np.shape(m)} bool")
        return stored

    return jax.tree_util.tree_map_with_path(take, like, is_leaf=lambda x: x is None)
