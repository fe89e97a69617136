r"""P0's ticket sources at CPU scale: LeNet-300-100 on MNIST, tickets generated on
labels, RotNet, Exemplar, S4L semi-supervision, shuffled labels, 10% of the samples and
half of the classes, each evaluated by training on full-MNIST labels, against P1's
random ticket (P0 Tables 2-3 layout).

Command (prepare the TFDS data once, see docs/data.md):
  python -m jaxtickets.main --config=configs/mnist_sources.py --workdir=runs/mnist_sources
  python -m jaxtickets.report --workdir runs/mnist_sources --out runs/mnist_sources/report
Hardware: a 2-core CPU. Time: 5,168 s for the 3 replicates (sharing the CPU with
  another job); `:smoke` runs in about a minute on the embedded subset.
Expected (P0's finding at CPU scale): at <= 5% of weights remaining, labels and rotnet
  tickets beat the random ticket by more than 2 s.e.; shuffled-label tickets do not.

Protocol (P0 Sec. 3.2 scaled down): global magnitude pruning of 20% per level with the
output layer unpruned; late rewinding to 12,000 examples seen (in each source's own
steps, P0 App. B); every run 165,000 examples (3 epochs of 55,000) with Adam 1.2e-3,
batch 60; evaluation at levels 3, 6, 9, 12 and 14 (51.2% ... 4.4% remaining); the
random ticket (globally permuted mask, fresh init) is drawn from the labels ticket.

Arguments after the colon: (none) the protocol above; smoke: the embedded subset, 3
levels of 200 steps, every source, for tests.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import (P0_CPU_SOURCES, add_sources, embedded_mnist_smoke,
                                           lenet_mnist)


def get_config(arg: str | None = None):
    config = base_config()
    config.num_replicates = 3
    lenet_mnist(config)
    config.train.duration = "165000ex"
    config.train.eval_every = "25000ex"
    config.train.checkpoint_every = "100000ex"
    config.pruning.method = "global"
    config.pruning.rate = 0.2
    config.pruning.prune.output = False      # P0: the last layer is never pruned
    config.pruning.levels = 14
    config.pruning.rewind = "12000ex"
    config.pruning.evaluate_levels = (3, 6, 9, 12, 14)
    config.branches = ("ticket",)
    add_sources(config, P0_CPU_SOURCES)
    config.generation.labels.evaluate_levels = (0, 3, 6, 9, 12, 14)  # the dense row for labels only
    if arg in (None, ""):
        return config
    if arg == "smoke":
        embedded_mnist_smoke(config)
        config.train.duration = "12000ex"  # 200 steps, in this config's units
        config.train.eval_every = "6000ex"
        config.train.checkpoint_every = "6000ex"
        config.pruning.rewind = "600ex"
        config.pruning.evaluate_levels = (2,)
        config.generation.labels.evaluate_levels = (0, 2)
        return config
    raise ValueError(f"configs/mnist_sources.py: unknown argument {arg!r}; use smoke")
