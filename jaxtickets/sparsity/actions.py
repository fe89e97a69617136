"""What a ticket's weights start from: P4's mask-1 and mask-0 actions and P2's controls.

Every function changes only the prunable kernels and returns new trees (the inputs are
never modified); everything else (biases, BN, unpruned layers) keeps the rewind values.
sigma_layer is the standard deviation of the layer's realized initialization theta_0,
the whole tensor (docs/choices.md#constant-std: the realized one needs no
knowledge of the initializer and differs from it by sampling noise only).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import numpy as np

from jaxtickets.registry import Registry
from jaxtickets.sparsity.masks import path_name

PyTree = Any


def _map_kept(fn: Callable[[str, np.ndarray, np.ndarray], np.ndarray], params: PyTree,
              mask: PyTree) -> PyTree:
    """Applies fn(name, weights, mask) to every prunable leaf, in tree order."""
    def visit(path, p, m):
        if m is None:
            return p
        return fn(path_name(path), np.asarray(p), np.asarray(m, bool)).astype(np.asarray(p).dtype)

    return jax.tree_util.tree_map_with_path(visit, params, mask,
                                            is_leaf=lambda x: x is None)


def _leaf(tree: PyTree, name: str) -> np.ndarray:
    flat = {path_name(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
    return flat[name]


def layer_sigmas(theta0: PyTree, mask: PyTree) -> dict[str, float]:
    """sigma_layer of each prunable kernel: the std of its whole initial tensor."""
    out = {}

    def record(name, w, m):
        out[name] = float(np.std(np.asarray(w, np.float64)))
        return w

    _map_kept(record, theta0, mask)
    return out


# P4's mask-1 actions by name (Sec. 3): a rule (kept rewind values, the fresh
# initialization's values at the kept entries, sigma_layer, rng) -> the kept entries'
# new values; None keeps the rewind values. register_mask1 adds one (and its '_sign'
# variant, which keeps each rewind value's sign).
KeptRule = Callable[[np.ndarray, Optional[np.ndarray], float, np.random.Generator], np.ndarray]
_MASK1: Registry[Optional[KeptRule]] = Registry("mask-1 action")
_NEEDS_FRESH: set[str] = set()


def register_mask1(name: str, rule: Optional[KeptRule], needs_fresh: bool = False,
                   signed: bool = True) -> None:
    variants = {name: rule}
    if signed and rule is not None:
        def signed_rule(kept, fresh, sigma, rng, rule=rule):
            return np.abs(rule(kept, fresh, sigma, rng)) * np.where(kept < 0, -1.0, 1.0)
        variants[f"{name}_sign"] = signed_rule
    for key, value in variants.items():
        _MASK1.add(key, value)
        if needs_fresh:
            _NEEDS_FRESH.add(key)


def unregister_mask1(name: str) -> None:
    """Removes an action and its '_sign' variant."""
    for key in (name, f"{name}_sign"):
        _MASK1.remove(key)
        _NEEDS_FRESH.discard(key)


def mask1_names() -> tuple[str, ...]:
    return _MASK1.names()


def needs_fresh(action: str) -> bool:
    """Whether the action draws from a fresh initialization (the driver makes one)."""
    return action in _NEEDS_FRESH


register_mask1("rewind", None)
register_mask1("reinit", lambda kept, fresh, sigma, rng: fresh, needs_fresh=True)
register_mask1("reshuffle", lambda kept, fresh, sigma, rng: kept[rng.permutation(kept.size)])
register_mask1("constant", lambda kept, fresh, sigma, rng:
               sigma * rng.choice(np.array([-1.0, 1.0]), size=kept.size))
MASK1_ACTIONS = mask1_names()  # the built-in ones, in P4's order


def mask1_weights(action: str, rewind: PyTree, fresh: PyTree, mask: PyTree,
                  sigmas: dict[str, float], seed: int) -> PyTree:
    """Kept weights after P4's mask-1 action (Sec. 3): 'rewind' keeps the rewind values,
    'reinit' takes a fresh draw from the initial distribution, 'reshuffle' permutes the
    kept rewind values within the layer, 'constant' is +-sigma_layer with a random sign;
    '_sign' variants take the sign of the rewind (initial) value."""
    rule, rng = _MASK1.get(action, "mask1_action"), np.random.default_rng(seed)

    def act(name, w, m):
        if rule is None:
            return w
        out = w.copy()
        out[m] = rule(w[m], _leaf(fresh, name)[m] if fresh is not None else None,
                      sigmas[name], rng)
        return out

    return _map_kept(act, rewind, mask)


def add_noise(weights: PyTree, mask: PyTree, sigmas: dict[str, float], scale: float,
              seed: int) -> PyTree:
    """P2 App. F.7: Gaussian noise of std scale x sigma_layer added to the kept weights."""
    rng = np.random.default_rng(seed)

    def noisy(name, w, m):
        out = w.astype(np.float64).copy()
        out[m] += scale * sigmas[name] * rng.standard_normal(int(m.sum()))
        return out

    return _map_kept(noisy, weights, mask)


def resample_kept(weights: PyTree, mask: PyTree, seed: int) -> PyTree:
    """P2 App. F.3: kept weights drawn (with replacement) from the layer's own kept
    initial values, i.e. from the ticket's per-layer distribution D_m."""
    rng = np.random.default_rng(seed)

    def draw(name, w, m):
        out = w.copy()
        kept = w[m]
        if kept.size:
            out[m] = kept[rng.integers(0, kept.size, size=kept.size)]
        return out

    return _map_kept(draw, weights, mask)


