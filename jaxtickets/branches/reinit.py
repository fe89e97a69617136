"""random_reinit (P2 Sec. 2): the ticket's mask on a fresh initialization."""

from jaxtickets.branches.base import Branch


class RandomReinit(Branch):
    name = "random_reinit"
    random = fresh_weights = can_train_from_scratch = True
    description = "the ticket's mask, fresh weights"
