"""P4 Sec. 5's supermasks: the ticket's mask on the untrained network, evaluated without
training, at every evaluated level and on the dense level 0 (the untrained baseline).
supermask_init keeps theta_0; supermask_constant sets each kept weight to
sign(theta_0) x sigma_layer."""

from jaxtickets.branches.base import Branch
from jaxtickets.sparsity import actions


class SupermaskInit(Branch):
    name = "supermask_init"
    trained = False
    description = "the mask on theta_0, untrained"

    def runs_at(self, level):
        return True

    def weights(self, ctx, mask, seed):
        return ctx.initial


class SupermaskConstant(SupermaskInit):
    name = "supermask_constant"
    description = "the mask on signed constants, untrained"

    def weights(self, ctx, mask, seed):
        return {"params": actions.signed_constant(ctx.initial["params"], mask, ctx.sigmas()),
                "batch_stats": ctx.initial["batch_stats"]}
