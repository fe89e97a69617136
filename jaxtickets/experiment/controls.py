"""Control branches: what each one trains (or evaluates) beside a level's ticket.

A control is a mask and the weights it starts from, both derived from the level's
ticket and the replicate's initializations. Adding one means a name in
config_schema.BRANCHES and a case in `control_mask` and/or `control_weights`.
Masks that are random draws are stored once under the branch's directory, so a
rerun reuses them (the driver does that; the functions here are pure).

A control whose mask or start weights are drawn at random is one sample of a
distribution, so a level may run several independent draws of it
(`pruning.control_draws`, P2's three reinitializations per trial); draw 0 keeps the
branch's plain name and directory so that workdirs from before draws existed resume,
draw d > 0 runs under `<branch>_draw<d>`. Controls listed in
`pruning.controls_from_scratch` train from step 0 for the full duration (P3's RR and
SDT) instead of from the ticket's rewind step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from jaxtickets.config_schema import noise_scale
from jaxtickets.sparsity import actions, baselines

PyTree = Any
EVALUATED_ONLY = ("supermask_init", "supermask_constant")  # P4 Sec. 5: no training
DRAWN_MASKS = ("random_ticket", "random_ticket_local", "prune_at_init", "random_adjusted")
FRESH_WEIGHTS = ("random_reinit", "random_ticket", "random_ticket_local", "random_adjusted")
# Controls with a random mask or random start weights (noise_C branches too): the ones
# that `pruning.control_draws` repeats. The supermasks are functions of the ticket and
# theta_0 alone, so a second draw would repeat the first run exactly.
RANDOM_CONTROLS = FRESH_WEIGHTS + ("prune_at_init", "reinit_dm", "small_dense")


def runs_at(branch: str, level: int) -> bool:
    """Supermask evaluations also run on the dense level 0 (P4's untrained baseline);
    learned supermasks only there (they find their own mask); the rest need a pruned
    level."""
    if branch == "learned_supermask":
        return level == 0
    return branch in EVALUATED_ONLY or level > 0


def is_trained(branch: str) -> bool:
    return branch not in EVALUATED_ONLY


def is_random(branch: str) -> bool:
    return branch in RANDOM_CONTROLS or noise_scale(branch) is not None


def draws(branch: str, control_draws: int) -> int:
    """How many independent runs of `branch` a level trains: `control_draws` for a random
    control, one for the ticket and the deterministic controls."""
    return control_draws if is_random(branch) else 1


def run_name(branch: str, draw: int) -> str:
    """The directory of a draw under its level: draw 0 is the branch itself (as before
    draws existed, so older workdirs keep their runs), draw d > 0 `<branch>_draw<d>`."""
    return branch if draw == 0 else f"{branch}_draw{draw}"


def from_scratch(spec: str) -> frozenset[str]:
    """The branches of `pruning.controls_from_scratch` ('a,b'; '' for none)."""
    return frozenset(b.strip() for b in spec.split(",") if b.strip())


@dataclasses.dataclass
class LevelContext:
    """A level's ticket on the evaluation model, and what its controls draw from.
    Weight trees are {"params", "batch_stats"} dicts."""

    ticket: PyTree             # the weights the ticket starts from (rewind weights)
    mask: PyTree               # the ticket's mask
    initial: PyTree            # the evaluation model's theta_0
    fresh: Optional[PyTree]    # this level's fresh initialization (random reinit)
    dense_final: Optional[PyTree]  # the trajectory's trained dense network
    natural_zero_threshold: float

    def sigmas(self) -> dict[str, float]:
        return actions.layer_sigmas(self.initial["params"], self.mask)


def control_mask(branch: str, ctx: LevelContext, seed: int) -> PyTree:
    """The control's mask: the ticket's, or one derived from it with the same count."""
    if branch == "random_ticket":
        return baselines.permute_global(ctx.mask, seed)
    if branch == "random_ticket_local":
        return baselines.permute_local(ctx.mask, seed)
    if branch == "prune_at_init":
        return baselines.magnitude_at_init(ctx.mask, ctx.initial["params"], seed)
    if branch == "random_adjusted":
        if ctx.dense_final is None:
            raise ValueError("random_adjusted needs the trajectory's trained dense network")
        return baselines.random_adjusted(ctx.mask, ctx.dense_final["params"], seed,
                                         ctx.natural_zero_threshold)
    return ctx.mask


def control_weights(branch: str, ctx: LevelContext, mask: PyTree, seed: int) -> PyTree:
    """The weights the control starts from (pruned entries are zeroed by the mask)."""
    if branch in FRESH_WEIGHTS:
        return ctx.fresh
    if branch in ("prune_at_init", "supermask_init"):  # supermasks: the untrained network
        return ctx.initial
    if branch == "supermask_constant":
        return {"params": actions.signed_constant(ctx.initial["params"], mask, ctx.sigmas()),
                "batch_stats": ctx.initial["batch_stats"]}
    params = ctx.ticket["params"]
    scale = noise_scale(branch)
    if scale is not None:
        params = actions.add_noise(params, mask, ctx.sigmas(), scale, seed)
    elif branch == "reinit_dm":
        params = actions.resample_kept(params, mask, seed)
    else:
        raise ValueError(f"branch {branch!r} has no start weights here")
    return {"params": params, "batch_stats": ctx.ticket["batch_stats"]}
