"""Optimizers whose updates never touch pruned weights (docs/design.md, invariant 2).

The mask is passed to `update` as an extra argument rather than baked into the
optimizer, so one optimizer object (and one compiled step) serves every level.
Adam's weight decay is L2 added to the gradient, as in PyTorch (what the papers
ran: docs/choices.md#adam-l2); AdamW decouples it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
# train.* keys that only some optimizers read (the rest read learning_rate, weight_decay);
# train.nesterov has a stricter check of its own (config_schema._validate_train).
OPTIMIZER_KEYS = {"momentum": ("momentum",)}


class _NoState(NamedTuple):
    pass


def zero_pruned_updates() -> optax.GradientTransformationExtraArgs:
    """Sets the updates of pruned entries to exactly zero; needs `mask=` at update time."""

    def init_fn(params):
        del params
        return _NoState()

    def update_fn(updates, state, params=None, *, mask=None, **extra):
        del params, extra
        if mask is None:
            raise ValueError("zero_pruned_updates needs the mask passed as mask=...")
        updates = jax.tree_util.tree_map(
            lambda u, m: u if m is None else jnp.where(m, u, jnp.zeros((), u.dtype)),
            updates, mask, is_leaf=lambda x: x is None)
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def build_optimizer(name: str, schedule: optax.Schedule, weight_decay: float = 0.0,
                    momentum: float = 0.9, b1: float = 0.9, b2: float = 0.999,
                    eps: float = 1e-8, nesterov: bool = False
                    ) -> optax.GradientTransformationExtraArgs:
    """The optimizer chain, ending in the mask so nothing after it can revive a weight."""
    coupled_l2 = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    if name == "sgd":
        parts = coupled_l2 + [optax.scale_by_learning_rate(schedule)]
    elif name == "momentum":
        parts = coupled_l2 + [optax.trace(decay=momentum, nesterov=nesterov),
                              optax.scale_by_learning_rate(schedule)]
    elif name == "adam":
        parts = coupled_l2 + [optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
                              optax.scale_by_learning_rate(schedule)]
    elif name == "adamw":
        decoupled = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
        parts = ([optax.scale_by_adam(b1=b1, b2=b2, eps=eps)] + decoupled
                 + [optax.scale_by_learning_rate(schedule)])
    else:
        raise ValueError(f"train.optimizer: unknown optimizer {name!r}; "
                         f"choose one of {OPTIMIZERS}")
    return optax.chain(*parts, zero_pruned_updates())
