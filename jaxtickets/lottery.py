"""Lottery tickets for your own model and training loop: masks, pruning, a masked
optimizer, rewinding and the IMP loop as pure functions over parameter pytrees.

Everything here works on any pytree of arrays: Flax linen `params` dicts, NNX states
(`nnx.state(model, nnx.Param)`, or the state half of `nnx.split(model, nnx.Param, ...)`),
plain dicts. A **mask** is a pytree of the same structure whose leaves are boolean arrays
(True: kept) for the prunable weights and `None` for the leaves that are never pruned.

Leaves are named by their **path string**: the keys from the root to the leaf joined by
`/`, list and tuple positions as numbers, and the `value` attribute of an NNX variable
left out. A linen `Dense_0` layer's kernel is `'Dense_0/kernel'`; an NNX module's
attribute `conv1` gives `'conv1/kernel'`, and the second entry of an `nnx.List` called
`layers` gives `'layers/1/kernel'`. Masks are matched to params by these names, so a
mask fits a tree with other container types (a dict and a `FrozenDict`, an NNX state of
variables and its `nnx.as_pure` form) as long as the names and shapes agree.

The pruning is the toolkit's own (exact counts per group, seeded tie-breaks): for the
same weights, criterion, rates and seed, `prune` returns the mask the experiment driver
computes (docs/design.md, invariant 4), and `masked` keeps pruned weights at exactly
zero as the driver's train step does (invariant 2).

Only jax, numpy and optax are imported; Orbax is imported by `save_mask` and
`load_mask` when they are called.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtickets.sparsity import criteria, masks as _masks, pruning as _pruning

PyTree = Any
Prunable = Callable[[str, Any], bool]

__all__ = ["ones_mask", "prune", "apply_mask", "rewind", "masked", "MaskedState",
           "density", "remaining", "counts", "Counts", "imp", "Level", "save_mask",
           "load_mask", "SCOPES"]

SCOPES = ("layerwise", "global")
_REWIND_MODES = (None, "snapshot")


# ---- names and structure ----------------------------------------------------------------
def _is_none(x: Any) -> bool:
    return x is None


def _path_str(path: tuple) -> str:
    """'a/b/0/kernel' for a pytree path; an NNX variable's trailing `.value` is dropped."""
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
        path = path[:-1]
    return _masks.path_name(path)


def _flatten(tree: PyTree) -> tuple[list[str], list[Any], Any]:
    """(path strings, leaves, treedef) of `tree`, None counted as a leaf."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_none)
    return [_path_str(p) for p, _ in flat], [leaf for _, leaf in flat], treedef


def _first_difference(names: Sequence[str], other: Sequence[str], what: str,
                      other_what: str) -> str:
    """Why two ordered name lists differ, naming the first path where they do."""
    have, got = set(names), set(other)
    for a, b in zip(names, other):
        if a != b:
            if a not in got:
                return f"at {a!r}: a leaf of {what}, missing from {other_what}"
            if b not in have:
                return f"at {b!r}: a leaf of {other_what}, missing from {what}"
            return f"at {a!r}: the leaves come in another order"
    if len(names) > len(other):
        return f"at {names[len(other)]!r}: a leaf of {what}, missing from {other_what}"
    return f"at {other[len(names)]!r}: a leaf of {other_what}, missing from {what}"


def _fit(params: PyTree, mask: PyTree, where: str, what: str = "params"
         ) -> tuple[list[str], list[Any], list[Any], Any]:
    """Checks that `mask` fits `params`: the same leaf names in the same order, a boolean
    array of the leaf's shape or None at each. Returns (names, params leaves, mask leaves,
    params treedef); raises one ValueError naming the first path that differs."""
    names, leaves, treedef = _flatten(params)
    m_names, m_leaves, _ = _flatten(mask)
    if m_names != names:
        raise ValueError(f"{where}: the mask does not fit the {what} "
                         f"{_first_difference(names, m_names, 'the ' + what, 'the mask')} "
                         "(a mask made for other parameters?)")
    for name, leaf, m in zip(names, leaves, m_leaves):
        if m is None:
            continue
        if leaf is None:
            raise ValueError(f"{where}: the mask does not fit the {what} at {name!r}: an "
                             f"array in the mask, None in the {what}")
        if tuple(np.shape(m)) != tuple(np.shape(leaf)):
            raise ValueError(f"{where}: the mask does not fit the {what} at {name!r}: "
                             f"shape {tuple(np.shape(m))} in the mask, "
                             f"{tuple(np.shape(leaf))} in the {what}")
        dtype = getattr(m, "dtype", None)
        if dtype is None or np.dtype(dtype) != np.bool_:
            raise ValueError(f"{where}: the mask at {name!r} has dtype {dtype}; masks are "
                             "boolean (True: kept)")
    return names, leaves, m_leaves, treedef


def _same_tree(params: PyTree, other: PyTree, where: str, what: str) -> PyTree:
    """`other` (e.g. the initial weights) checked against `params` by names and shapes,
    returned with params' structure."""
    names, leaves, treedef = _flatten(params)
    o_names, o_leaves, _ = _flatten(other)
    if o_names != names:
        raise ValueError(f"{where}: {what} does not fit the params "
                         f"{_first_difference(names, o_names, 'the params', what)}")
    for name, leaf, o in zip(names, leaves, o_leaves):
        if np.shape(leaf) != np.shape(o):
            raise ValueError(f"{where}: {what} does not fit the params at {name!r}: "
                             f"shape {tuple(np.shape(o))} in {what}, "
                             f"{tuple(np.shape(leaf))} in the params")
    return jax.tree_util.tree_unflatten(treedef, o_leaves)


