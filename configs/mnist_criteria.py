r"""P4 Figs. 3-5 at CPU scale: LeNet-300-100 on MNIST, one iterative pruning trajectory
per mask criterion, per mask-1 action and per mask-0 action, with P4 Sec. 5's
supermask evaluations of every mask on the untrained network.

Command (prepare the TFDS data once, see README):
  python -m jaxtickets.main --config=configs/mnist_criteria.py --workdir=runs/mnist_criteria \
      --config.data.data_dir=DATA_DIR
  python -m jaxtickets.report --workdir runs/mnist_criteria --out runs/mnist_criteria/report
Hardware: this 2-core CPU. Time: see the README (P4 controls section); `:smoke` runs in
  about two minutes on the embedded subset.
Expected (issue 4, P4's orderings at about 5% remaining): large_final and
  magnitude_increase above random, small_final and small_init below it; reshuffle and
  constant with the init sign close to rewind and above their sign-free versions;
  the hybrid mask-0 action at least as good as zero.

Protocol (P4 Table S1 shortened): Adam 1.2e-3, batch 60, Glorot-normal init, layer-wise
pruning; every run 3,000 steps (3.3 epochs; P4: 50K) and the per-level rates raised to
36% (hidden) and 18% (output) so 7 levels reach 4.4% remaining (P4: 20%/10% per level,
the same densities in 14 levels). 19 trajectories: the 11 criteria (rewind, zero), the
mask-1 actions reinit/reshuffle/constant with and without the init sign (large_final,
zero) and the mask-0 actions frozen_init and hybrid (large_final, rewind).

Arguments after the colon: (none) the protocol above; smoke: the embedded subset, 2
levels of 200 steps, a few trajectories, for tests.
"""

from jaxtickets.config_schema import add_source, base_config
from jaxtickets.sparsity.actions import MASK0_ACTIONS, MASK1_ACTIONS
from jaxtickets.sparsity.criteria import CRITERIA

SUPERMASKS = "ticket,supermask_init,supermask_constant"


def add_p4_trajectories(config, criteria=tuple(CRITERIA), mask1=MASK1_ACTIONS[1:],
                        mask0=MASK0_ACTIONS[1:]) -> None:
    """One source per criterion (named after it), per mask-1 action ('m1_' + name) and
    per mask-0 action ('m0_' + name); every one evaluates its masks as supermasks."""
    for name in criteria:
        add_source(config, name, criterion=name, branches=SUPERMASKS)
    for action in mask1:
        add_source(config, f"m1_{action}", mask1_action=action, branches="ticket")
    for action in mask0:
        add_source(config, f"m0_{action}", mask0_action=action, branches="ticket")


def get_config(arg: str | None = None):
    config = base_config()
    config.num_replicates = 2
    config.model.name = "lenet300_100"
    config.data.dataset = "mnist"
    config.data.source = "tfds"
    config.data.validation_size = 5000
    config.train.batch_size = 60
    config.train.duration = "3000st"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1.2e-3
    config.train.eval_every = "500st"
    config.train.checkpoint_every = "3000st"
    config.pruning.method = "layerwise"
    config.pruning.rates.dense = 0.36
    config.pruning.rates.output = 0.18
    config.pruning.levels = 7
    config.branches = "ticket"
    add_p4_trajectories(config)
    if arg in (None, ""):
        return config
    if arg == "smoke":
        config.num_replicates = 1
        config.data.source = "embedded"
        config.data.validation_size = 1000
        config.data.train_size = 3000
        config.data.test_size = 1000
        config.train.duration = "200st"
        config.train.eval_every = "100st"
        config.train.checkpoint_every = "200st"
        config.pruning.levels = 2
        config.generation = type(config.generation)()
        add_p4_trajectories(config, ("large_final", "random", "large_init_large_final"),
                            ("reshuffle_sign", "constant"), ("hybrid",))
        config.runtime.log_every_seconds = 30.0
        return config
    raise ValueError(f"configs/mnist_criteria.py: unknown argument {arg!r}; use smoke")
