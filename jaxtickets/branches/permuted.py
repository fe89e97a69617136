"""random_ticket and random_ticket_local (P2 Sec. 2, P3 Sec. 4): the ticket's mask
permuted, over the whole network or within each layer, on fresh weights: a random mask
with the ticket's count (and, locally, its layer-wise sparsity)."""

from jaxtickets.branches.base import Branch
from jaxtickets.sparsity import baselines


class RandomTicket(Branch):
    name = "random_ticket"
    random = draws_mask = fresh_weights = can_train_from_scratch = True
    description = "the ticket's mask permuted globally, fresh weights"

    def mask(self, ctx, seed):
        return baselines.permute_global(ctx.mask, seed)


class RandomTicketLocal(RandomTicket):
    name = "random_ticket_local"
    description = "the ticket's mask permuted within each layer, fresh weights"

    def mask(self, ctx, seed):
        return baselines.permute_local(ctx.mask, seed)
