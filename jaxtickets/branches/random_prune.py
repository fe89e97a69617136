"""random_prune_<strategy>[_at_<start>]: OpenLTH's `randomly_prune` branch as a family of
controls, one per (mask strategy, start weights), so any of them train side by side.

Strategies (the mask; counts are of the prunable set, the mask's non-None leaves, so a
layer the pruning policy leaves out stays unpruned):
  layerwise  the ticket's mask shuffled within each layer: every layer keeps its count.
  global     shuffled over the whole prunable set: the total count is kept, the
             layer-wise counts are not.
  even       every layer at the ticket's overall density, counts by largest remainder
             (sparsity/baselines.even_counts): floor or ceil of density x layer size,
             summing to exactly the ticket's count.
  identity   the ticket's mask itself (deterministic: one run per level).
Starts (the weights the run starts from, masked by the new mask, and the step):
  init    the evaluation model's theta_0, trained from step 0.
  rewind  the ticket's own start weights, from the ticket's start step (the default, as
          in OpenLTH); identity_at_rewind is the ticket trained again.
  end     the weights the level's ticket reached at the end of its training, trained
          again from step 0; read from the ticket's run, so the plan runs it after.
A random strategy is drawn pruning.control_draws times per level from the draw's own
seed (the permutation stream): draw d of every start of a strategy shuffles alike, so
its starts are compared on one mask. The drawn mask is stored beside the run.
"""

from __future__ import annotations

from typing import Optional

import jax

from jaxtickets.branches.base import Branch, PyTree
from jaxtickets.sparsity import baselines
from jaxtickets.sparsity.masks import apply_mask

PREFIX = "random_prune_"
STRATEGIES = {
    "layerwise": ("the ticket's mask shuffled within each layer", baselines.permute_local),
    "global": ("the ticket's mask shuffled over all prunable layers",
               baselines.permute_global),
    "even": ("a random mask at the ticket's density in every layer",
             baselines.even_density),
    "identity": ("the ticket's mask", None),
}
STARTS = {"init": "from theta_0 at step 0",
          "rewind": "from the ticket's rewind weights and step",
          "end": "from the ticket's trained weights at step 0"}
DEFAULT_START = "rewind"
FAMILY = (f"{PREFIX}S[_at_A] with strategy S one of {', '.join(STRATEGIES)} and start A "
          f"one of {', '.join(STARTS)} ({DEFAULT_START} if left out), e.g. "
          f"{PREFIX}global_at_init")


class RandomPrune(Branch):
    """One (strategy, start) of the family; `parse` builds it from its name."""

    def __init__(self, strategy: str, start: str, name: str):
        self.strategy, self.start, self.name = strategy, start, name
        self.random = self.draws_mask = STRATEGIES[strategy][1] is not None
        self.reads_trained_ticket = start == "end"
        self.description = f"{STRATEGIES[strategy][0]}, {STARTS[start]}"

    @classmethod
    def parse(cls, name: str) -> Optional["RandomPrune"]:
        """The branch of 'random_prune_S' or 'random_prune_S_at_A'; None for a name of
        another family or with an unknown strategy or start."""
        if not name.startswith(PREFIX):
            return None
        strategy, at, start = name[len(PREFIX):].partition("_at_")
        start = start if at else DEFAULT_START
        if strategy not in STRATEGIES or start not in STARTS:
            return None
        return cls(strategy, start, name)

    def mask(self, ctx, seed) -> PyTree:
        shuffle = STRATEGIES[self.strategy][1]
        return ctx.mask if shuffle is None else shuffle(ctx.mask, seed)

    def weights(self, ctx, mask, seed) -> PyTree:
        """The start's weights with the new mask applied: pruned entries exactly 0."""
        if self.start == "init":
            weights = ctx.initial
        elif self.start == "rewind":
            weights = ctx.ticket
        else:
            weights = ctx.ticket_final()
        return {"params": jax.device_get(apply_mask(weights["params"], mask)),
                "batch_stats": weights["batch_stats"]}

    def start_step(self, rewind_start: int, scratch: frozenset[str]) -> int:
        """The ticket's start step from its rewind weights; step 0 from theta_0 or from
        the trained ticket (OpenLTH retrains those for the whole schedule)."""
        return rewind_start if self.start == "rewind" else 0
