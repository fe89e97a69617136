"""Pieces shared by the shipped configs, so each experiment file says only what differs."""

from __future__ import annotations

import ml_collections

from jaxtickets.config_schema import add_source
from jaxtickets.sparsity.actions import MASK0_ACTIONS, MASK1_ACTIONS
from jaxtickets.sparsity.criteria import CRITERIA

# P0's sources at CPU scale (configs/mnist_sources.py, configs/cifar10_sources.py); the
# random ticket is drawn from the labels ticket's mask at each evaluated level.
P0_CPU_SOURCES = {
    "labels": {"branches": ("ticket", "random_ticket")},
    "rotnet": {"task": "rotnet"},
    "exemplar": {"task": "exemplar"},
    "semisup": {"task": "semisup", "labelled_fraction": 0.1},
    "shuffled_labels": {"task": "shuffled_labels", "augment": False},  # P0: no augmentation
    "samples10": {"sample_fraction": 0.1},
    "classes50": {"class_fraction": 0.5},
}


def p1_vgg19(config: ml_collections.ConfigDict, dataset: str) -> None:
    """P1's VGG-19 protocol (App. A.1) on a small dataset (configs/p1_cross_dataset.py
    adapts it to the streamed ImageNet and Places365 targets): batch 512, 160 epochs,
    LR x0.1 at 80 and 120, weight decay 1e-4, pad-crop 4 and flips, every training image
    trained on (no validation split: P1 reports the end of training, and its CIFAR-10
    halves are 25,000 images each); global pruning 20% per level for 30 levels, output
    unpruned, late reset to 1 epoch, 'morcos' levels, 6 seeds. The optimizer is the
    config's to choose."""
    config.num_replicates = 6
    config.model.name = "vgg19"
    config.data.dataset = dataset
    config.data.source = "tfds"
    config.data.validation_size = 0
    config.data.pad_crop = 4
    config.data.flip = True
    config.train.batch_size = 512
    config.train.duration = "160ep"
    config.train.weight_decay = 1e-4
    config.train.schedule = "step"
    config.train.decay_at = ("80ep", "120ep")
    config.train.eval_every = "10ep"
    config.train.checkpoint_every = "10ep"
    config.pruning.method = "global"
    config.pruning.rate = 0.2
    config.pruning.prune.output = False
    config.pruning.levels = 30
    config.pruning.rewind = "1ep"
    config.pruning.evaluate_levels = ("morcos",)
    config.branches = ("ticket",)


def add_sources(config: ml_collections.ConfigDict, table: dict, names=None) -> None:
    for name in names or table:
        add_source(config, name, **table[name])


def shrink_to_smoke(config: ml_collections.ConfigDict) -> None:
    """A paper-scale CIFAR config cut to a few minutes of CPU: 200 images, batch 8, one
    epoch (25 steps), one level; sources keep their tasks and selections but use the
    shared budget."""
    config.num_replicates = 1
    config.data.validation_size, config.data.train_size = 100, 200
    config.data.test_size = 100
    config.train.batch_size = 8
    config.train.duration = "1ep"
    config.train.schedule, config.train.decay_at = "constant", ()  # 2-step subsets
    config.train.eval_every = config.train.checkpoint_every = "1ep"
    config.train.eval_batch_size = 100
    config.pruning.levels = 1
    config.pruning.rewind = "10%"
    config.pruning.evaluate_levels = (1,)
    for name in config.generation.keys():
        source = config.generation[name]
        source.duration = source.decay_at = source.rewind = None
    config.runtime.log_every_seconds = 60.0


def lenet_mnist(config: ml_collections.ConfigDict) -> None:
    """LeNet-300-100 on the full MNIST (TFDS, 5,000 validation images) with P2/P4's
    Adam 1.2e-3 at batch 60: the base of the CPU-scale MNIST configs."""
    config.model.name = "lenet300_100"
    config.data.dataset = "mnist"
    config.data.source = "tfds"
    config.data.validation_size = 5000
    config.train.batch_size = 60
    config.train.optimizer = "adam"
    config.train.learning_rate = 1.2e-3


def p4_lenet_short(config: ml_collections.ConfigDict) -> None:
    """P4 Table S1's LeNet-300-100 recipe (layer-wise pruning, 2 replicates) with every
    run cut to 3,000 steps (P4: 50K), evaluated every 500: configs/mnist_supermask.py
    and configs/mnist_criteria.py."""
    lenet_mnist(config)
    config.num_replicates = 2
    config.train.duration = "3000st"
    config.train.eval_every = "500st"
    config.train.checkpoint_every = "3000st"
    config.pruning.method = "layerwise"
    config.branches = ("ticket",)


