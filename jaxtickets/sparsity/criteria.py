"""P4's mask criteria: a score M(w_i, w_f) per unpruned weight; the highest scores stay.

Scores are computed per layer on the currently unpruned entries (the alpha of the two
mixed criteria aligns each layer's percentiles), and pruning then removes the lowest
scores with seeded random tie-breaking (pruning.py), so `random` (all scores equal) is
a uniformly random mask with the same counts. Formulas: digest Sec. 1 (P4 Fig. 2).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from jaxtickets.registry import Registry

Criterion = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _alpha(w_init: np.ndarray, w_final: np.ndarray) -> np.float32:
    """Percentile alignment of |w_i| to |w_f| (docs/choices.md#percentile-alignment: the ratio of medians)."""
    init_median = float(np.median(np.abs(w_init))) if w_init.size else 0.0
    ratio = float(np.median(np.abs(w_final))) / init_median if init_median > 0 else 1.0
    return np.float32(ratio)


def _same_sign_magnitude(w_init: np.ndarray, w_final: np.ndarray, sign: float) -> np.ndarray:
    """max(0, sign * w_i * w_f / |w_i|): |w_f| where the signs (dis)agree, else 0."""
    return np.maximum(np.float32(0), np.float32(sign) * np.sign(w_init) * w_final)


CRITERIA: Registry[Criterion] = Registry("mask criterion")
NEEDS_INIT: set[str] = set()  # criteria that read w_init


def register(name: str, criterion: Criterion, needs_init: bool = True) -> None:
    """Adds a criterion: criterion(w_init, w_final) -> one score per unpruned weight of a
    layer (1-D float32 arrays; the highest scores stay). `needs_init`: it reads w_init."""
    CRITERIA.add(name, criterion)
    if needs_init:
        NEEDS_INIT.add(name)


def unregister(name: str) -> None:
    CRITERIA.remove(name)
    NEEDS_INIT.discard(name)


register("large_final", lambda wi, wf: np.abs(wf), needs_init=False)
register("small_final", lambda wi, wf: -np.abs(wf), needs_init=False)
register("large_init", lambda wi, wf: np.abs(wi))
register("small_init", lambda wi, wf: -np.abs(wi))
register("large_init_large_final",
         lambda wi, wf: np.minimum(_alpha(wi, wf) * np.abs(wi), np.abs(wf)))
register("small_init_small_final",
         lambda wi, wf: -np.maximum(_alpha(wi, wf) * np.abs(wi), np.abs(wf)))
register("magnitude_increase", lambda wi, wf: np.abs(wf) - np.abs(wi))
register("movement", lambda wi, wf: np.abs(wf - wi))
register("random", lambda wi, wf: np.zeros_like(wf), needs_init=False)
register("large_final_same_sign", lambda wi, wf: _same_sign_magnitude(wi, wf, 1.0))
register("large_final_diff_sign", lambda wi, wf: _same_sign_magnitude(wi, wf, -1.0))


def score(name: str, w_init: np.ndarray, w_final: np.ndarray) -> np.ndarray:
    """float32 scores of one layer's unpruned entries (1-D arrays of equal length)."""
    criterion = CRITERIA.get(name, "pruning.criterion")
    w_init = np.asarray(w_init, np.float32)
    w_final = np.asarray(w_final, np.float32)
    return np.asarray(criterion(w_init, w_final), np.float32)
