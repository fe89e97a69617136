"""P0's layerwise tickets (Sec. 4.1, App. C): prune only the first n conv layers.

"First" means forward order, which the params tree does not keep (its keys sort
alphabetically: 'output' before 'stage1_block0', 'conv_10' before 'conv_2'), so the
order is recorded from the model's own nn.Conv calls under `jax.eval_shape` (no
compute). Projection-shortcut convs count as layers where the forward pass calls them:
after a bottleneck's conv3, giving ResNet-50's 11 / 24 / 43 / 53 at its stage ends.
"""

from __future__ import annotations

import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxtickets.sparsity.masks import kernel_kind, path_name

PyTree = Any


def conv_layers_in_order(model: nn.Module, image_shape: tuple[int, ...]) -> list[str]:
    """Kernel names ('stage1_block0/conv1/kernel') of every nn.Conv, in the order the
    forward pass first calls them; each layer once."""
    order: list[str] = []

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, nn.Conv):
            name = "/".join(str(p) for p in module.path) + "/kernel"
            if name not in order:
                order.append(name)
        return next_fun(*args, **kwargs)

    sample = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    key = jax.random.PRNGKey(0)
    with nn.intercept_methods(interceptor):
        variables = jax.eval_shape(
            lambda: model.init({"params": key, "dropout": key}, sample, train=False))
    flat, _ = jax.tree_util.tree_flatten_with_path(variables["params"])
    kernels = {path_name(p) for p, leaf in flat if kernel_kind(p, leaf) is not None}
    missing = [name for name in order if name not in kernels]
    if missing:
        raise ValueError(f"layer_order: conv calls {missing} have no kernel in the params")
    return order


def first_conv_layers(model: nn.Module, image_shape: tuple[int, ...], n: int) -> set[str]:
    """Kernel names of the first n conv layers in forward order (1 <= n <= total)."""
    order = conv_layers_in_order(model, image_shape)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= len(order):
        raise ValueError(f"layer_order: n={n!r} must be an integer in 1..{len(order)}, the "
                         f"number of conv layers of {type(model).__name__}")
    return set(order[:int(n)])


def restrict_mask(mask: PyTree, allowed: set[str]) -> PyTree:
    """The mask with None (never pruned) for every prunable leaf not named in `allowed`.

    Names of `allowed` that are in the tree but already None stay None: e.g. ResNet
    shortcut convs count toward n, but are pruned only if the policy allows shortcuts.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(mask, is_leaf=lambda x: x is None)
    unknown = sorted(set(allowed) - {path_name(p) for p, _ in flat})
    if unknown:
        raise ValueError(f"restrict_mask: layers {unknown} are not in the mask")
    restricted = jax.tree_util.tree_map_with_path(
        lambda path, m: m if m is not None and path_name(path) in allowed else None,
        mask, is_leaf=lambda x: x is None)
    if all(m is None for m in jax.tree_util.tree_leaves(restricted)):
        raise ValueError(f"restrict_mask: none of the allowed layers {sorted(allowed)} is "
                         f"prunable under this mask")
    return restricted