def signed_constant(weights: PyTree, mask: PyTree, sigmas: dict[str, float]) -> PyTree:
    """P4 Sec. 5's signed constant: kept weights become sigma_layer x sign(w)."""
    return _map_kept(lambda name, w, m: np.where(m, sigmas[name] * np.where(w < 0, -1.0, 1.0),
                                                 w), weights, mask)


# P4's mask-0 actions by name (Sec. 4): which entries carry a value, per layer, from
# (new mask, previous mask, previous value mask, |w_i| <= |w_f|); None: the trainable
# mask itself (pruned weights are zero).
ValueRule = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_MASK0: Registry[Optional[ValueRule]] = Registry("mask-0 action")


def register_mask0(name: str, rule: Optional[ValueRule]) -> None:
    _MASK0.add(name, rule)


def mask0_names() -> tuple[str, ...]:
    return _MASK0.names()


register_mask0("zero", None)
register_mask0("frozen_init", lambda new, old, old_values, grew: np.ones_like(new))
register_mask0("hybrid", lambda new, old, old_values, grew:
               new | (old_values & ~old) | (old & ~new & grew))
MASK0_ACTIONS = mask0_names()  # the built-in ones


def value_mask(action: str, new_mask: PyTree, previous_mask: PyTree,
               previous_values: Optional[PyTree], initial: PyTree, final: PyTree
               ) -> Optional[PyTree]:
    """Which entries carry a value after P4's mask-0 action (Sec. 4): trainable entries
    plus the frozen ones, which hold their initial value. 'zero': None (the trainable
    mask itself); 'frozen_init': every entry; 'hybrid': entries pruned now whose
    magnitude did not shrink in the run that pruned them (|w_f| >= |w_i|), plus those
    frozen earlier. `previous_values` is the previous level's value mask (None: its
    trainable mask)."""
    rule = _MASK0.get(action, "mask0_action")
    if rule is None:
        return None
    previous_values = previous_values if previous_values is not None else previous_mask

    def carry(path, new, old, old_values, wi, wf):
        if new is None:
            return None
        new, old, old_values = (np.asarray(x, bool) for x in (new, old, old_values))
        grew = np.abs(np.asarray(wf)) >= np.abs(np.asarray(wi))
        return rule(new, old, old_values, grew)

    return jax.tree_util.tree_map_with_path(
        carry, new_mask, previous_mask, previous_values, initial, final,
        is_leaf=lambda x: x is None)
