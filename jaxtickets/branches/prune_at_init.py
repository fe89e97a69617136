"""prune_at_init (P3 Sec. 4): the ticket's layer-wise counts kept by magnitude at
theta_0, trained from theta_0."""

from jaxtickets.branches.base import Branch
from jaxtickets.sparsity import baselines


class PruneAtInit(Branch):
    name = "prune_at_init"
    random = draws_mask = can_train_from_scratch = True
    description = "largest weights at initialization, from theta_0"

    def mask(self, ctx, seed):
        return baselines.magnitude_at_init(ctx.mask, ctx.initial["params"], seed)

    def weights(self, ctx, mask, seed):
        return ctx.initial
