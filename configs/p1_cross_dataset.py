r"""P1's cross-dataset transfer (Sec. 4.2, Figs. 3-4): tickets generated on Fashion-MNIST,
SVHN, CIFAR-10, CIFAR-100, ImageNet and Places365, each evaluated by training on one
target dataset, against the target's random ticket; VGG-19 (Fig. 3) or ResNet-50
(Fig. 4).

Commands (prepare the datasets in TFDS once; one target per workdir):
  python -m jaxtickets.main --config=configs/p1_cross_dataset.py:cifar10 \
      --workdir=runs/p1_to_cifar10
  python -m jaxtickets.main --config=configs/p1_cross_dataset.py:fashion_mnist,small \
      --workdir=runs/p1_to_fmnist
  python -m jaxtickets.main --config=configs/p1_cross_dataset.py:imagenet2012,resnet50 \
      --workdir=runs/p1_r50_to_imagenet
  python -m jaxtickets.report --workdir runs/p1_to_cifar10 --out runs/p1_to_cifar10/report
Hardware: P1 used batch 512 throughout, on 2 GPUs for the small datasets and 16 GPUs
  (synchronous) for ImageNet and Places365 sources or targets; a TPU v4-32 slice
  (--multihost) takes the large ones at 32 per chip.
Time (estimate, not measured here: no accelerator was lent): per source and seed 31
  generation runs + 15 evaluations; small datasets ~1-2 GPU-days per source, an
  ImageNet or Places365 source ~100x that; 6 seeds.
Expected (P1 Figs. 3-4, qualitative: the text gives no numbers): every source's ticket
  beats the target's random ticket at high sparsity; sources with more samples and
  more classes transfer better: ImageNet and Places365 tickets are competitive on every
  target, CIFAR-100 tickets beat CIFAR-10 tickets even on Fashion-MNIST and SVHN; on
  Fashion-MNIST, transferred tickets beat its own tickets at low sparsity.

Recipe (P1 App. A.1): SGD 0.1, momentum 0.9, weight decay 1e-4, batch 512; VGG-19 160
epochs, LR x0.1 at 80 and 120; ResNet-50 90 epochs, x0.1 at 50, 65, 80; global pruning
20% per level for 30 levels, output layer unpruned and re-initialized when the source
has other classes (P1 Sec. 3.3); late resetting to 1 epoch of each small source's own
training, 3 epochs for ImageNet and Places365; 'morcos' evaluation levels; 6 seeds.
Between small datasets, source images are brought to the target's input shape (grey
to RGB, resized: data/selections.py); ImageNet and Places365 keep their 224-pixel
crops and the small datasets their own size (the models pool globally). Every training
image of every dataset is trained on (no validation split): a run reports its last
evaluation, at the end of training, as P1 does. ResNet-50's 1x1 downsampling
convolutions are pruned with the other convolutions (P1 pools all layers but the
output, which it re-initializes). Following P1, the large targets take only the large
sources.

Deviations from P1: the host augmentation of ImageNet and Places365 (random-resized
crops and flips, no colour jitter) is the usual torchvision recipe; P1 does not state
its own.

Arguments after the colon: TARGET[,resnet50][,small][,smoke]; TARGET one of
fashion_mnist, svhn_cropped, cifar10, cifar100, imagenet2012, places365_small.
resnet50: Fig. 4's model (default VGG-19, Fig. 3). small: only the four small sources
(no ImageNet or Places365 needed). smoke: a CPU run of seconds (tests).
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import (add_sources, p1_vgg19, shrink_to_smoke,
                                           streamed_smoke)

SMALL = ("fashion_mnist", "svhn_cropped", "cifar10", "cifar100")
LARGE = ("imagenet2012", "places365_small")
LARGE_REWIND = "3ep"  # P1 App. A.1: late resetting of ImageNet and Places365 tickets


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    flags = {p for p in parts if p in ("smoke", "resnet50", "small")}
    targets = [p for p in parts if p not in flags]
    if len(targets) != 1 or targets[0] not in SMALL + LARGE:
        raise ValueError(f"configs/p1_cross_dataset.py: the target must be one of "
                         f"{SMALL + LARGE} (optionally ,resnet50 ,small ,smoke); got {arg!r}")
    target = targets[0]
    config = base_config()
    p1_vgg19(config, target)
    config.data.flip = target != "svhn_cropped"  # digits are not mirror-symmetric
    config.train.optimizer = "momentum"
    config.train.learning_rate = 0.1
    config.train.momentum = 0.9
    if "resnet50" in flags:
        config.model.name = "resnet50"
        config.pruning.prune.shortcut = True  # P1 pools every layer but the output
        config.train.duration = "90ep"
        config.train.decay_at = ("50ep", "65ep", "80ep")
    if target in LARGE:  # streamed: cropped and flipped on the host
        config.data.pad_crop, config.data.flip = 0, False
        config.pruning.rewind = LARGE_REWIND
        config.train.eval_every = config.train.checkpoint_every = "1ep"
    names = LARGE if target in LARGE else SMALL if "small" in flags else SMALL + LARGE
    sources = {name: {"dataset": name} for name in names}
    for name in set(names) & set(LARGE) - {target}:
        sources[name]["rewind"] = LARGE_REWIND
    sources[target]["branches"] = ("ticket", "random_ticket")
    add_sources(config, sources)
    if "smoke" in flags:
        (streamed_smoke if target in LARGE else shrink_to_smoke)(config)
    return config
