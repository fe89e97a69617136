r"""P0 on ImageNet: tickets generated without labels (RotNet, Exemplar) or with them,
evaluated by training on full ImageNet labels against P1's random ticket, 30 levels of
global pruning (P0 Sec. 3.2-4.1, Tables 4-5, App. A).

Commands (imagenet2012 prepared in TFDS; one source per workdir can run on its own slice):
  python -m jaxtickets.main --config=configs/imagenet_rotnet.py --workdir=runs/imagenet_rotnet
  python -m jaxtickets.main --config=configs/imagenet_rotnet.py:rotnet --workdir=runs/in_rotnet
  python -m jaxtickets.main --config=configs/imagenet_rotnet.py:alexnet --workdir=runs/in_alexnet
  launch/tpu_vm.sh --tpu jt --zone us-central2-b --bucket B --accelerator v4-32 \
      configs/imagenet_rotnet.py imagenet_rotnet
Hardware: P0 used 16 GPUs, synchronous, with the total batches below (ResNet-50: 1536,
  96 per device); a TPU v4-32 slice (16 chips, 4 hosts, --multihost) runs the same
  batches. Use `--config.model.compute_dtype=bfloat16` on TPUs and recent GPUs.
Time (estimate, not measured here: no accelerator was lent): a ResNet-50 run of 90
  epochs is ~1 day on 16 V100s; each source trains 31 generation runs plus 15
  evaluations (levels 0-6, 9, ..., 30) per seed, 3 seeds: thousands of GPU-days. Start
  with `--config.pruning.levels=6` (26% remaining) and one seed.
Expected, ImageNet val top-1 % (mean of 3 seeds):
  P0 Table 4, ResNet-50:
  remaining   1      0.8    0.512  0.262  0.134  0.069  0.018  0.005  0.001
  labels      75.26  75.57  75.86  75.96  75.24  69.38  61.45  52.14  32.17
  rotnet        -    74.92  73.92  72.08  69.88  66.94  59.68  47.89  28.71
  exemplar      -    73.53  72.44  70.68  68.15  65.30  57.61  45.44  29.70
  random        -    74.22  72.71  69.34  64.56  56.71  42.40  23.17   0.62
  P0 Table 5, AlexNet:
  remaining   1      0.8    0.512  0.262  0.134  0.069  0.018  0.005
  labels      58.01  58.54  59.06  58.93  58.87  57.46  50.43  37.42
  rotnet        -    57.80  56.42  53.26  49.58  45.62  36.54  26.20
  exemplar      -    56.21  54.48  50.99  46.63  41.53  31.23  23.38
  random        -    57.61  55.82  51.75  46.36  40.18  26.45  16.28

Recipes (P0 App. A, SGD with momentum 0.9; presets.P0_IMAGENET_RECIPES):
  ResNet-50  labels (= evaluation): 90 epochs, batch 1536, LR 0.1, WD 1e-4, x0.1 at 50/65/80;
             rotnet: 90 ep, 1536, LR 1, 5 warm-up epochs, WD 1e-5, x0.1 at 50/65/80;
             exemplar: 30 ep, 1536, LR 1, WD 1e-5, x0.1 at 20/25.
  AlexNet    labels (= evaluation): 90 ep, batch 4096, LR 0.4, WD 1e-4, x0.1 at 30/60;
             rotnet: 90 ep, 8192, LR 0.5, 2 warm-up epochs, WD 1e-5, x0.1 at 30/60;
             exemplar: 30 ep, 4096, LR 0.1, WD 1e-4, x0.1 at 20.
Augmentation: random-resized crops and flips on the host (data/augment.py), no colour
jitter (P0 App. A: colour augmentation for Exemplar and the 1% subsets only); Exemplar
adds its own colour jitter and +-20 degree rotations on the device (tasks/exemplar.py).
Rewind: 3 x 1.28M = 3,840,000 images seen (P0 App. B), converted with each source's own
batch. Global pruning of 20% per level over every convolution, ResNet-50's 1x1
downsampling convolutions included (P0 leaves only the output layer and BatchNorm
unpruned), evaluation at P1's levels ('morcos'). Every training image is trained on (no
validation split): a run reports its last evaluation, at the end of training, on the
test split, ImageNet val, as P0 does. Layerwise tickets (P0 Figs. 2, 8):
add `--config.pruning.first_conv_layers=11` (24, 43; AlexNet 1, 3, 5).
The limited-supervision sources (1/10/30% of the images or classes, S4L, Places365 and
CIFAR-10 tickets) are in configs/imagenet_limited.py.

Arguments after the colon: [SOURCE,...][,alexnet][,smoke]; SOURCE any of labels, rotnet,
exemplar (default all three); alexnet: P0's AlexNet runs (Table 5) instead of
ResNet-50; smoke: a seconds-long CPU run for tests (16-pixel crops, batch 8, 1 level).

Deviations from P0: none known in the recipes. P0 trains on 16 GPUs with batch
statistics per GPU (96 images each); one BatchNorm over the whole batch of 1536 here
computes the statistics over more images, which can move accuracy slightly.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import (P0_IMAGENET_RECIPES, add_sources, p0_imagenet,
                                           streamed_smoke)

TASKS = {"labels": {"branches": ("ticket", "random_ticket")},
         "rotnet": {"task": "rotnet"},
         "exemplar": {"task": "exemplar"}}


def sources(model: str) -> dict:
    """Each task with what its App. A recipe changes from the evaluation's (labels'), so
    the labels source's generation run is the evaluation run."""
    recipes = P0_IMAGENET_RECIPES[model]
    return {name: {**extra, **{k: v for k, v in recipes[name].items()
                               if recipes["labels"].get(k) != v}}
            for name, extra in TASKS.items()}


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke = "smoke" in parts
    model = "alexnet" if "alexnet" in parts else "resnet50"
    chosen = [p for p in parts if p not in ("smoke", "alexnet")] or list(TASKS)
    unknown = [s for s in chosen if s not in TASKS]
    if unknown:
        raise ValueError(f"configs/imagenet_rotnet.py: unknown source(s) {unknown}; choose "
                         f"from {list(TASKS)} (and 'alexnet', 'smoke')")
    config = base_config()
    p0_imagenet(config, model)
    add_sources(config, sources(model), chosen)
    if smoke:
        streamed_smoke(config)
    return config