def _is_weight_kernel(path: str, leaf: Any) -> bool:
    """The default prunable set: 2-D and 4-D leaves named `kernel` (the weights of dense
    and 2-D convolution layers in Flax), never biases or normalization parameters."""
    return path.rsplit("/", 1)[-1] == "kernel" and np.ndim(leaf) in (2, 4)


def _check_rate(rate: Any, what: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
        raise ValueError(f"{what} must be a number in [0, 1), got {rate!r}")
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{what} must be in [0, 1) (the fraction of the remaining weights "
                         f"pruned), got {rate!r}")
    return float(rate)


def _zero_pruned(params: PyTree, mask: PyTree, where: str, what: str) -> PyTree:
    _, leaves, m_leaves, treedef = _fit(params, mask, where, what)
    out = [p if m is None else jnp.where(m, p, jnp.zeros((), jnp.asarray(p).dtype))
           for p, m in zip(leaves, m_leaves)]
    return jax.tree_util.tree_unflatten(treedef, out)


# ---- masks --------------------------------------------------------------------------------
def ones_mask(params: PyTree, prunable: Optional[Prunable] = None) -> PyTree:
    """The all-kept mask of `params`.

    Args:
        params: a parameter pytree (linen params, an NNX state, any tree of arrays).
        prunable: which leaves may be pruned, a predicate `(path_str, leaf) -> bool` on
            the leaf's path string (e.g. `'Dense_0/kernel'`, `'conv1/kernel'`,
            `'layers/1/kernel'`; see the module docs). Default: the 2-D and 4-D leaves
            named `kernel`, i.e. the weights of dense and convolution layers; biases,
            normalization scales and statistics are never pruned.

    Returns:
        A pytree of params' structure: a boolean numpy array of ones (all kept) at each
        prunable leaf, `None` at every other leaf.

    Raises:
        ValueError: no leaf is prunable.
    """
    rule = _is_weight_kernel if prunable is None else prunable
    names, leaves, treedef = _flatten(params)
    out = [np.ones(np.shape(leaf), dtype=bool) if leaf is not None and rule(name, leaf)
           else None for name, leaf in zip(names, leaves)]
    if all(m is None for m in out):
        raise ValueError("ones_mask: no leaf of the params is prunable (the default takes "
                         "the 2-D and 4-D leaves named 'kernel'); the leaves are "
                         f"{names[:8]}{' ...' if len(names) > 8 else ''}")
    return jax.tree_util.tree_unflatten(treedef, out)


def apply_mask(params: PyTree, mask: PyTree) -> PyTree:
    """`params` with every pruned weight set to exactly +0.0.

    Args:
        params: a parameter pytree.
        mask: a mask that fits `params` (same leaf names and shapes).

    Returns:
        A tree of params' structure and dtypes: pruned entries are +0.0 (bit pattern 0,
        never -0.0), kept entries and unprunable leaves are unchanged, bit for bit.

    Raises:
        ValueError: the mask does not fit the params; the message names the first path
            that differs.
    """
    return _zero_pruned(params, mask, "apply_mask", "params")


def rewind(snapshot: PyTree, mask: PyTree) -> PyTree:
    """The weights a pruned network restarts from: `snapshot` with the mask applied.

    Args:
        snapshot: the weights saved at the rewind step (the initial weights, or those
            your training loop saved after k steps).
        mask: the mask of the next round.

    Returns:
        `apply_mask(snapshot, mask)`: every weight, pruned or not, comes from the
        snapshot, and the pruned ones are exactly zero. Start a fresh optimizer state
        from it (`masked(tx, mask).init(...)`); the mask is the only thing carried over.

    Raises:
        ValueError: the mask does not fit the snapshot.
    """
    return _zero_pruned(snapshot, mask, "rewind", "snapshot")


# ---- counts -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Counts:
    """Kept and total weights of a mask's prunable leaves.

    Attributes:
        layers: `{path string: (kept, total)}` per prunable leaf, in tree order.
        kept: kept weights over all prunable leaves.
        total: prunable weights over all prunable leaves.
    """

    layers: dict[str, tuple[int, int]]
    kept: int
    total: int

    @property
    def density(self) -> float:
        """kept / total."""
        return self.kept / self.total


def counts(mask: PyTree) -> Counts:
    """Per layer and overall, how many prunable weights the mask keeps.

    Args:
        mask: a mask (bool arrays, None for unprunable leaves).

    Returns:
        A `Counts`: `layers` maps each prunable leaf's path string to (kept, total);
        `kept` and `total` sum them. Unprunable leaves are not counted.

    Raises:
        ValueError: the mask has no prunable leaf.
    """
    names, leaves, _ = _flatten(mask)
    layers = {name: (int(np.count_nonzero(np.asarray(m))), int(np.size(m)))
              for name, m in zip(names, leaves) if m is not None}
    if not layers:
        raise ValueError("counts: the mask has no prunable leaf (every leaf is None)")
    return Counts(layers, sum(k for k, _ in layers.values()),
                  sum(t for _, t in layers.values()))


def remaining(mask: PyTree) -> int:
    """The number of prunable weights the mask keeps (`counts(mask).kept`)."""
    return counts(mask).kept


def density(mask: PyTree) -> float:
    """The fraction of the prunable weights the mask keeps (1.0 for `ones_mask`).

    After L rounds of pruning a fraction r of the remaining weights it is (1 - r)^L, up
    to the rounding of each round's count to whole weights."""
    return counts(mask).density


# ---- pruning ------------------------------------------------------------------------------
def _layer_rates(names: list[str], m_leaves: list[Any], rate: float,
                 rates: Optional[Mapping[str, float]]) -> dict[str, float]:
    layers = [name for name, m in zip(names, m_leaves) if m is not None]
    out = {name: rate for name in layers}
    if not rates:
        return out
    checked = {pattern: _check_rate(r, f"prune: rates[{pattern!r}]")
               for pattern, r in rates.items()}
    matched = set()
    for name in layers:
        module = name.rsplit("/", 1)[0]
        hits = [p for p in checked
                if fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(module, p)]
        matched.update(hits)
        if hits:
            out[name] = checked[hits[0]]
    for pattern in checked:
        if pattern not in matched:
            raise ValueError(f"prune: the rates pattern {pattern!r} matches no prunable "
                             f"layer; the prunable layers are {layers}")
    return out


def prune(params: PyTree, mask: PyTree, rate: float, scope: str = "layerwise",
          criterion: str = "large_final", init: Optional[PyTree] = None,
          rates: Optional[Mapping[str, float]] = None, seed: int = 0) -> PyTree:
    """The next mask: removes `rate` of the remaining weights, lowest scores first.

    Each group (each prunable layer for `scope="layerwise"`, all prunable weights
    together for `scope="global"`) loses exactly round-half-up(rate x remaining) of the
    weights the mask still keeps; weights already pruned stay pruned. The weights with
    the lowest criterion scores go; ties (e.g. equal magnitudes, or `random`) are broken
    by a draw seeded with `seed`, so the counts never drift and the same inputs give the
    same mask. For the same weights, criterion, rates and seed the result equals the
    experiment driver's (`prune_layerwise` / `prune_global` in
    `jaxtickets.sparsity.pruning`).

    Args:
        params: the trained weights that are scored.
        mask: the current mask (fits `params`).
        rate: the fraction in [0, 1) of the remaining weights to remove, per layer or
            over all prunable weights.
        scope: `"layerwise"` or `"global"`. Global pruning ranks every prunable weight
            against every other (each layer's scores are still computed on its own).
        criterion: a registered mask criterion (`jaxtickets.sparsity.criteria`):
            `large_final` (magnitude pruning; the default), `small_final`,
            `large_init`, `small_init`, `large_init_large_final`,
            `small_init_small_final`, `magnitude_increase`, `movement`, `random`,
            `large_final_same_sign`, `large_final_diff_sign`, or one you registered.
        init: the initial weights, for the criteria that read them (all but
            `large_final`, `small_final` and `random`); a tree that fits `params`.
        rates: per-layer rates for `scope="layerwise"`: `{pattern: rate}`. A pattern is
            an `fnmatch` glob (`*`, `?`, `[...]`; `*` also matches `/`) matched against
            the layer's path string (`'Dense_2/kernel'`) or its module path
            (`'Dense_2'`); the first pattern in the mapping's order that matches a layer
            gives its rate, and layers matched by none get `rate`. E.g.
            `{"output": 0.1}` or `{"conv*": 0.1, "Dense_2": 0.1}`.
        seed: seeds the tie-breaking draw.

    Returns:
        A new mask of params' structure (boolean numpy arrays, None elsewhere).

    Raises:
        ValueError: the mask (or `init`) does not fit the params, naming the first path
            that differs; an unknown scope or criterion; a criterion that needs `init`
            without it; a rate outside [0, 1); `rates` with global scope or a pattern
            that matches no prunable layer.
    """
    names, _, m_leaves, treedef = _fit(params, mask, "prune")
    rate = _check_rate(rate, "prune: rate")
    if scope not in SCOPES:
        raise ValueError(f"prune: unknown scope {scope!r}; choose one of {SCOPES}")
    if criterion not in criteria.CRITERIA:
        raise ValueError(f"prune: unknown criterion {criterion!r}; choose one of "
                         f"{criteria.CRITERIA.names()}")
    if criterion in criteria.NEEDS_INIT and init is None:
        raise ValueError(f"prune: criterion {criterion!r} scores weights by their initial "
                         "values; pass init= (the weights training started from)")
    if init is not None:
        init = _same_tree(params, init, "prune", "`init`")
    fitted = jax.tree_util.tree_unflatten(treedef, m_leaves)
    if scope == "global":
        if rates:
            raise ValueError("prune: rates (per-layer rates) apply to scope='layerwise' "
                             "only; global pruning takes the one rate")
        return _pruning.prune_global(params, fitted, rate, seed, criterion, init)
    per_layer = _layer_rates(names, m_leaves, rate, rates)
    return _pruning.prune_per_layer(params, fitted,
                                    lambda path, leaf: per_layer[_path_str(path)],
                                    seed, criterion, init)


# ---- the masked optimizer -----------------------------------------------------------------
class MaskedState(NamedTuple):
    """The state of `masked(tx, mask)`: the inner optimizer's state and the kept-entry
    arrays of the prunable leaves, in tree order (carried in the state so that a jitted
    step traces them rather than baking them in as constants)."""

    inner: Any
    keep: tuple


def masked(tx: optax.GradientTransformation, mask: PyTree
           ) -> optax.GradientTransformationExtraArgs:
    """`tx` with pruned weights held at exactly zero.

    The returned transformation has optax's usual
    `init(params)` / `update(updates, state, params=None, **extra)` signature; the mask
    is bound here and carried in the state. Each update

    1. zeroes the gradients of pruned weights before `tx` sees them, so momentum, Adam's
       moments and gradient clipping never see them;
    2. runs `tx` (any optax optimizer: SGD, momentum, Adam, AdamW, weight decay,
       schedules, chains);
    3. replaces the update of every pruned weight by `-params` (or by +0.0 when `update`
       is called without params).

    Guarantee: with `params` passed to `update`, `optax.apply_updates(params, updates)`
    (and `nnx.Optimizer.update`, which calls it) leaves every pruned weight exactly
    +0.0, bit pattern 0, whatever its value before (x + (-x) is +0.0 for any finite x,
    and -0.0 + 0.0 is +0.0), so neither decoupled weight decay nor momentum nor a -0.0
    can leave a non-zero there. Without params, pruned weights keep their value, so start
    from `apply_mask(params, mask)` (or `rewind(snapshot, mask)`), which is the intended
    use in any case. Make `masked` the outermost transformation: an optax transformation
    chained after it could rescale the `-params` updates.

    Args:
        tx: the optimizer to wrap.
        mask: the mask; it must fit the params passed to `init` and the updates.

    Returns:
        An `optax.GradientTransformationExtraArgs` whose state is a `MaskedState`.

    Raises:
        ValueError: (at init or update) the mask does not fit the params or the updates,
            naming the first path that differs; the mask has no prunable leaf.
    """
    _, m_leaves, _ = _flatten(mask)
    if all(m is None for m in m_leaves):
        raise ValueError("masked: the mask has no prunable leaf (every leaf is None)")
    inner = optax.with_extra_args_support(tx)

    def init_fn(params):
        _, _, fitted, _ = _fit(params, mask, "masked(...).init")
        keep = tuple(jnp.asarray(m, dtype=bool) for m in fitted if m is not None)
        return MaskedState(inner.init(params), keep)

    def _full(keep: tuple) -> list:
        it = iter(keep)
        return [None if m is None else next(it) for m in m_leaves]

    def update_fn(updates, state, params=None, **extra):
        _, grads, _, treedef = _fit(updates, mask, "masked(...).update", "updates")
        full = _full(state.keep)
        grads = [g if k is None or g is None else jnp.where(k, g, jnp.zeros((), g.dtype))
                 for g, k in zip(grads, full)]
        new, inner_state = inner.update(jax.tree_util.tree_unflatten(treedef, grads),
                                        state.inner, params, **extra)
        _, new_leaves, _, new_def = _fit(new, mask, "masked(...).update", "updates")
        if params is None:
            fill = [None] * len(new_leaves)
        else:
            fill = _fit(params, mask, "masked(...).update")[1]
        out = []
        for u, k, p in zip(new_leaves, full, fill):
            if k is None or u is None:
                out.append(u)
            elif p is None:
                out.append(jnp.where(k, u, jnp.zeros((), u.dtype)))
            else:
                out.append(jnp.where(k, u, -jnp.asarray(p)))
        return (jax.tree_util.tree_unflatten(new_def, out),
                MaskedState(inner_state, state.keep))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ---- iterative magnitude pruning ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Level:
    """One round of `imp`.

    Attributes:
        level: 0 for the dense network, then 1, 2, ...
        mask: the mask the round trained under.
        start: the weights it started from, `rewind(point, mask)`: with `mask`, the
            ticket.
        params: the trained weights `train` returned.
    """

    level: int
    mask: PyTree
    start: PyTree
    params: PyTree

    @property
    def density(self) -> float:
        """The fraction of the prunable weights the round kept."""
        return density(self.mask)


def _trained(out: Any, rewind_mode: Optional[str], level: int, like: PyTree
             ) -> tuple[PyTree, Optional[PyTree]]:
    """(trained params, snapshot or None) from what `train` returned."""
    if rewind_mode == "snapshot":
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError("imp(rewind='snapshot'): train must return the pair "
                             f"(trained params, rewind snapshot); level {level} returned "
                             f"a {type(out).__name__}")
        trained, snapshot = out
    else:
        trained, snapshot = out, None
    hint = ("" if rewind_mode == "snapshot" else
            "; with rewind=None train returns the trained params alone")
    try:
        _same_tree(like, trained, f"imp: level {level}", "what `train` returned")
    except ValueError as err:
        raise ValueError(f"{err}{hint}") from None
    return trained, snapshot


def imp(init_params: PyTree, train: Callable[[PyTree, PyTree], Any], levels: int,
        rate: float, rewind: Optional[str] = None, scope: str = "layerwise",
        criterion: str = "large_final", rates: Optional[Mapping[str, float]] = None,
        prunable: Optional[Prunable] = None, seed: int = 0) -> list[Level]:
    """Iterative magnitude pruning around your training function.

    Level 0 trains the dense network from `init_params`. Each later level prunes the
    previous level's trained weights (`prune(..., rate, scope, criterion, rates,
    seed=seed + level)`), rewinds to the rewind point with the new mask
    (`rewind(point, mask)`) and trains again. After L levels the mask keeps
    (1 - rate)^L of each layer (layer-wise) or of all prunable weights (global), up to
    rounding each count to whole weights.

    Args:
        init_params: the initial weights, theta_0.
        train: your training, called as `train(params, mask)` once per level: it starts
            from `params` (pruned weights already zero) and returns the trained params,
            or with `rewind="snapshot"` the pair `(trained params, snapshot)`, the
            snapshot being a copy of the params your loop saved at the rewind step
            (e.g. after 500 steps). Train with `masked(tx, mask)` so that pruned weights
            stay zero. `density(mask) < 1` tells the pruned levels from the dense one
            (e.g. to run only the steps after the rewind step).
        levels: the number of pruning rounds; `levels + 1` networks are trained.
        rate: the fraction of the remaining weights pruned per round.
        rewind: where pruned networks restart. `None`: `init_params` at every level
            (Frankle & Carbin, 2019). `"snapshot"`: the snapshot the level-0 (dense) run
            returned, at every level (weight rewinding, Frankle et al., 2020); the
            snapshots of later levels are ignored (they may be None).
        scope: `"layerwise"` or `"global"`, as in `prune`.
        criterion: the mask criterion, as in `prune`. Criteria that read initial weights
            compare with the rewind point (`init_params`, or the snapshot).
        rates: per-layer rate patterns for layer-wise pruning, as in `prune`.
        prunable: which leaves are pruned, as in `ones_mask`.
        seed: level L's mask is pruned with seed `seed + L`.

    Returns:
        The `Level` of every round, dense first: `result[L].mask`, `.start` (with the
        mask, the ticket), `.params` (trained), `.density`.

    Raises:
        ValueError: a bad argument (as `prune` raises), an unknown `rewind`, or `train`
            returning something that does not fit `init_params` (a pair when
            `rewind=None`, a lone tree when `rewind="snapshot"`).
    """
    if rewind not in _REWIND_MODES:
        raise ValueError(f"imp: unknown rewind {rewind!r}; choose None (reset to "
                         "init_params) or 'snapshot' (train returns (params, snapshot))")
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 0:
        raise ValueError(f"imp: levels must be a whole number >= 0, got {levels!r}")
    _check_rate(rate, "imp: rate")
    mask = ones_mask(init_params, prunable)
    point = init_params
    results: list[Level] = []
    for level in range(levels + 1):
        if level:
            mask = prune(results[-1].params, mask, rate, scope=scope, criterion=criterion,
                         init=point, rates=rates, seed=seed + level)
        start = _zero_pruned(point, mask, f"imp: level {level}", "rewind point")
        trained, snapshot = _trained(train(start, mask), rewind, level, init_params)
        if level == 0 and rewind == "snapshot":
            if snapshot is None:
                raise ValueError("imp(rewind='snapshot'): the dense run (level 0) returned "
                                 "no snapshot; return (trained params, snapshot)")
            point = _same_tree(init_params, snapshot, "imp: level 0", "the snapshot")
        results.append(Level(level, mask, start, trained))
    return results


# ---- storage ------------------------------------------------------------------------------
def save_mask(path: str | os.PathLike, mask: PyTree) -> None:
    """Writes the mask as an Orbax checkpoint directory at `path`.

    The prunable leaves are stored as `{path string: bool array}` (None leaves are not
    stored), atomically and with a sha256 digest of every array: a directory at `path`
    is always a complete mask, and an existing one is replaced only once the new one is
    written. Put it beside your own checkpoints, e.g. `ckpt_dir / "mask"`.

    Args:
        path: the directory to write (created; replaced if it holds a mask).
        mask: the mask.

    Raises:
        ValueError: the mask has no prunable leaf, or a leaf that is not boolean.
        OSError: the file system refused the write, naming `path`.
    """
    from jaxtickets import checkpoints

    names, leaves, _ = _flatten(mask)
    flat = {}
    for name, m in zip(names, leaves):
        if m is None:
            continue
        arr = np.asarray(m)
        if arr.dtype != np.bool_:
            raise ValueError(f"save_mask: the mask at {name!r} has dtype {arr.dtype}; "
                             "masks are boolean")
        flat[name] = arr
    if not flat:
        raise ValueError("save_mask: the mask has no prunable leaf (every leaf is None)")
    checkpoints.save_tree(path, flat)


def load_mask(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Reads a mask that `save_mask` wrote, in the structure of `like`.

    Args:
        path: the directory `save_mask` wrote.
        like: the params (or any tree of their structure, e.g. of
            `jax.ShapeDtypeStruct`s) the mask is for; leaves whose path string is not
            stored become None.

    Returns:
        The mask, bit for bit as saved (boolean numpy arrays), in like's structure.

    Raises:
        FileNotFoundError: no finished mask at `path`.
        ValueError: the stored mask does not fit `like`, naming the first path that
            differs (a stored layer `like` lacks, or another shape).
        jaxtickets.checkpoints.CheckpointError: the stored arrays are unreadable or do
            not match their digest.
    """
    from jaxtickets import checkpoints

    if not checkpoints.exists(path):
        raise FileNotFoundError(f"load_mask: no finished mask at {os.fspath(path)!r}")
    stored = checkpoints.read_json(os.path.join(path, checkpoints.DIGEST_FILE))
    stored = stored.get("leaves", {}) if isinstance(stored, dict) else {}
    names, leaves, treedef = _flatten(like)
    by_key = {jax.tree_util.keystr((jax.tree_util.DictKey(n),)): n for n in names}
    for key in sorted(stored):
        if key not in by_key:
            raise ValueError(f"load_mask: the stored mask does not fit `like` at {key}: the "
                             "mask has this leaf and `like` has not (a mask saved for other "
                             "parameters?)")
    target = {}
    for name, leaf in zip(names, leaves):
        entry = stored.get(jax.tree_util.keystr((jax.tree_util.DictKey(name),)))
        if entry is None:
            continue
        if leaf is None or list(np.shape(leaf)) != list(entry.get("shape", [])):
            raise ValueError(f"load_mask: the stored mask does not fit `like` at {name!r}: "
                             f"stored shape {tuple(entry.get('shape', []))}, `like` "
                             f"{None if leaf is None else tuple(np.shape(leaf))}")
        target[name] = np.zeros(np.shape(leaf), dtype=bool)
    flat = checkpoints.load_tree(path, target)
    return jax.tree_util.tree_unflatten(
        treedef, [np.asarray(flat[n]) if n in flat else None for n in names])
