"""One weight initializer for every kernel of a model, chosen by name (`model.init`).

The models carry their own initializers (Gaussian Glorot for LeNet, Conv-x and VGG, He
fan_out for the ResNets' and MobileNet's convs). Papers sometimes state another one for
the same architecture (P2 App. I: its ResNet-20 used Gaussian Glorot), and comparing
initializations on one architecture needs them interchangeable, so `initialize_kernels`
redraws every conv and dense kernel (the `output` layer, 1x1 shortcuts and depthwise
convs included) after `model.init`. Biases and BatchNorm scale/bias stay as the model
made them: initializers are defined for the weights that multiply inputs.

BatchNorm's scale and bias have their own choice, `model.bn_init`
(`initialize_batchnorm`), the options OpenLTH offers: how BN is initialized changes
how trainable and prunable a network is, and it is independent of the kernels'.

Fans follow Flax and PyTorch for kernels laid out (..., in, out), conv kernels HWIO:
receptive field = product of the leading dims, fan_in = receptive field x in channels,
fan_out = receptive field x out channels. A depthwise conv (3, 3, 1, C) thus has
fan_in 9, as PyTorch's (C, 1, 3, 3) weight does.

Each kernel's key is the run's key folded with a CRC-32 of the kernel's path, not a
split in tree order: the values of a layer then depend only on the key, its path and
its shape, so layers that two models share (e.g. a source model and an evaluation model
with another output size) start identical, which transferring tickets relies on.
Drawn kernels are numpy arrays.
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxtickets.errors import ConfigError

PyTree = Any
DEFAULT = "default"  # keep each model's own initializers
KERNEL = "kernel"
# Separates these draws from the ones Flax derives from the same key inside model.init.
_SALT = 0x1A7E
# Standard draws come in blocks of this many values, block i from fold_in(layer key, i),
# by one compiled program per power-of-two block count: drawing each kernel shape
# directly would cost an XLA compile (about a second on a CPU) per distinct shape.
BLOCK = 1 << 14


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel laid out (..., in, out)."""
    if len(shape) < 2:
        raise ValueError(f"a kernel has at least 2 dims, got shape {shape}")
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def kaiming_std(shape: tuple[int, ...]) -> float:
    """PyTorch's kaiming_normal_ default (mode fan_in, ReLU gain sqrt 2): sqrt(2/fan_in)."""
    return math.sqrt(2.0 / fans(shape)[0])


def glorot_std(shape: tuple[int, ...]) -> float:
    """Gaussian Glorot (xavier_normal_): sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return math.sqrt(2.0 / (fan_in + fan_out))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _blocks(key: jax.Array, count: int, dist: str) -> jax.Array:
    def block(i):
        k = jax.random.fold_in(key, i)
        if dist == "normal":
            return jax.random.normal(k, (BLOCK,), jnp.float32)
        return jax.random.uniform(k, (BLOCK,), jnp.float32, -1.0, 1.0)

    return jax.vmap(block)(jnp.arange(count, dtype=jnp.uint32))


def standard_draw(key: jax.Array, shape: tuple[int, ...], dist: str) -> np.ndarray:
    """`shape` float32 values, standard normal or uniform on [-1, 1), as a host array
    (the driver keeps starting weights on the host); a draw of n values from a key is
    the first n of any larger draw from it."""
    n = math.prod(shape)
    count = 1 << max(0, math.ceil(math.log2(max(1, -(-n // BLOCK)))))
    return np.asarray(_blocks(key, count, dist)).reshape(-1)[:n].reshape(shape)


def glorot_normal(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Untruncated, as the toolkit's models/layers.glorot_normal and the papers'."""
    return (glorot_std(shape) * standard_draw(key, shape, "normal")).astype(dtype)


