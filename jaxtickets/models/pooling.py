"""The 2x2, stride-2 max-pool of Conv-2/4/6 and VGG, with a backward XLA:CPU runs fast.

`nn.max_pool`'s gradient is XLA's select-and-scatter, which XLA:CPU runs ~11x slower
than a plain elementwise pass (78 vs 6.9 ms on a 60x32x32x64 map; the Conv-4 step's
forward + backward 13% faster without it, BENCHMARKS.md target 3). Here the four
entries of each window are laid side by side, the forward pass takes their max, and
the backward pass hands the incoming gradient to the first entry equal to the max, in
row-major window order, as select-and-scatter does. The values and gradients are the
same bit for bit, ties included (tests/test_pooling.py), so no documented number
moves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _windows(x: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, H/2, W/2, C, 4): each 2x2 window's entries, row-major. An odd
    last row or column is dropped, as a VALID pool drops it."""
    n, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2]
    return (x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
            .reshape(n, h // 2, w // 2, c, 4))


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """nn.max_pool(x, (2, 2), strides=(2, 2)) on NHWC input, same values and gradient."""
    return _windows(x).max(axis=-1)


def _forward(x):
    windows = _windows(x)
    pooled = windows.max(axis=-1)
    return pooled, (windows, pooled, x.shape)


def _backward(residuals, grad):
    windows, pooled, shape = residuals
    hits = windows == pooled[..., None]
    first = hits & (jnp.cumsum(hits, axis=-1) == 1)
    # `0 +` as select-and-scatter adds into zeros: a -0.0 gradient arrives as +0.0.
    routed = 0 + jnp.where(first, grad[..., None], jnp.zeros((), grad.dtype))
    n, h, w, c = shape
    h2, w2 = h // 2, w // 2
    routed = (routed.reshape(n, h2, w2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
              .reshape(n, 2 * h2, 2 * w2, c))
    if (2 * h2, 2 * w2) != (h, w):  # the dropped odd row or column gets no gradient
        routed = jnp.pad(routed, ((0, 0), (0, h - 2 * h2), (0, w - 2 * w2), (0, 0)))
    return (routed,)


max_pool_2x2.defvjp(_forward, _backward)
