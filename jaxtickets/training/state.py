"""The train state: everything a step reads or writes, the mask included.

The mask sits here rather than inside the optimizer state so that a fresh optimizer
at rewind keeps it, and it is an ordinary (traced) array so that changing it between
levels never triggers a recompilation (docs/design.md, invariants 1 and 3). `mask` says which
weights train; `value_mask`, when set, says which carry a value (P4's mask-0 actions
freeze some pruned weights at non-zero values); None means the two are the same.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxtickets.sparsity.masks import apply_mask

PyTree = Any


@flax.struct.dataclass
class TrainState:
    step: jnp.ndarray
    params: PyTree
    batch_stats: PyTree
    opt_state: optax.OptState
    mask: PyTree
    rng: jax.Array
    value_mask: PyTree = None

    @property
    def visible_mask(self) -> PyTree:
        """The entries the forward pass sees: trainable ones plus frozen non-zero ones."""
        return self.mask if self.value_mask is None else self.value_mask


def fresh_state(params: PyTree, batch_stats: PyTree, mask: PyTree,
                tx: optax.GradientTransformation, step: int, rng: jax.Array,
                value_mask: PyTree = None) -> TrainState:
    """A state that starts from `params` with the mask applied and a fresh optimizer."""
    params = apply_mask(params, mask if value_mask is None else value_mask)
    return TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                      batch_stats=batch_stats, opt_state=tx.init(params), mask=mask,
                      rng=rng, value_mask=value_mask)
