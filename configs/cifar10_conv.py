r"""P2's Conv-2/4/6 on CIFAR-10: layer-wise IMP with reset to init, ticket vs random reinit.

Command (prepare CIFAR-10 into a TFDS data dir once: `make prepare-data`):
  python -m jaxtickets.main --config=configs/cifar10_conv.py:conv4 --workdir=runs/conv4
Hardware: CPU works but is slow (Conv-4: about 25K iterations per level); a GPU is better.
Expected (P2 Fig. 5, App. H.2): Conv-2/4/6 unpruned validation accuracy about
  67.6 / 74.9 / 79.1%; tickets gain up to +3.4 / +3.5 / +3.3 pp in test accuracy.

Arguments after the colon: conv2, conv4 (default) or conv6, optionally followed by
',smoke' (a run of well under a minute: 3 levels of 100 iterations on 2,000 images),
e.g. `configs/cifar10_conv.py:conv6,smoke`; 'smoke' alone means 'conv4,smoke'.
Augmentation is off as in P2; `--config.data.pad_crop=4 --config.data.flip=True` turns it on.
"""

from jaxtickets.config_schema import base_config

# P2 Fig. 2: (iterations, Adam learning rate, conv rate per level)
RECIPES = {"conv2": ("20000st", 2e-4, 0.10), "conv4": ("25000st", 3e-4, 0.10),
           "conv6": ("30000st", 3e-4, 0.15)}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    smoke = "smoke" in parts
    names = [p for p in parts if p != "smoke"]
    if len(names) > 1 or (names and names[0] not in RECIPES):
        raise ValueError(f"configs/cifar10_conv.py: unknown argument {arg!r}; use one of "
                         f"{sorted(RECIPES)} optionally followed by ',smoke'")
    name = names[0] if names else "conv4"
    duration, lr, conv_rate = RECIPES[name]
    config = base_config()
    config.model.name = name
    config.data.dataset = "cifar10"
    config.data.source = "tfds"
    config.data.validation_size = 5000
    config.train.batch_size = 60
    config.train.duration = duration
    config.train.optimizer = "adam"
    config.train.learning_rate = lr
    config.train.eval_every = "100st"
    config.train.checkpoint_every = "2500st"
    config.pruning.method = "layerwise"
    config.pruning.levels = 20
    config.pruning.rates.conv = conv_rate
    config.pruning.rates.dense = 0.2
    config.pruning.rates.output = 0.1
    config.pruning.rewind = "0st"
    # On CPU, Eigen's convolutions train Conv-4 3-4% and Conv-6 7-10% faster than
    # YNNPACK's, Conv-2 3-6% slower (bench/conv4_vs_torch.py; float rounding only).
    config.runtime.cpu_convolutions = "ynnpack" if name == "conv2" else "eigen"
    if smoke:
        config.data.validation_size = 500
        config.data.train_size = 2000
        config.data.test_size = 500
        config.train.duration = "100st"
        config.train.eval_every = "50st"
        config.train.checkpoint_every = "50st"
        config.train.eval_batch_size = 500
        config.pruning.levels = 2
        config.runtime.log_every_seconds = 5.0
    return config
