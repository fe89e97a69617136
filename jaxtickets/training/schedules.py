"""Learning-rate schedules in steps: constant, step decay, linear warmup, cosine.

Boundaries arrive already converted to steps (see durations.py). The schedule is
a function of the global step, so a run rewound to step k resumes it at k.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import optax

SCHEDULES = ("constant", "step", "cosine")
# train.* keys that only one schedule reads; train.decay_at is checked on its own, before
# the sources' (config_schema._validate_train).
SCHEDULE_KEYS = {"step": ("decay_factor",)}


def build_schedule(name: str, base_lr: float, total_steps: int, warmup_steps: int = 0,
                   boundaries: Sequence[int] = (), decay_factor: float = 0.1
                   ) -> optax.Schedule:
    """A schedule with optional linear warmup from 0 over `warmup_steps` (P2 Sec. 4)."""
    if name == "constant":
        main = optax.constant_schedule(base_lr)
    elif name == "step":
        main = optax.piecewise_constant_schedule(
            base_lr, {int(b): decay_factor for b in boundaries})
    elif name == "cosine":
        main = optax.cosine_decay_schedule(base_lr, max(total_steps, 1))
    else:
        raise ValueError(f"train.schedule: unknown schedule {name!r}; "
                         f"choose one of {SCHEDULES}")
    if warmup_steps <= 0:
        return main

    def schedule(step):
        warm = jnp.minimum(1.0, step / warmup_steps)
        return warm * main(step)

    return schedule
