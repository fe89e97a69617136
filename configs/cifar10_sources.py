r"""P0's ticket sources on real CIFAR-10 at CPU scale: a narrow Conv-4 (conv 8-8-16-16,
FC 64-64), tickets generated on labels, RotNet, Exemplar, S4L semi-supervision,
shuffled labels, 10% of the samples and half of the classes, each evaluated by
training on full CIFAR-10 labels, against P1's random ticket (P0 Tables 2-3 layout).

Command (prepare the TFDS data once, see docs/data.md):
  python -m jaxtickets.main --config=configs/cifar10_sources.py --workdir=runs/cifar10_sources
  python -m jaxtickets.report --workdir runs/cifar10_sources --out runs/cifar10_sources/report
Hardware: a 2-core CPU, where XLA's convolutions make every step ~50-100 ms.
Time: 4,295 s for the 2-replicate run (sharing the CPU with another job).
Expected: nothing from the papers at this scale (P0 Tables 2-3 are ResNet-18/VGG-19 for
  160 epochs: rotnet close to labels, both far above random below 10% remaining).

Protocol, shortened for the CPU: P0's CIFAR recipe (Adam 1e-3, L2 1e-4, 2-pixel pad-crop
and flips, global pruning, output layer unpruned, late rewinding) with every run
30,000 examples (5/8 of an epoch of the 48,000 training images), rewind at 3,000
examples, and 48.8% pruned per level (= three of P0's 20% levels, 0.8^3), so levels
2 and 4 are P0's rows 0.262 and 0.069. Evaluated once at the end of each run, on a
fixed 5,000-image subset of the test set; 2,000 validation images.

Arguments after the colon: (none) the protocol above; smoke: 1,000 training images,
levels of 40 steps, for tests.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import P0_CPU_SOURCES, add_sources


def get_config(arg: str | None = None):
    config = base_config()
    config.num_replicates = 2
    config.model.name = "conv4_narrow"
    config.data.dataset = "cifar10"
    config.data.source = "tfds"
    config.data.validation_size = 2000
    config.data.test_size = 5000
    config.data.pad_crop = 2
    config.data.flip = True
    config.train.batch_size = 60
    config.train.duration = "30000ex"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.weight_decay = 1e-4
    config.train.eval_every = "30000ex"
    config.train.checkpoint_every = "30000ex"
    config.train.eval_batch_size = 1000
    config.pruning.method = "global"
    config.pruning.rate = 1 - 0.8 ** 3
    config.pruning.prune.output = False      # P0: the last layer is never pruned
    config.pruning.levels = 4
    config.pruning.rewind = "3000ex"
    config.pruning.evaluate_levels = (2, 4)
    config.branches = ("ticket",)
    config.runtime.log_every_seconds = 120.0
    add_sources(config, P0_CPU_SOURCES)
    config.generation.labels.evaluate_levels = (0, 2, 4)  # the dense row for labels only
    if arg in (None, ""):
        return config
    if arg == "smoke":
        config.num_replicates = 1
        config.data.validation_size = 200
        config.data.train_size = 1000
        config.data.test_size = 200
        config.train.duration = "2400ex"
        config.train.eval_every = "2400ex"
        config.train.checkpoint_every = "2400ex"
        config.train.eval_batch_size = 200
        config.pruning.levels = 2
        config.pruning.rewind = "600ex"
        config.pruning.evaluate_levels = (2,)
        config.generation.labels.evaluate_levels = (0, 2)
        config.runtime.log_every_seconds = 60.0
        return config
    raise ValueError(f"configs/cifar10_sources.py: unknown argument {arg!r}; use smoke")
