r"""P0 on CIFAR-10 at paper scale: ResNet-18 or VGG-19 tickets from labels, RotNet,
Exemplar, shuffled labels and 10%/30% subsets, evaluated on full CIFAR-10 labels
against P1's random ticket and P0's random-adjusted baseline, 30 levels of global pruning,
labels and RotNet tickets also randomly reinitialized (P0 Sec. 3.2, Tables 2-3, Fig. 4,
App. F, App. G).

Commands (prepare CIFAR-10 in TFDS once, see docs/data.md; one source per workdir runs in
parallel on several machines, or all in one):
  python -m jaxtickets.main --config=configs/cifar10_p0.py:resnet18 --workdir=runs/p0_resnet18
  python -m jaxtickets.main --config=configs/cifar10_p0.py:vgg19,rotnet --workdir=runs/p0_vgg19_rotnet
  python -m jaxtickets.report --workdir runs/p0_resnet18 --out runs/p0_resnet18/report
Hardware: one GPU (or a TPU host); 6 seeds as in P0 Sec. 3.2 (num_replicates).
Time (estimate, not measured here: no accelerator was lent): per source and seed 30
  generation runs + 15 evaluations of ~160 epochs; ResNet-18 at ~10 s/epoch on a recent
  GPU is ~20 GPU-hours per source and seed. The CPU-scale version is
  configs/cifar10_sources.py.
Expected, test accuracy % (P0 Tables 2-3, mean of 6 seeds):
  remaining           1      0.262  0.069  0.018  0.005  0.001
  ResNet-18 labels    86.54  86.48  86.96  86.80  85.76  81.71
  ResNet-18 rotnet      -    86.48  86.44  85.54  83.43  75.41
  ResNet-18 exemplar    -    86.41  84.86  84.07  79.69  70.60
  ResNet-18 random      -    83.05  78.68  72.11  59.71  34.29
  VGG-19 labels       92.62  92.56  92.68  92.40  91.89  76.81
  VGG-19 rotnet         -    92.76  92.68  91.57  89.22  81.63
  VGG-19 exemplar       -    92.51  92.31  90.90  88.21  77.04
  VGG-19 random         -    90.76  87.86  82.49  70.68  27.18
  Shuffled labels: not better than the random-adjusted baseline (Fig. 4, no numbers).
  Subsets (Fig. 10, numbers missing): ResNet-18 tickets from 10% are at random level.

Recipe (P0 App. A): Adam 1e-3 with L2 1e-4 (PyTorch's coupled weight decay), batch
512, 160 epochs, LR x0.1 at epochs 80 and 120, 2-pixel pad-crop and flips; Exemplar
Adam 3e-4 for 180 epochs, x0.1 at 120; shuffled labels without augmentation. All
50,000 training images, no validation split (data.validation_size=0): a run's reported
accuracy is its last evaluation, at the end of training, as P0 reports. Rewind 1 epoch
(P0 App. B) = 50,000 examples seen for every source (P0's choice for subsets: the same
information processed); the 10% and 30% subsets (5,000 and 15,000 images) train for the
examples of 160 full epochs, 8M. Global pruning of 20% per level over every convolution,
ResNet-18's three 1x1 downsampling convolutions included (P0 leaves only the output
layer and BatchNorm unpruned), evaluation at P1's levels ('morcos': 0-6, 9, ..., 30).
Branches: labels tickets against P1's random ticket (Tables 2-3 'Random'), P0's
random-adjusted baseline (Tables 2-3 'Random - adjusted', Sec. 4.5) and random reinit
(App. G); RotNet tickets against random reinit (App. G).

Deviations from P0: (1) random_adjusted runs at every evaluated level; P0 reports it
from 0.134 remaining on, about where its masks first prune more than the trained
network's natural zeros (Sec. 4.5); its rows above 0.134 are extra, not P0's; (2) the subsets' recipe (P0's Table 10 is
missing from the text) keeps the full data's examples seen, the reading of App. B.

Arguments after the colon: MODEL[,SOURCE...][,smoke]; MODEL is resnet18 or vgg19,
SOURCE any of labels, rotnet, exemplar, shuffled_labels, samples10, samples30 (default:
all); smoke shrinks the run to seconds of CPU (tests).
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import add_sources, shrink_to_smoke

MODELS = ("resnet18", "vgg19")
SOURCES = {
    "labels": {"branches": ("ticket", "random_ticket", "random_adjusted", "random_reinit")},
    "rotnet": {"task": "rotnet", "branches": ("ticket", "random_reinit")},
    "exemplar": {"task": "exemplar", "learning_rate": 3e-4, "duration": "180ep",
                 "decay_at": ("120ep",)},
    "shuffled_labels": {"task": "shuffled_labels", "augment": False},
    "samples10": {"sample_fraction": 0.1, "duration": "8000000ex",
                  "decay_at": ("4000000ex", "6000000ex")},
    "samples30": {"sample_fraction": 0.3, "duration": "8000000ex",
                  "decay_at": ("4000000ex", "6000000ex")},
}


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke = "smoke" in parts
    parts = [p for p in parts if p != "smoke"]
    if not parts or parts[0] not in MODELS:
        raise ValueError(f"configs/cifar10_p0.py: the first argument must be a model, one "
                         f"of {MODELS}; got {arg!r}")
    model, chosen = parts[0], parts[1:] or list(SOURCES)
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise ValueError(f"configs/cifar10_p0.py: unknown source(s) {unknown}; choose "
                         f"from {list(SOURCES)}")
    config = base_config()
    config.num_replicates = 6
    config.model.name = model
    config.data.dataset = "cifar10"
    config.data.source = "tfds"
    config.data.validation_size = 0
    config.data.pad_crop = 2
    config.data.flip = True
    config.train.batch_size = 512
    config.train.duration = "160ep"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.weight_decay = 1e-4
    config.train.schedule = "step"
    config.train.decay_at = ("80ep", "120ep")
    config.train.eval_every = "10ep"
    config.train.checkpoint_every = "10ep"
    config.train.eval_batch_size = 1000
    config.pruning.method = "global"
    config.pruning.rate = 0.2
    config.pruning.prune.output = False
    config.pruning.prune.shortcut = True
    config.pruning.levels = 30
    config.pruning.rewind = "50000ex"
    config.pruning.evaluate_levels = ("morcos",)
    config.branches = ("ticket",)
    add_sources(config, SOURCES, chosen)
    if smoke:
        shrink_to_smoke(config)
    return config
