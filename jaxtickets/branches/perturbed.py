"""The ticket's own weights, perturbed: noise_C adds C x sigma_layer Gaussian noise to
the kept weights (P2 App. F.7, e.g. noise_0.5); reinit_dm resamples them from the
distribution of the kept weights (P4 Sec. 4)."""

from __future__ import annotations

import math

from jaxtickets.branches.base import Branch, starting
from jaxtickets.sparsity import actions

NOISE_PREFIX = "noise_"


class Noise(Branch):
    random = True
    description = "the ticket's weights plus C x sigma_layer noise"

    def __init__(self, scale: float, name: str):
        self.scale, self.name = scale, name

    @classmethod
    def parse(cls, name: str) -> "Noise | None":
        """The branch of a name 'noise_C' with a finite C > 0; None for other names."""
        if not name.startswith(NOISE_PREFIX):
            return None
        try:
            scale = float(name[len(NOISE_PREFIX):])
        except ValueError:
            return None
        return cls(scale, name) if math.isfinite(scale) and scale > 0 else None

    def weights(self, ctx, mask, seed):
        return starting(ctx, actions.add_noise(ctx.ticket["params"], mask, ctx.sigmas(),
                                               self.scale, seed))


class ReinitDm(Branch):
    name = "reinit_dm"
    random = True
    description = "kept weights resampled from their distribution"

    def weights(self, ctx, mask, seed):
        return starting(ctx, actions.resample_kept(ctx.ticket["params"], mask, seed))
