"""P3's small-dense baseline (SDT): the same architecture, narrower, with as many kernel
weights as a ticket keeps (docs/choices.md#small-dense).

Every width is first scaled by one factor s (bisection on s, widths max(1, round(s*w))),
then single width groups move by +-1 (greedy) toward the target; if that stalls more
than 1% away, one group moves by +-1 and another is re-solved exactly (the coarse groups
of tiny nets need such trades). Once within 1%, moves only make the widths more uniform.
Counts are exact: kernel shapes come from the model's abstract params (no compute), are
fitted once as dims linear in the widths (G + 1 probes) and the result is re-checked.
Widths never exceed the original ones; num_classes and input channels never change.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np

from jaxtickets.models import abstract_variables
from jaxtickets.models.convnets import ConvNet
from jaxtickets.models.lenet import LeNet
from jaxtickets.models.mobilenet import MobileNetV1
from jaxtickets.models.resnet import ResNet
from jaxtickets.models.vgg import POOL, VGG
from jaxtickets.sparsity.masks import kernel_kind, path_name

# Fields holding layer widths, per supported model class. AlexNet fixes its conv widths
# inside the module, so it cannot be shrunk uniformly.
WIDTH_FIELDS: dict[type, tuple[str, ...]] = {
    LeNet: ("hidden",), ConvNet: ("widths", "fc"), ResNet: ("widths", "stem_width"),
    VGG: ("cfg",), MobileNetV1: ("widths", "stem_width"),
}
TOLERANCE = 0.01  # the promise: within 1% of the target wherever the grid allows
_SHAPES: dict[tuple, dict[str, tuple]] = {}


def width_fields(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """{field: widths} of the model's resizable layers (VGG's 'cfg' without its pools;
    ResNet's stem_width only when set)."""
    names = next((f for cls, f in WIDTH_FIELDS.items() if isinstance(model, cls)), None)
    if names is None:
        raise ValueError(f"small_dense: model {type(model).__name__} has no width fields "
                         f"covering its layers (supported: "
                         f"{sorted(c.__name__ for c in WIDTH_FIELDS)})")
    out = {}
    for name in names:
        value = getattr(model, name)
        if value is None:
            continue
        if isinstance(value, (int, np.integer)):
            out[name] = (int(value),)
        else:
            out[name] = tuple(int(v) for v in value if not (isinstance(v, str) and v == POOL))
    return out


def _with_widths(model: nn.Module, flat: Sequence[int]) -> nn.Module:
    """The model with its width groups (in `width_fields` order) set to `flat`."""
    changes, i = {}, 0
    for name, values in width_fields(model).items():
        new = [int(v) for v in flat[i:i + len(values)]]
        i += len(values)
        old = getattr(model, name)
        if isinstance(old, (int, np.integer)):
            changes[name] = new[0]
        elif name == "cfg":
            it = iter(new)
            changes[name] = tuple(v if isinstance(v, str) and v == POOL else next(it)
                                  for v in old)
        else:
            changes[name] = tuple(new)
    return model.clone(**changes)


def _cache_key(model: nn.Module, image_shape: tuple[int, ...]):
    fields = tuple((f.name, getattr(model, f.name)) for f in dataclasses.fields(model)
                   if f.name not in ("parent", "name"))
    key = (type(model), fields, tuple(image_shape))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def kernel_shapes(model: nn.Module, image_shape: tuple[int, ...]) -> dict[str, tuple]:
    """{kernel path: shape} of every kernel leaf, from abstract params (cached)."""
    key = _cache_key(model, image_shape)
    if key is not None and key in _SHAPES:
        return _SHAPES[key]
    params = abstract_variables(model, image_shape)["params"]
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    shapes = {path_name(p): tuple(leaf.shape) for p, leaf in flat
              if kernel_kind(p, leaf) is not None}
    if key is not None:
        _SHAPES[key] = shapes
    return shapes


def kernel_weight_count(model: nn.Module, image_shape: tuple[int, ...]) -> int:
    """Total size of all kernel leaves (conv, dense, output, shortcut) of the params."""
    return int(sum(math.prod(s) for s in kernel_shapes(model, image_shape).values()))


