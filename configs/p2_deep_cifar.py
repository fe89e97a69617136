r"""P2's deeper networks on CIFAR-10 (Sec. 4, App. I): VGG-19 and P2's "ResNet-18" (a CIFAR
ResNet-20) found by iterative global pruning of the convolutions, each level's ticket
against random reinit, at the learning rates where P2 finds tickets or not, with and
without warmup (Figs. 7-8).

Commands (prepare CIFAR-10 in TFDS once: `make prepare-data`; one workdir per variant):
  python -m jaxtickets.main --config=configs/p2_deep_cifar.py:vgg19,warmup \
      --workdir=runs/p2_vgg_warm
  python -m jaxtickets.main --config=configs/p2_deep_cifar.py:vgg19,0.01 --workdir=runs/p2_vgg
  python -m jaxtickets.main --config=configs/p2_deep_cifar.py:resnet20,warmup \
      --workdir=runs/p2_r20_warm
  python -m jaxtickets.report --workdir runs/p2_vgg_warm --out runs/p2_vgg_warm/report
Hardware: one GPU. Time (estimate from BENCHMARKS.md section 9's H200 step rates, VGG-19
  345 and ResNet-20 392 steps/s, not a measured run): VGG-19 runs 112,480 iterations
  per training (~5.4 min), ResNet-20 30,000 (~1.3 min); a trial trains every level's
  ticket and 3 reinits at each pruned level: VGG-19 33 + 96 runs, ~12 GPU-hours,
  ResNet-20 15 + 42 runs, ~1.2 GPU-hours; 5 trials. `--config.num_replicates=1
  --config.pruning.control_draws=1` is a fifth and a third of that.
Expected (P2 Sec. 4; test accuracy, the text's numbers):
  VGG-19: at LR 0.1 no tickets (no better than reinit); at 0.01 within 1 pp of the dense
    network while >= 3.5% of the weights remain; at 0.1 with 10,000 warm-up iterations
    the dense network gains ~1 pp and tickets beat it while >= 1.5% remain; at ~80%
    pruned, reinit matches the dense network.
  ResNet-20: dense 90.5% at LR 0.1; at 0.01 best tickets 89.5% with 41.7-21.9%
    remaining; at 0.03 with 20,000 warm-up iterations 90.5% at 27.1%, tickets while >=
    11.8% remain; at 0.1 no tickets, even with warmup.

Recipes (P2 App. I.2-I.3; SGD momentum 0.9, weight decay 1e-4, pad-4 crops and flips,
5,000 training images held out):
  vgg19: batch 64, 160 epochs (112,480 iterations), x0.1 at epochs 80 and 120;
    LR 0.1 (Liu et al.), 0.01, or 'warmup': 0.1 after 10,000 linear warm-up iterations;
  resnet20: batch 128, 30,000 iterations, x0.1 at 20,000 and 25,000; LR 0.1 (He et
    al.), 0.01, or 'warmup': 0.03 after 20,000 warm-up iterations.
Global pruning of the convolutions, 20% per level (P2's rule: the output layer and the
ResNet's 1x1 downsampling convolutions unpruned), reset to theta_0 (P2: no late
resetting), every level evaluated; to the last point of Figs. 7-8: VGG-19 0.1% remaining
(32 levels), ResNet-20 5.5% (14 levels; P2's percentages count the unpruned weights).
5 trials with 3 random reinits per trial and level. P2 reports test accuracy at fixed
iterations (VGG-19 30K/60K/112K, ResNet-20 10K/20K/30K): each run's history holds them
(evaluated every 2,000).
Layer-wise pruning (P2 App. I.1): `--config.pruning.method=layerwise`.
Init: the ResNet-20 draws every kernel (convs, 1x1 shortcuts, output) from Gaussian
Glorot, as P2 App. I states (the model's own default is He normal); VGG-19's own init
is already Gaussian Glorot.

Arguments after the colon: MODEL[,LR][,smoke]; MODEL vgg19 or resnet20; LR 0.1
(default), 0.01 or warmup; smoke: a CPU run of seconds on 200 images (tests).

Deviations from P2: none in the recipe (P2 App. I.3 also trains on 45,000 images and
holds 5,000 out). Figs. 7-8 do not give their counts of trials and reinits; these are
P2's main-body counts (5 trials; 3 reinits per trial, Figs. 4-5).
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import shrink_to_smoke

RECIPES = {  # LR variant -> (learning rate, warm-up), per model
    "vgg19": {"batch": 64, "duration": "160ep", "decay_at": ("80ep", "120ep"), "levels": 32,
              "lr": {"0.1": (0.1, "0st"), "0.01": (0.01, "0st"), "warmup": (0.1, "10000st")}},
    "resnet20": {"batch": 128, "duration": "30000st", "decay_at": ("20000st", "25000st"),
                 "levels": 14,
                 "lr": {"0.1": (0.1, "0st"), "0.01": (0.01, "0st"), "warmup": (0.03, "20000st")}},
}


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke = "smoke" in parts
    rest = [p for p in parts if p != "smoke"]
    model = rest[0] if rest else ""
    variant = rest[1] if len(rest) > 1 else "0.1"
    if model not in RECIPES or variant not in RECIPES[model]["lr"] or len(rest) > 2:
        raise ValueError(f"configs/p2_deep_cifar.py: expected MODEL[,LR][,smoke] with MODEL "
                         f"in {list(RECIPES)} and LR in {list(RECIPES['vgg19']['lr'])}; "
                         f"got {arg!r}")
    recipe = RECIPES[model]
    lr, warmup = recipe["lr"][variant]
    config = base_config()
    config.num_replicates = 5
    config.model.name = model
    config.model.init = "glorot_normal" if model == "resnet20" else "default"
    config.data.dataset = "cifar10"
    config.data.source = "tfds"
    config.data.validation_size = 5000
    config.data.pad_crop = 4
    config.data.flip = True
    config.train.batch_size = recipe["batch"]
    config.train.duration = recipe["duration"]
    config.train.optimizer = "momentum"
    config.train.momentum = 0.9
    config.train.learning_rate = lr
    config.train.warmup = warmup
    config.train.weight_decay = 1e-4
    config.train.schedule = "step"
    config.train.decay_at = recipe["decay_at"]
    config.train.eval_every = "2000st"
    config.train.checkpoint_every = "2000st"
    config.pruning.method = "global"
    config.pruning.rate = 0.2
    config.pruning.prune.dense = False
    config.pruning.prune.output = False
    config.pruning.levels = recipe["levels"]
    config.pruning.rewind = "0st"
    config.pruning.control_draws = 3
    config.branches = ("ticket", "random_reinit")
    if smoke:
        shrink_to_smoke(config)
        config.pruning.control_draws = 1
        config.train.warmup = "5st" if warmup != "0st" else "0st"
        config.pruning.rewind = "0st"
        config.pruning.evaluate_levels = ("all",)
    return config