def kaiming_normal(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    return (kaiming_std(shape) * standard_draw(key, shape, "normal")).astype(dtype)


def kaiming_uniform(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Kaiming's std from a uniform draw: U(-b, b) with b = sqrt(3) std (PyTorch's
    kaiming_uniform_ with its ReLU gain, not nn.Conv2d's default a = sqrt 5)."""
    bound = math.sqrt(3.0) * kaiming_std(shape)
    return (bound * standard_draw(key, shape, "uniform")).astype(dtype)


def orthogonal(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Gain 1 (PyTorch's orthogonal_ default): the kernel as a (fan_in, out) matrix has
    orthonormal columns where fan_in >= out, orthonormal rows otherwise; the Q of a
    Gaussian matrix's QR, signs fixed by R's diagonal so that it is Haar-distributed."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = standard_draw(key, (max(rows, cols), min(rows, cols)), "normal").astype(np.float64)
    q, r = np.linalg.qr(a)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    return (q if rows >= cols else q.T).reshape(shape).astype(dtype)


def binary(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A signed constant at kaiming_normal's std: every weight is +std or -std, the sign
    of a Gaussian draw (0, which a float draw can hit, counts as +)."""
    signs = np.where(standard_draw(key, shape, "normal") >= 0, 1.0, -1.0)
    return (kaiming_std(shape) * signs).astype(dtype)


INITIALIZERS: dict[str, Callable[[jax.Array, tuple[int, ...], Any], np.ndarray]] = {
    "glorot_normal": glorot_normal,
    "kaiming_normal": kaiming_normal,
    "kaiming_uniform": kaiming_uniform,
    "orthogonal": orthogonal,
    "binary": binary,
}


def init_names() -> list[str]:
    """Every value `model.init` accepts."""
    return [DEFAULT] + sorted(INITIALIZERS)


def check_name(name: str, key: str = "model.init") -> None:
    if name != DEFAULT and name not in INITIALIZERS:
        raise ConfigError(f"{key}: unknown initializer {name!r}; "
                          f"choose one of {init_names()}")


def _path_string(path: tuple) -> str:
    parts = []
    for entry in path:
        parts.append(str(getattr(entry, "key", getattr(entry, "name",
                                                       getattr(entry, "idx", entry)))))
    return "/".join(parts)


def is_kernel(path: tuple, leaf: Any) -> bool:
    """A conv or dense kernel: a `kernel` leaf of 2 or more dims."""
    last = path[-1] if path else None
    name = getattr(last, "key", getattr(last, "name", None))
    return name == KERNEL and len(leaf.shape) >= 2


def layer_key(key: jax.Array, path: str, salt: int = _SALT) -> jax.Array:
    """The key of the leaf at `path`: independent of which other layers exist. Each
    kind of draw (kernels, BatchNorm scales) has its own `salt`, so that no two kinds
    share values."""
    return jax.random.fold_in(jax.random.fold_in(key, salt), zlib.crc32(path.encode()))


def initialize_kernels(name: str, params: PyTree, key: jax.Array) -> PyTree:
    """`params` with every kernel redrawn by initializer `name` (others unchanged);
    'default' returns `params` itself."""
    check_name(name)
    if name == DEFAULT:
        return params
    init = INITIALIZERS[name]
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    leaves = [init(layer_key(key, _path_string(p)), tuple(leaf.shape), leaf.dtype)
              if is_kernel(p, leaf) else leaf for p, leaf in flat]
    return jax.tree_util.tree_unflatten(treedef, leaves)


# ---- BatchNorm scale and bias (model.bn_init) -------------------------------------------
SCALE, BIAS = "scale", "bias"
# Not _SALT: a BN layer's scales must not be a function of the same stream as the
# kernels' draws (their paths differ too, but a salt of their own makes it certain).
_BN_SALT = 0xB0B1


def _fixed_scale(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.ones(shape, dtype)


def _uniform_scale(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    """U(0, 1), as torch.rand: the [-1, 1) standard draw moved onto [0, 1]."""
    return ((standard_draw(key, shape, "uniform") + 1.0) / 2.0).astype(dtype)


def _signed_scale(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    """U(-1, 1): a scale's sign flips a channel, which 'positive_negative' explores."""
    return standard_draw(key, shape, "uniform").astype(dtype)


# name -> (scale drawn from the layer's key, shape and dtype; the constant bias).
# 'fixed' is Flax's and PyTorch's own BatchNorm init, set explicitly; 'ones' is
# OpenLTH's 'oneone'.
BN_INITIALIZERS: dict[str, tuple[Callable[[jax.Array, tuple[int, ...], Any], np.ndarray],
                                 float]] = {
    "fixed": (_fixed_scale, 0.0),
    "ones": (_fixed_scale, 1.0),
    "uniform": (_uniform_scale, 0.0),
    "positive_negative": (_signed_scale, 0.0),
}


def bn_init_names() -> list[str]:
    """Every value `model.bn_init` accepts."""
    return [DEFAULT] + sorted(BN_INITIALIZERS)


def check_bn_name(name: str, key: str = "model.bn_init") -> None:
    if name != DEFAULT and name not in BN_INITIALIZERS:
        raise ConfigError(f"{key}: unknown BatchNorm initializer {name!r}; "
                          f"choose one of {bn_init_names()}")


def batchnorm_modules(batch_stats: PyTree) -> set[str]:
    """The paths of the modules that keep running statistics: BatchNorm layers. A
    LayerNorm or GroupNorm also has `scale` and `bias` params but no batch_stats, so
    the collection, not a layer's name, tells them apart (models name their BN layers
    freely: `bn1`, `bn_3`, `pointwise_bn_12`, a user's own)."""
    flat = jax.tree_util.tree_flatten_with_path(batch_stats)[0]
    return {_path_string(path[:-1]) for path, _ in flat}


def _leaf_name(path: tuple) -> Any:
    last = path[-1] if path else None
    return getattr(last, "key", getattr(last, "name", None))


def initialize_batchnorm(name: str, params: PyTree, batch_stats: PyTree,
                         key: jax.Array) -> PyTree:
    """`params` with the scale and bias of every BatchNorm layer (a module that has
    `batch_stats`) set by BN initializer `name`, all other leaves unchanged; 'default'
    returns `params` itself. A scale is drawn from the key of its own path, as kernels
    are, so layers two models share start alike. Refused for a model without
    BatchNorm: the setting would change nothing."""
    check_bn_name(name)
    if name == DEFAULT:
        return params
    modules = batchnorm_modules(batch_stats)
    if not modules:
        raise ConfigError(f"model.bn_init: {name!r} sets BatchNorm scales and biases, "
                          "and the model has no BatchNorm layer; use 'default'")
    draw_scale, bias = BN_INITIALIZERS[name]

    def leaf_value(path: tuple, leaf: Any) -> Any:
        which = _leaf_name(path)
        if which not in (SCALE, BIAS) or _path_string(path[:-1]) not in modules:
            return leaf
        shape = tuple(leaf.shape)
        if which == SCALE:
            return draw_scale(layer_key(key, _path_string(path), _BN_SALT), shape,
                              leaf.dtype)
        return np.full(shape, bias, leaf.dtype)

    return jax.tree_util.tree_map_with_path(leaf_value, params)