def embedded_mnist_smoke(config: ml_collections.ConfigDict) -> None:
    """An MNIST config cut to seconds for the tests: one replicate on 3,000 embedded
    training images, 2 levels of 200 steps."""
    config.num_replicates = 1
    config.data.source = "embedded"
    config.data.validation_size = 1000
    config.data.train_size = 3000
    config.data.test_size = 1000
    config.train.duration = "200st"
    config.train.eval_every = "100st"
    config.train.checkpoint_every = "200st"
    config.pruning.levels = 2
    config.runtime.log_every_seconds = 30.0


P4_SUPERMASKS = ("ticket", "supermask_init", "supermask_constant")


def add_p4_trajectories(config: ml_collections.ConfigDict, criteria=tuple(CRITERIA),
                        mask1=MASK1_ACTIONS[1:], mask0=MASK0_ACTIONS[1:]) -> None:
    """P4 Figs. 3-5 as sources: one per mask criterion (named after it, its masks also
    evaluated as supermasks on the untrained network), one per mask-1 action
    ('m1_' + name, large_final masks) and one per mask-0 action ('m0_' + name)."""
    for name in criteria:
        add_source(config, name, criterion=name, branches=P4_SUPERMASKS)
    for action in mask1:
        add_source(config, f"m1_{action}", mask1_action=action, branches=("ticket",))
    for action in mask0:
        add_source(config, f"m0_{action}", mask0_action=action, branches=("ticket",))


# P0 App. A's ImageNet recipes (SGD with momentum 0.9): the labels recipe is also the
# evaluation's. Keys as in generation.NAME.*; the batch is the total over all devices.
P0_IMAGENET_RECIPES = {
    "resnet50": {
        "labels": {"duration": "90ep", "batch_size": 1536, "learning_rate": 0.1,
                   "weight_decay": 1e-4, "decay_at": ("50ep", "65ep", "80ep")},
        "rotnet": {"duration": "90ep", "batch_size": 1536, "learning_rate": 1.0,
                   "warmup": "5ep", "weight_decay": 1e-5, "decay_at": ("50ep", "65ep", "80ep")},
        "exemplar": {"duration": "30ep", "batch_size": 1536, "learning_rate": 1.0,
                     "weight_decay": 1e-5, "decay_at": ("20ep", "25ep")},
    },
    "alexnet": {
        "labels": {"duration": "90ep", "batch_size": 4096, "learning_rate": 0.4,
                   "weight_decay": 1e-4, "decay_at": ("30ep", "60ep")},
        "rotnet": {"duration": "90ep", "batch_size": 8192, "learning_rate": 0.5,
                   "warmup": "2ep", "weight_decay": 1e-5, "decay_at": ("30ep", "60ep")},
        "exemplar": {"duration": "30ep", "batch_size": 4096, "learning_rate": 0.1,
                     "weight_decay": 1e-4, "decay_at": ("20ep",)},
    },
}
P0_IMAGENET_REWIND = "3840000ex"  # 3 x 1.28M images seen, for every source (P0 App. B)


def p0_imagenet(config: ml_collections.ConfigDict, model: str = "resnet50") -> None:
    """P0's ImageNet protocol: `model` trained on full ImageNet labels with App. A's
    labels recipe as the evaluation, 30 levels of global 20% pruning of every
    convolution (ResNet-50's 1x1 downsampling ones included; the output unpruned, as
    P0), late reset to 3 x 1.28M images, P1's evaluated levels, 3 seeds, 224-pixel
    crops, every training image trained on (no validation split: P0 reports the end of
    training on ImageNet val, and a CIFAR-10 source then trains on all its 50,000)."""
    recipe = P0_IMAGENET_RECIPES[model]["labels"]
    config.num_replicates = 3
    config.model.name = model
    config.model.dropout = 0.5 if model == "alexnet" else 0.0  # torchvision's AlexNet
    config.data.dataset = "imagenet2012"
    config.data.source = "tfds"
    config.data.validation_size = 0
    config.data.image_size = 224
    config.train.batch_size = recipe["batch_size"]
    config.train.duration = recipe["duration"]
    config.train.optimizer = "momentum"
    config.train.momentum = 0.9
    config.train.learning_rate = recipe["learning_rate"]
    config.train.weight_decay = recipe["weight_decay"]
    config.train.schedule = "step"
    config.train.decay_at = recipe["decay_at"]
    config.train.eval_every = "5ep"
    config.train.checkpoint_every = "1ep"
    config.train.eval_batch_size = 1536
    config.pruning.method = "global"
    config.pruning.rate = 0.2
    config.pruning.prune.output = False
    config.pruning.prune.shortcut = True
    config.pruning.levels = 30
    config.pruning.rewind = P0_IMAGENET_REWIND
    config.pruning.evaluate_levels = ("morcos",)
    config.branches = ("ticket",)


