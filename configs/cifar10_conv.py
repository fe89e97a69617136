r"""P2's Conv-2/4/6 on CIFAR-10: layer-wise IMP with reset to init, ticket vs random reinit.

Command (prepare CIFAR-10 into a TFDS data dir once: `make prepare-data`):
  python -m jaxtickets.main --config=configs/cifar10_conv.py:conv4 --workdir=runs/conv4
Hardware: one GPU (BENCHMARKS.md section 9: Conv-2 2,412, Conv-4 1,625, Conv-6 1,223
  steps/s on an H200); a CPU works but is slow. Time (estimate from those rates, not a
  measured run): per trial 22/27/27 levels + 3 reinits at each pruned level (85/105/105
  runs of 20K/25K/30K iterations): Conv-2 ~12 min, Conv-4 ~27 min, Conv-6 ~43 min of
  training per trial on that GPU, plus evaluation; 5 trials.
Expected (P2 Fig. 5, App. H.2): Conv-2/4/6 unpruned validation accuracy about
  67.6 / 74.9 / 79.1%; tickets gain up to +3.4 / +3.5 / +3.3 pp in test accuracy.

Recipe (P2 Fig. 2, App. H): Adam at 2e-4 / 3e-4 / 3e-4, batch 60, 20K / 25K / 30K
iterations, layer-wise pruning of conv layers at 10% / 10% / 15% per level, FC layers
20%, output 10%, reset to init, 5,000 validation images, no augmentation; levels to Fig.
5's last point, 1.0% remaining (Conv-2 21 levels, Conv-4 and Conv-6 26); 5 trials with
3 random reinits per trial and level (Fig. 5's 15 dashed-line runs).
Deviations from P2: none at full size. ',smoke' is cut to CPU seconds.

Arguments after the colon: conv2, conv4 (default) or conv6, optionally followed by
',smoke' (a run of well under a minute: 3 levels of 100 iterations on 2,000 images),
e.g. `configs/cifar10_conv.py:conv6,smoke`; 'smoke' alone means 'conv4,smoke'.
Augmentation is off as in P2; `--config.data.pad_crop=4 --config.data.flip=True` turns it on.
"""

from jaxtickets.config_schema import base_config

# P2 Fig. 2: (iterations, Adam learning rate, conv rate per level)
# and the levels that reach Fig. 5's last plotted point, 1.0% of the weights remaining
# (jaxtickets/sparsity/level_densities.py; tests/test_paper_fidelity.py).
RECIPES = {"conv2": ("20000st", 2e-4, 0.10, 21), "conv4": ("25000st", 3e-4, 0.10, 26),
           "conv6": ("30000st", 3e-4, 0.15, 26)}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    smoke = "smoke" in parts
    names = [p for p in parts if p != "smoke"]
    if len(names) > 1 or (names and names[0] not in RECIPES):
        raise ValueError(f"configs/cifar10_conv.py: unknown argument {arg!r}; use one of "
                         f"{sorted(RECIPES)} optionally followed by ',smoke'")
    name = names[0] if names else "conv4"
    duration, lr, conv_rate, levels = RECIPES[name]
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
    config.num_replicates = 5
    config.pruning.levels = levels
    config.pruning.control_draws = 3
    config.pruning.rates.conv = conv_rate
    config.pruning.rates.dense = 0.2
    config.pruning.rates.output = 0.1
    config.pruning.rewind = "0st"
    # On CPU, Eigen's convolutions train Conv-4 3-4% and Conv-6 7-10% faster than
    # YNNPACK's, Conv-2 3-6% slower (bench/conv4_vs_torch.py; float rounding only).
    config.runtime.cpu_convolutions = "ynnpack" if name == "conv2" else "eigen"
    if smoke:
        config.num_replicates = 1
        config.pruning.control_draws = 1
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
