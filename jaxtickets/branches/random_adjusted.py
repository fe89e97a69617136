"""random_adjusted (P0 Sec. 4): a random mask with the ticket's per-layer counts,
adjusted for the weights the trained dense network zeroed by itself, on fresh weights."""

from jaxtickets import config_values
from jaxtickets.branches.base import Branch
from jaxtickets.sparsity import baselines


class RandomAdjusted(Branch):
    name = "random_adjusted"
    random = draws_mask = fresh_weights = can_train_from_scratch = True
    description = "random mask adjusted for natural sparsity, fresh weights"

    def mask(self, ctx, seed):
        if ctx.dense_final is None:
            raise ValueError("random_adjusted needs the trajectory's trained dense network")
        return baselines.random_adjusted(ctx.mask, ctx.dense_final["params"], seed,
                                         ctx.natural_zero_threshold)

    def check_config(self, config, used: bool) -> None:
        if not used:
            config_values.refuse_unread(config, "pruning.natural_zero_threshold", "only read "
                                        "by the random_adjusted branch, which no trajectory "
                                        "runs")
