r"""P1's cross-dataset transfer on VGG-19 (Sec. 4.2, Fig. 3): tickets generated on
Fashion-MNIST, SVHN, CIFAR-10 and CIFAR-100, each evaluated by training on one target
dataset, against the target's random ticket.

Commands (prepare the four datasets in TFDS once; one target per workdir):
  python -m jaxtickets.main --config=configs/p1_cross_dataset.py:cifar10 --workdir=runs/p1_to_cifar10
  python -m jaxtickets.main --config=configs/p1_cross_dataset.py:fashion_mnist --workdir=runs/p1_to_fmnist
  python -m jaxtickets.report --workdir runs/p1_to_cifar10 --out runs/p1_to_cifar10/report
Hardware: P1 used 2 GPUs with batch 512 (256 per device); one GPU holds it too.
Time (estimate, not measured here: no accelerator was lent): per source and seed 31
  generation runs + 15 evaluations of 160 epochs on 50-73K images: ~1-2 GPU-days per
  source, four sources per target, 6 seeds.
Expected (P1 Fig. 3, qualitative: the text gives no numbers): every source's ticket
  beats the target's random ticket at high sparsity; sources with more samples and
  more classes transfer better (CIFAR-100 tickets beat CIFAR-10 tickets even on
  Fashion-MNIST and SVHN); on Fashion-MNIST, transferred tickets beat its own tickets at
  low sparsity, where VGG-19 overfits.

Recipe (P1 App. A.1): SGD 0.1, momentum 0.9, weight decay 1e-4, batch 512, 160 epochs,
LR x0.1 at 80 and 120; global pruning 20% per level for 30 levels, output layer
unpruned and re-initialized when the source has other classes (P1 Sec. 3.3); late
resetting to 1 epoch of each source's own training; 'morcos' evaluation levels; 6 seeds.
Source images are brought to the target's input shape (grey to RGB, resized: see
data/selections.py). 5,000 training images of each dataset are held out for early
stopping. ImageNet and Places365 sources (P1's largest) need data selections on
streamed datasets, which are not built yet.

Arguments after the colon: TARGET[,smoke]; TARGET one of fashion_mnist, svhn_cropped,
cifar10, cifar100. smoke: a CPU run of seconds (tests).
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import add_sources, p1_vgg19, shrink_to_smoke

DATASETS = ("fashion_mnist", "svhn_cropped", "cifar10", "cifar100")


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke = "smoke" in parts
    parts = [p for p in parts if p != "smoke"]
    if len(parts) != 1 or parts[0] not in DATASETS:
        raise ValueError(f"configs/p1_cross_dataset.py: the target must be one of {DATASETS} "
                         f"(optionally ,smoke); got {arg!r}")
    target = parts[0]
    config = base_config()
    p1_vgg19(config, target)
    config.data.flip = target != "svhn_cropped"  # digits are not mirror-symmetric
    config.train.optimizer = "momentum"
    config.train.learning_rate = 0.1
    config.train.momentum = 0.9
    sources = {name: {"dataset": name} for name in DATASETS}
    sources[target]["branches"] = "ticket,random_ticket"
    add_sources(config, sources)
    if smoke:
        shrink_to_smoke(config)
    return config