def _linear_counter(shapes: Callable, full: tuple[int, ...]) -> Optional[Callable]:
    """A fast exact count for models whose kernel dims are each a constant or linear in
    one width group (all here): fitted from G + 1 shape probes, None when that fails
    (kernels appear or vanish, or a dim moves with two groups)."""
    base = shapes(full)
    dims = {name: [(d, 0, None) for d in shape] for name, shape in base.items()}
    for g, width in enumerate(full):
        if width < 2:
            continue
        probe = shapes(full[:g] + (width - 1,) + full[g + 1:])
        if probe.keys() != base.keys():
            return None
        for name, shape in probe.items():
            if len(shape) != len(base[name]):
                return None
            for axis, (d0, d1) in enumerate(zip(base[name], shape)):
                if d0 != d1:
                    if dims[name][axis][2] is not None:
                        return None
                    dims[name][axis] = (d0, d0 - d1, g)
    terms = [[(d0, slope, g) for d0, slope, g in layer] for layer in dims.values()]

    def count(w: tuple[int, ...]) -> int:
        return sum(math.prod(d0 if g is None else d0 + slope * (w[g] - full[g])
                             for d0, slope, g in layer) for layer in terms)

    return count


def _line_search(count: Callable, w: tuple[int, ...], j: int, full: tuple[int, ...],
                 target: int) -> tuple[int, ...]:
    """w with group j set to the value in [1, full[j]] whose count is closest to target
    (the count grows with each width, so bisect for the first value reaching it)."""
    lo, hi = 1, full[j]
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(w[:j] + (mid,) + w[j + 1:]) < target else (lo, mid)
    candidates = [w[:j] + (v,) + w[j + 1:] for v in {lo, max(1, lo - 1)}]
    return min(candidates, key=lambda c: (abs(count(c) - target), c))


def _search(count: Callable, full: tuple[int, ...], target: int) -> tuple[int, ...]:
    """Uniform scale, then +-1 steps and trades ranked by (error, floored at the
    tolerance; spread of the per-group scale factors; error): within the tolerance the
    most uniform widths win over a closer count (chasing the count alone leaves LeNet
    at 5% with a single unit in its last hidden layer)."""
    tol = TOLERANCE * target

    def err(w: tuple[int, ...]) -> int:
        return abs(count(w) - target)

    def rank(w: tuple[int, ...]) -> tuple:
        logs = [math.log(v / f) for v, f in zip(w, full)]
        mean = sum(logs) / len(logs)
        return max(err(w), tol), sum((x - mean) ** 2 for x in logs), err(w)

    def scaled(s: float) -> tuple[int, ...]:
        return tuple(max(1, min(f, math.floor(s * f + 0.5))) for f in full)

    lo, hi = 0.0, 1.0  # uniform factor: count(scaled(lo)) < target <= count(scaled(hi))
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(scaled(mid)) < target else (lo, mid)
    w = min(scaled(lo), scaled(hi), key=rank)
    groups = range(len(full))
    while True:
        while True:  # greedy +-1 steps on single groups
            steps = [w[:i] + (w[i] + d,) + w[i + 1:] for i in groups for d in (-1, 1)
                     if 1 <= w[i] + d <= full[i]]
            best = min(steps, key=rank, default=w)
            if rank(best) >= rank(w):
                break
            w = best
        if err(w) <= tol:
            return w
        # Stalled outside the tolerance: move one group by +-1 and re-solve another.
        trades = [_line_search(count, s, j, full, target)
                  for s in [w] + steps for j in groups]
        best = min(trades, key=rank)
        if rank(best) >= rank(w):
            return w
        w = best


def small_dense_model(model: nn.Module, target_kernel_weights: int,
                      image_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """The narrowed model and its kernel-weight count: within 1% of the target wherever
    the width grid allows (else the closest the search finds), widths as uniform as that
    leaves. Raises ValueError for targets above the full model or below all-widths-1."""
    fields = width_fields(model)
    full = tuple(v for values in fields.values() for v in values)
    target = int(target_kernel_weights)

    def exact(w: tuple[int, ...]) -> int:
        return kernel_weight_count(_with_widths(model, w), image_shape)

    top, bottom = exact(full), exact(tuple(1 for _ in full))
    if target > top:
        raise ValueError(f"small_dense: target {target} kernel weights exceeds the full "
                         f"{type(model).__name__}'s {top}")
    if target < bottom:
        raise ValueError(f"small_dense: target {target} kernel weights is below {bottom}, "
                         f"the count with every width 1")
    if target == top:
        return model, top
    fast = _linear_counter(lambda w: kernel_shapes(_with_widths(model, w), image_shape), full)
    if fast is not None and fast(tuple(1 for _ in full)) != bottom:
        fast = None
    w = _search(fast, full, target) if fast is not None else None
    if w is None or fast(w) != exact(w):  # the fit is checked; else search on real counts
        w = _search(exact, full, target)
    return _with_widths(model, w), exact(w)