def streamed_smoke(config: ml_collections.ConfigDict) -> None:
    """A streamed (ImageNet-scale) config cut to seconds of CPU for the tests: 16-pixel
    crops, batch 8, 8 steps, one level. Sources keep their tasks and selections; their
    own durations, batches and warm-ups give way to the shared budget."""
    config.num_replicates = 1
    config.data.validation_size = 5
    config.data.image_size = 16
    config.train.batch_size = 8
    config.train.duration = "8st"
    config.train.decay_at = ("4st",) if config.train.schedule == "step" else ()
    config.train.eval_every = config.train.checkpoint_every = "4st"
    config.train.eval_batch_size = 8
    config.pruning.levels = 1
    config.pruning.rewind = "2st"
    config.pruning.evaluate_levels = ("all",)
    for name in config.generation.keys():
        s = config.generation[name]
        s.duration = s.decay_at = s.rewind = s.batch_size = None
        s.warmup = None if s.warmup is None else "1st"
    config.runtime.reader_threads = 2
    config.runtime.log_every_seconds = 60.0


P3_CONTROLS = ("ticket", "random_reinit", "small_dense")


def p3_trajectories(config: ml_collections.ConfigDict, levels: int,
                    evaluate_levels: tuple) -> None:
    """P3's two masks per run: IMP ('imp') and OMP ('omp': the dense network pruned at
    once to each IMP level's density), global magnitude pruning of the convolutions
    (1x1 shortcuts and the output unpruned), 20% per level, each evaluated with random
    reinit and the small-dense network, both trained from scratch for the full duration
    (P3 App. B: RR is theta'_0 * m trained T, SDT trained T, while a rewound ticket
    trains T - t). The rewind (LT: 0, WR: ~5%) is the config's."""
    config.pruning.method = "global"
    config.pruning.rate = 0.2
    config.pruning.prune.dense = False
    config.pruning.prune.output = False
    config.pruning.levels = levels
    config.pruning.evaluate_levels = evaluate_levels
    config.pruning.controls_from_scratch = ("random_reinit", "small_dense")
    config.branches = ("ticket",)
    add_source(config, "imp", branches=P3_CONTROLS)
    add_source(config, "omp", schedule="one_shot", branches=P3_CONTROLS)


def p3_cifar(config: ml_collections.ConfigDict, model: str, dataset: str,
             learning_rate: float, rewinding: bool, smoke: bool = False) -> None:
    """P3 Table E.1's CIFAR protocol: 160 epochs, batch 64, SGD momentum 0.9, weight
    decay 5e-4, x0.1 at epochs 80 and 120, warmup only for VGG-16 (75 epochs), pad-4
    crops and flips, 2 seeds, every training image trained on (no validation split: P3
    reports test accuracy after T epochs, the last evaluation); IMP and OMP over 14
    levels (p3_trajectories), LT or WR (rewind to epoch 8). smoke: minutes on 1,000 CPU
    images, 2 levels."""
    config.num_replicates = 2
    config.model.name = model
    config.data.dataset = dataset
    config.data.source = "tfds"
    config.data.validation_size = 0
    config.data.pad_crop = 4
    config.data.flip = True
    config.train.batch_size = 64
    config.train.duration = "160ep"
    config.train.optimizer = "momentum"
    config.train.learning_rate = learning_rate
    config.train.weight_decay = 5e-4
    config.train.schedule = "step"
    config.train.decay_at = ("80ep", "120ep")
    if model == "vgg16":
        config.train.warmup = "75ep"
    config.train.eval_every = "1ep"
    config.train.checkpoint_every = "10ep"
    p3_trajectories(config, levels=14, evaluate_levels=(0, 2, 4, 7, 10, 14))
    config.pruning.rewind = "8ep" if rewinding else "0st"
    if smoke:
        config.num_replicates = 1
        config.data.validation_size = 500
        config.data.train_size = 1000
        config.data.test_size = 500
        config.train.duration = "4ep"
        config.train.decay_at = ("2ep", "3ep")
        if model == "vgg16":
            config.train.warmup = "1ep"
        config.train.eval_every = "2ep"
        config.train.checkpoint_every = "4ep"
        config.train.eval_batch_size = 500
        config.pruning.rewind = "1ep" if rewinding else "0st"
        config.pruning.levels = 2
        config.pruning.evaluate_levels = (0, 2)
        config.runtime.log_every_seconds = 30.0
