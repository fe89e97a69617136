"""FLOPs of one forward pass, dense and with a mask, found from the model's own calls.

Convention (stated once, used everywhere in reports):

* A multiply-accumulate (MAC) counts as 2 FLOPs.
* Only the kernels of `nn.Dense` and `nn.Conv` layers are counted. Biases, activations,
  pooling, normalization, dropout, reshapes and the loss are **not** counted (they are a
  few percent of the total for the networks here).
* A layer's dense MACs = kernel size x number of output positions per example (spatial
  positions for a convolution, 1 for a Dense on a flat vector). 'SAME' padding is counted
  as if the padded zeros were multiplied (the usual convention).
* Masked FLOPs = each kernel's dense FLOPs x that kernel's remaining fraction (the number
  of ones in its mask over its size): what a sparse kernel that skips pruned weights would
  do. Unpruned leaves (None in the mask) count fully.
* One training step on one example costs `TRAIN_STEP_FACTOR` = 3 forward passes (the
  forward pass plus a backward pass of about twice its cost: gradients with respect to
  the activations and to the weights), see `train_step_flops`.

Layer shapes are not hand-coded: the model is run under `jax.eval_shape` (no compute)
with a `flax.linen.intercept_methods` interceptor that records the input and output
shape of every `nn.Dense` / `nn.Conv` call, keyed by the module's path, which is also
the path of its kernel in the params (e.g. `conv_0/kernel`). An NNX model (wrapped by
`flax.nnx.bridge.ToLinen`, models/imported.py) is built abstractly and its `nnx.Linear` /
`nnx.Conv` calls recorded alike, keyed by their attribute path in the module graph,
which is their kernel's path in the linen params the bridge makes.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxtickets.sparsity.masks import path_name

PyTree = Any
FLOPS_PER_MAC = 2
TRAIN_STEP_FACTOR = 3
CONVENTION = ("2 FLOPs per multiply-accumulate of every nn.Dense and nn.Conv kernel, per "
              "example; biases, activations, pooling and normalization not counted; masked = "
              "each kernel's FLOPs x its remaining fraction; a train step = 3 x forward")


def _layer_calls(model: nn.Module, variables: dict, input_shape: Sequence[int],
                 dtype) -> list[tuple[str, tuple, tuple]]:
    """(module path, input shape, output shape) of every Dense/Conv call, batch of 1."""
    calls: list[tuple[str, tuple, tuple]] = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name == "__call__" and isinstance(module, (nn.Dense, nn.Conv)):
            calls.append(("/".join(str(p) for p in module.path),
                          tuple(np.shape(args[0])), tuple(np.shape(out))))
        return out

    x = jax.ShapeDtypeStruct((1, *input_shape), dtype)
    from flax.nnx import bridge

    if isinstance(model, bridge.ToLinen):
        return _nnx_layer_calls(model, x)
    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda v, inp: model.apply(v, inp, train=False), variables, x)
    return calls


_RECORDING = threading.local()  # the NNX calls being recorded, per thread
_RECORDERS: dict[type, type] = {}  # nnx.Linear/nnx.Conv (subclass) -> its recording twin


def _recorder(base: type) -> type:
    """A subclass of NNX layer class `base` whose calls are recorded while _RECORDING is
    active; instances of the abstract model are switched to it (nothing global changes)."""
    if base not in _RECORDERS:
        def __call__(self, inputs, *args, **kwargs):
            out = base.__call__(self, inputs, *args, **kwargs)
            calls = getattr(_RECORDING, "calls", None)
            if calls is not None:
                calls.append((_RECORDING.names[id(self)], tuple(np.shape(inputs)),
                              tuple(np.shape(out))))
            return out

        _RECORDERS[base] = type(base.__name__, (base,), {"__call__": __call__,
                                                         "__module__": base.__module__})
    return _RECORDERS[base]


def _nnx_layer_calls(model: nn.Module, x: jax.ShapeDtypeStruct
                     ) -> list[tuple[str, tuple, tuple]]:
    """_layer_calls of an NNX model behind flax.nnx.bridge.ToLinen: the module is built
    and called under jax.eval_shape (shapes only)."""
    from flax import nnx

    def run(inp):
        kwargs = dict(model.kwargs)
        if not model.skip_rng:
            kwargs["rngs"] = nnx.Rngs(0)
        module = model.nnx_class(*model.args, **kwargs)
        names = {}
        for path, node in nnx.iter_graph(module):
            if isinstance(node, (nnx.Linear, nnx.Conv)):
                names[id(node)] = "/".join(str(p) for p in path)
                node.__class__ = _recorder(type(node))
        _RECORDING.names = names
        return module(inp, train=False)

    _RECORDING.calls = []
    try:
        jax.eval_shape(run, x)
        return _RECORDING.calls
    finally:
        _RECORDING.calls = None
        _RECORDING.names = {}


def _remaining_fraction(mask_leaf: Optional[Any]) -> float:
    if mask_leaf is None:
        return 1.0
    m = np.asarray(mask_leaf)
    return float(np.count_nonzero(m)) / m.size


def forward_flops(model: nn.Module, params: PyTree, mask: Optional[PyTree],
                  input_shape: Sequence[int], *, extra_variables: Optional[dict] = None,
                  dtype=jnp.float32) -> dict:
    """Dense and masked FLOPs of one forward pass of one example (see the module docstring).

    Args:
      model: the Flax module (e.g. `models.create_model('conv4', 10)`).
      params: its params (arrays or `jax.ShapeDtypeStruct`s; never computed with).
      mask: a pytree mirroring `params` with None for unpruned leaves (sparsity/masks.py),
        or None for a dense network.
      input_shape: the shape of ONE example, without the batch axis (e.g. (28, 28, 1)).
      extra_variables: other collections the model reads, e.g. {'batch_stats': ...}.

    Returns a dict with `dense` (int) and `masked` (float) FLOPs per example, `density`
    (masked / dense), `layers` ({kernel path: macs, positions, dense, masked, remaining,
    input_shape, output_shape}), `uncounted_kernels` (kernel paths of the params that no
    Dense/Conv call used; their FLOPs are missing from the totals) and `convention`.
    """
    variables = {"params": params, **(extra_variables or {})}
    calls = _layer_calls(model, variables, input_shape, dtype)

    kernels = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = path_name(path)
        if name.endswith("kernel"):
            kernels[name] = leaf
    fractions = {}
    if mask is not None:
        flat, _ = jax.tree_util.tree_flatten_with_path(mask, is_leaf=lambda x: x is None)
        fractions = {path_name(p): _remaining_fraction(m) for p, m in flat}

    layers: dict[str, dict] = {}
    for module_path, in_shape, out_shape in calls:
        name = f"{module_path}/kernel" if module_path else "kernel"
        if name not in kernels:
            raise ValueError(f"flops: layer {module_path!r} has no kernel {name!r} in params")
        kernel_size = int(np.prod(np.shape(kernels[name])))
        positions = int(np.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1
        macs = kernel_size * positions
        remaining = fractions.get(name, 1.0)
        entry = layers.setdefault(name, {"macs": 0, "positions": 0, "dense": 0,
                                         "masked": 0.0, "remaining": remaining,
                                         "input_shape": in_shape[1:],
                                         "output_shape": out_shape[1:]})
        # A module called more than once (shared weights) adds each call.
        entry["macs"] += macs
        entry["positions"] += positions
        entry["dense"] += FLOPS_PER_MAC * macs
        entry["masked"] += FLOPS_PER_MAC * macs * remaining

    dense = sum(e["dense"] for e in layers.values())
    masked = sum(e["masked"] for e in layers.values())
    uncounted = sorted(n for n in kernels if n not in layers)
    return {"dense": dense, "masked": masked, "density": masked / dense if dense else math.nan,
            "layers": layers, "uncounted_kernels": uncounted, "convention": CONVENTION}


Number = Union[int, float]


def train_step_flops(forward: Union[Number, dict]) -> Union[Number, dict]:
    """FLOPs of one training step per example: 3 x forward (forward + backward ~ 2 x forward).

    `forward` is a number, or the dict of `forward_flops` (then {'dense', 'masked'} x 3).
    This is the usual convention (e.g. Kaplan et al. 2020's 6N per token = 3 x 2N); it
    ignores the optimizer update, which is per step, not per example, and small.
    """
    if isinstance(forward, dict):
        return {"dense": TRAIN_STEP_FACTOR * forward["dense"],
                "masked": TRAIN_STEP_FACTOR * forward["masked"]}
    return TRAIN_STEP_FACTOR * forward


def training_flops(forward: Number, examples_seen: int) -> float:
    """Total training FLOPs of a run: train_step_flops(forward) x examples processed."""
    return float(train_step_flops(forward)) * examples_seen
