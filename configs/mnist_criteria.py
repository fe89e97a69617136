r"""P4 Figs. 3-5 at CPU scale: LeNet-300-100 on MNIST, one iterative pruning trajectory
per mask criterion, per mask-1 action and per mask-0 action, with P4 Sec. 5's
supermask evaluations of every mask on the untrained network.

Command (prepare the TFDS data once, see docs/data.md):
  python -m jaxtickets.main --config=configs/mnist_criteria.py --workdir=runs/mnist_criteria \
      --config.data.data_dir=DATA_DIR
  python -m jaxtickets.report --workdir runs/mnist_criteria --out runs/mnist_criteria/report
Hardware: a 2-core CPU. Time: docs/papers/p4_deconstructing.md; `:smoke` runs in
  about two minutes on the embedded subset.
Expected (P4's orderings at about 5% remaining): large_final and
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

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import (add_p4_trajectories, embedded_mnist_smoke,
                                           p4_lenet_short)

def get_config(arg: str | None = None):
    config = base_config()
    p4_lenet_short(config)
    config.pruning.rates.dense = 0.36
    config.pruning.rates.output = 0.18
    config.pruning.levels = 7
    add_p4_trajectories(config)
    if arg in (None, ""):
        return config
    if arg == "smoke":
        embedded_mnist_smoke(config)
        config.generation = type(config.generation)()
        add_p4_trajectories(config, ("large_final", "random", "large_init_large_final"),
                            ("reshuffle_sign", "constant"), ("hybrid",))
        return config
    raise ValueError(f"configs/mnist_criteria.py: unknown argument {arg!r}; use smoke")
