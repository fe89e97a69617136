"""Freezing groups of parameters during training (`train.freeze`, `train.freeze_except`).

Some experiments train only part of a network: only the BatchNorm parameters, everything
but the output layer, or one chosen layer. The groups are the three OpenLTH users know:

* `batchnorm`: the scale and bias of every BatchNorm layer, found as the params of a
  module that also holds `batch_stats` (so LayerNorm or a user's norm without running
  statistics is not BatchNorm);
* `output`: the layer named `output` (the classifier every model names so);
* `others`: every other parameter.

`all` names the three together. `train.freeze_except` lists path patterns (fnmatch, on
'/'-joined paths such as `hidden_0/kernel` or `stage2_block1/bn1/*`) that stay trainable
even though their group is frozen: `freeze=('all',)` with one pattern trains that
pattern only; BatchNorm-only training is `freeze=('others', 'output')`.

What freezing is, exactly: a frozen parameter keeps its starting value bit for bit (the
update is never added to it, so not even a -0.0 turns into +0.0), and the optimizer holds
no state for it (no Adam moments, no momentum trace): `freeze_updates` hands the inner
optimizer only the trainable leaves, the frozen ones replaced by optax's empty
`MaskedNode`. BatchNorm running statistics are not parameters: they keep updating in
training mode, as in PyTorch with `requires_grad=False`. Pruning is unaffected: a frozen
prunable kernel is still pruned (its pruned entries zero, its kept entries frozen).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxtickets.errors import ConfigError
from jaxtickets.models import initializers
from jaxtickets.sparsity.masks import path_name
from jaxtickets.sparsity.naming import OUTPUT_LAYER

PyTree = Any
GROUPS = ("batchnorm", "output", "others")
ALL = "all"  # the three groups together


def group_of(path: str, batchnorm_modules: frozenset[str]) -> str:
    """The group of the parameter at `path` ('/'-joined, module path then leaf name)."""
    module = path.rsplit("/", 1)[0] if "/" in path else ""
    if module in batchnorm_modules:
        return "batchnorm"
    if OUTPUT_LAYER in module.split("/"):
        return "output"
    return "others"


def batchnorm_modules(variables: dict) -> frozenset[str]:
    """The module paths that hold running statistics: the model's BatchNorm layers (the
    same rule as model.bn_init's, models/initializers.py)."""
    return frozenset(initializers.batchnorm_modules(variables.get("batch_stats", {})))


def expand_groups(groups: Sequence[str], key: str = "train.freeze") -> frozenset[str]:
    """The named groups, 'all' expanded; unknown names are a ConfigError naming `key`."""
    chosen = set()
    for name in groups:
        if name == ALL:
            chosen.update(GROUPS)
        elif name in GROUPS:
            chosen.add(name)
        else:
            raise ConfigError(f"{key}: unknown parameter group {name!r}; choose from "
                              f"{GROUPS + (ALL,)}")
    return frozenset(chosen)


def frozen_leaves(variables: dict, groups: Sequence[str], exceptions: Sequence[str] = (),
                  model_label: str = "the model") -> Optional[PyTree]:
    """A tree of Python bools mirroring `variables['params']` (True: frozen), or None
    when nothing is frozen. Checks what a config cannot see by itself: a group the model
    lacks, a pattern matching nothing, nothing left to train."""
    chosen = expand_groups(groups)
    if not chosen:
        if exceptions:
            raise ConfigError("train.freeze_except: only read when train.freeze names a "
                              "group; leave it empty or freeze a group")
        return None
    bn = batchnorm_modules(variables)
    if "batchnorm" in groups and not bn:
        raise ConfigError(f"train.freeze: 'batchnorm' names no parameter: {model_label} "
                          "has no BatchNorm layer")
    flat, treedef = jax.tree_util.tree_flatten_with_path(variables["params"])
    paths = [path_name(p) for p, _ in flat]
    for pattern in exceptions:
        if not any(fnmatch.fnmatchcase(path, pattern) for path in paths):
            raise ConfigError(f"train.freeze_except: pattern {pattern!r} matches no "
                              f"parameter of {model_label}; its parameters are "
                              f"{paths[:8]}{' ...' if len(paths) > 8 else ''}")
    frozen = [group_of(path, bn) in chosen
              and not any(fnmatch.fnmatchcase(path, pat) for pat in exceptions)
              for path in paths]
    if all(frozen):
        raise ConfigError(f"train.freeze: every parameter of {model_label} would be "
                          "frozen; nothing would train")
    return jax.tree_util.tree_unflatten(treedef, frozen)


def _trainable_part(frozen: PyTree, tree: PyTree) -> PyTree:
    """`tree` with each frozen leaf (or subtree, e.g. a mask's None) replaced by an
    empty MaskedNode, which optax's transformations pass over and store nothing for."""
    return jax.tree_util.tree_map(lambda f, x: optax.MaskedNode() if f else x,
                                  frozen, tree)


def freeze_updates(inner: optax.GradientTransformationExtraArgs, frozen: PyTree
                   ) -> optax.GradientTransformationExtraArgs:
    """`inner` on the trainable leaves only; frozen leaves get zero updates and no
    state. Extra arguments shaped like the params (the `mask=`) are cut alike."""

    def init_fn(params):
        return inner.init(_trainable_part(frozen, params))

    def update_fn(updates, state, params=None, **extra):
        part = {name: _trainable_part(frozen, value) if name == "mask" else value
                for name, value in extra.items()}
        new, state = inner.update(_trainable_part(frozen, updates), state,
                                  None if params is None else _trainable_part(frozen, params),
                                  **part)
        merged = jax.tree_util.tree_map(
            lambda f, u, n: jnp.zeros_like(u) if f else n, frozen, updates, new)
        return merged, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def keep_frozen(before: PyTree, after: PyTree, frozen: Optional[PyTree]) -> PyTree:
    """`after` with every frozen leaf taken from `before` as it was (a static choice per
    leaf: no arithmetic touches a frozen value)."""
    if frozen is None:
        return after
    return jax.tree_util.tree_map(lambda f, b, a: b if f else a, frozen, before, after)


def describe(frozen: Optional[PyTree]) -> list[str]:
    """The frozen parameters' paths (for the run's log and tests)."""
    if frozen is None:
        return []
    flat, _ = jax.tree_util.tree_flatten_with_path(frozen)
    return [path_name(p) for p, f in flat if f]
