r"""P0 on ImageNet with limited supervision: ResNet-50 tickets generated on 30/10/1% of
the images (per class) or of the classes, semi-supervised (S4L: 10% labelled + RotNet
on all), or on other datasets (Places365, CIFAR-10), each evaluated by training on full
ImageNet labels (P0 Sec. 4.2-4.4, Tables 6-8, Fig. 7, App. A-B).

Commands (imagenet2012 prepared in TFDS; places365_small and cifar10 for the transfers;
one source per workdir can run on its own slice):
  python -m jaxtickets.main --config=configs/imagenet_limited.py --workdir=runs/in_limited
  python -m jaxtickets.main --config=configs/imagenet_limited.py:samples10,classes10 \
      --workdir=runs/in_10pct
  python -m jaxtickets.main --config=configs/imagenet_limited.py:fig7 --workdir=runs/in_fig7
  launch/tpu_vm.sh --tpu jt --zone us-central2-b --bucket B --accelerator v4-32 \
      configs/imagenet_limited.py:semisup in_semisup
Hardware: P0 used 16 GPUs, synchronous, with each source's total batch below (768 to
  2048); a TPU v4-32 slice (16 chips, --multihost) runs them unchanged. Use
  `--config.model.compute_dtype=bfloat16` on TPUs and recent GPUs.
Time (estimate, not measured here: no accelerator was lent): generation costs what
  its images x epochs cost: 10% x 200 epochs is 20 full-ImageNet epochs, vs 90 for the
  labels ticket (P0's "5x faster"; 1% of the classes x 1000 epochs: "10x"); each
  evaluation is a 90-epoch full-ImageNet run, 15 per source and seed, 3 seeds.
Expected, ImageNet val top-1 % (mean of 3 seeds; 100% labels and random in Table 4,
configs/imagenet_rotnet.py):
  P0 Table 6 (images per class):      Table 7 (classes):
  remaining   30%    10%    1%        30%    10%    1%
  0.8         74.58  74.86  73.86     74.53  74.63  74.44
  0.262       73.32  73.01  70.47     71.22  72.23  71.05
  0.069       67.10  69.48  64.49     65.10  67.99  64.94
  0.018       60.77  64.84  55.48     58.39  61.78  55.66
  0.005       52.03  55.56  25.61     49.38  51.66  42.65
  P0 Table 8:  semisup  places365  cifar10
  0.8          74.89    74.27      72.57
  0.262        74.03    71.91      68.76
  0.069        70.09    65.93      61.61
  0.018        62.90    57.24      47.53
  0.009        58.40    52.95      36.95
  Fig. 7 (no numbers in the text): on 10% ImageNet, the four rewind criteria.

Recipes (P0 App. A; SGD with momentum 0.9 unless said; total batch; x0.1 at the epochs):
  evaluation (full labels): 90 epochs, batch 1536, LR 0.1, WD 1e-4, 50/65/80;
  samples30: 200 ep, 1536, LR 0.1, 5 warm-up ep, WD 3e-4, 140/160/180;
  classes30: 200 ep, 1536, LR 0.03, 5 ep, WD 1e-3, 140/160/180;
  samples10: 200 ep, 768, LR 0.1, 5 ep, WD 1e-3, 140/160/180;
  classes10: 200 ep, 768, LR 0.3, 5 ep, WD 3e-4, 140/160/180;
  samples1: 1000 ep, 768, LR 0.1, WD 1e-3, 700/800/900;
  classes1: 1000 ep, 768, LR 0.01, WD 3e-3, 700/800/900;
  semisup (S4L, 10% of each class labelled): 200 ep, 2048, LR 0.1, 5 ep, WD 3e-4,
    140/160/180; loss = labelled cross-entropy + RotNet on all images, 1:1;
  places365 (places365_small, 365 classes): 90 ep, 2048, LR 0.1, WD 1e-4, 50/65/80;
  cifar10 (P0's CIFAR-10 labels recipe, on ResNet-50 at 32 x 32): Adam 1e-3, 160 ep,
    batch 512, WD 1e-4, 80/120, 2-pixel pad-crop and flips, rewind 1 epoch, on all
    50,000 training images (no split is held out of any dataset here).
Rewind: 3 x 1.28M = 3,840,000 images seen for every ImageNet-scale source (P0 App. B,
Table 1): in its own batch, 30 epochs of 10% ImageNet. fig7 adds 10% ImageNet sources
rewound at 3 epochs, 3.3% of training and 2,500 steps (the 3.84M-image one is
samples10). Subsets are drawn per class with a seed shared by all replicates; 1% of the
classes are the first 10 of the same draw as 10% and 30%, so the subsets nest. A
streamed split's labels are read once into <workdir>/label_index/ (data/label_index.py).
The host augmentation of every ImageNet and Places365 source is random-resized crops and
flips; the 1% sources (samples1, classes1) add colour jitter (P0 App. A: "random color
data augmentation", following S4L), no other source does. Pruning, levels, rewind units
and the evaluation are configs/imagenet_rotnet.py's: every convolution pruned, ResNet-50's
1x1 downsampling ones included, and no validation split.

Deviations from P0: the colour jitter's strengths (brightness, contrast, saturation in
1 +- 0.4, data/augment.py) are an assumption: P0 does not give S4L's values.

Arguments after the colon: [SOURCE,...][,fig7][,smoke]; SOURCE any of samples30,
samples10, samples1, classes30, classes10, classes1, semisup, places365, cifar10,
labels (labels adds full-ImageNet tickets and the random ticket, as in
configs/imagenet_rotnet.py); default all but labels. fig7: the rewind study alone.
smoke: a seconds-long CPU run for tests.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import add_sources, p0_imagenet, streamed_smoke

LONG = {"duration": "200ep", "warmup": "5ep", "decay_at": ("140ep", "160ep", "180ep")}
LONGEST = {"duration": "1000ep", "decay_at": ("700ep", "800ep", "900ep")}
SOURCES = {
    "samples30": {"sample_fraction": 0.3, "batch_size": 1536, "learning_rate": 0.1,
                  "weight_decay": 3e-4, **LONG},
    "samples10": {"sample_fraction": 0.1, "batch_size": 768, "learning_rate": 0.1,
                  "weight_decay": 1e-3, **LONG},
    "samples1": {"sample_fraction": 0.01, "batch_size": 768, "learning_rate": 0.1,
                 "weight_decay": 1e-3, "color_jitter": True, **LONGEST},
    "classes30": {"class_fraction": 0.3, "batch_size": 1536, "learning_rate": 0.03,
                  "weight_decay": 1e-3, **LONG},
    "classes10": {"class_fraction": 0.1, "batch_size": 768, "learning_rate": 0.3,
                  "weight_decay": 3e-4, **LONG},
    "classes1": {"class_fraction": 0.01, "batch_size": 768, "learning_rate": 0.01,
                 "weight_decay": 3e-3, "color_jitter": True, **LONGEST},
    "semisup": {"task": "semisup", "labelled_fraction": 0.1, "batch_size": 2048,
                "learning_rate": 0.1, "weight_decay": 3e-4, **LONG},
    "places365": {"dataset": "places365_small", "batch_size": 2048, "learning_rate": 0.1,
                  "weight_decay": 1e-4, "duration": "90ep", "decay_at": ("50ep", "65ep", "80ep")},
    "cifar10": {"dataset": "cifar10", "optimizer": "adam", "learning_rate": 1e-3,
                "batch_size": 512, "weight_decay": 1e-4, "duration": "160ep",
                "decay_at": ("80ep", "120ep"), "rewind": "1ep", "pad_crop": 2, "flip": True},
    "labels": {"branches": ("ticket", "random_ticket")},
}
FIG7_REWINDS = {"samples10_rw3ep": "3ep", "samples10_rw3pct": "3.3%",
                "samples10_rw2500st": "2500st"}
SOURCES.update({name: {**SOURCES["samples10"], "rewind": rewind}
                for name, rewind in FIG7_REWINDS.items()})
DEFAULT = [n for n in SOURCES if n != "labels" and n not in FIG7_REWINDS]
FIG7 = ["samples10", *FIG7_REWINDS]


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke = "smoke" in parts
    chosen = [p for p in parts if p not in ("smoke", "fig7")]
    if "fig7" in parts:
        chosen += [n for n in FIG7 if n not in chosen]
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise ValueError(f"configs/imagenet_limited.py: unknown source(s) {unknown}; choose "
                         f"from {list(SOURCES)} (and 'fig7', 'smoke')")
    config = base_config()
    p0_imagenet(config)
    add_sources(config, SOURCES, chosen or DEFAULT)
    if smoke:
        streamed_smoke(config)
    return config
