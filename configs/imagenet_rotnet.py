r"""P0 on ImageNet: ResNet-50 tickets generated without labels (RotNet) or with them,
evaluated by training on full ImageNet labels against P1's random ticket, 30 levels of
global pruning (P0 Sec. 3.2-4, Fig. 3, App. A; the DIGEST's ImageNet rows).

Commands (imagenet2012 prepared in TFDS; one source per workdir can run on its own slice):
  python -m jaxtickets.main --config=configs/imagenet_rotnet.py --workdir=runs/imagenet_rotnet
  python -m jaxtickets.main --config=configs/imagenet_rotnet.py:rotnet --workdir=runs/in_rotnet
  launch/tpu_vm.sh --tpu jt --zone us-central2-b --bucket B --accelerator v4-32 \
      configs/imagenet_rotnet.py imagenet_rotnet
Hardware: P0 used 16 GPUs with batch 1536 (96 per device), synchronous; a TPU v4-32 slice
  (16 chips, 4 hosts, --multihost) runs the same batch at 96 per chip. Use
  `--config.model.compute_dtype=bfloat16` on TPUs and recent GPUs.
Time (estimate, not measured here: no accelerator was lent): a ResNet-50 run of 90
  epochs is ~1 day on 16 V100s; each source trains 31 generation runs plus 15
  evaluations (levels 0-6, 9, ..., 30) per seed, 3 seeds: thousands of GPU-days. Start
  with `--config.pruning.levels=6` (26% remaining) and one seed.
Expected, ImageNet val top-1 % (P0 Table 4, ResNet-50, mean of 3 seeds):
  remaining   1      0.8    0.512  0.262  0.134  0.069  0.018  0.005  0.001
  labels      75.26  75.57  75.86  75.96  75.24  69.38  61.45  52.14  32.17
  rotnet        -    74.92  73.92  72.08  69.88  66.94  59.68  47.89  28.71
  random        -    74.22  72.71  69.34  64.56  56.71  42.40  23.17   0.62

Recipe (P0 App. A, SGD with momentum 0.9 throughout; standard ImageNet augmentation:
random-resized crops and flips, data/augment.py):
  evaluation and `labels`: 90 epochs, batch 1536, LR 0.1, weight decay 1e-4,
    x0.1 at epochs 50, 65, 80;
  `rotnet`: 90 epochs, batch 1536, LR 1, 5 warm-up epochs, weight decay 1e-5,
    x0.1 at 50, 65, 80.
Rewind: 3 x 1.28M = 3,840,000 examples seen (P0 App. B) for every source. Global pruning
of 20% per level, output layer unpruned, evaluation at P1's levels ('morcos'). 10,000
training images are held out for early stopping; the test split is ImageNet val.
Not here: Exemplar on ImageNet (it adds small rotations to its images, a per-source
augmentation this config cannot yet give one source alone) and the subset sources
(1/10/30% of images or classes: data selections need an in-memory dataset so far).

Arguments after the colon: [SOURCE,...][,smoke]; SOURCE any of labels, rotnet (default
both); smoke: a seconds-long CPU run for tests (16-pixel crops, batch 8, 1 level).
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import add_sources

SOURCES = {
    "labels": {"branches": "ticket,random_ticket"},
    "rotnet": {"task": "rotnet", "learning_rate": 1.0, "warmup": "5ep",
               "weight_decay": 1e-5},
}


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke = "smoke" in parts
    chosen = [p for p in parts if p != "smoke"] or list(SOURCES)
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise ValueError(f"configs/imagenet_rotnet.py: unknown source(s) {unknown}; choose "
                         f"from {list(SOURCES)}")
    config = base_config()
    config.num_replicates = 3
    config.model.name = "resnet50"
    config.data.dataset = "imagenet2012"
    config.data.source = "tfds"
    config.data.validation_size = 10000
    config.data.image_size = 224
    config.train.batch_size = 1536
    config.train.duration = "90ep"
    config.train.optimizer = "momentum"
    config.train.momentum = 0.9
    config.train.learning_rate = 0.1
    config.train.weight_decay = 1e-4
    config.train.schedule = "step"
    config.train.decay_at = "50ep,65ep,80ep"
    config.train.eval_every = "5ep"
    config.train.checkpoint_every = "1ep"
    config.train.eval_batch_size = 1536
    config.pruning.method = "global"
    config.pruning.rate = 0.2
    config.pruning.prune.output = False
    config.pruning.levels = 30
    config.pruning.rewind = "3840000ex"
    config.pruning.evaluate_levels = "morcos"
    config.branches = "ticket"
    config.runtime.steps_per_call = 1
    add_sources(config, SOURCES, chosen)
    if smoke:
        config.num_replicates = 1
        config.data.validation_size = 5
        config.data.image_size = 16
        config.train.batch_size = 8
        config.train.duration = "8st"
        config.train.decay_at = "4st"
        config.train.eval_every = config.train.checkpoint_every = "4st"
        config.train.eval_batch_size = 8
        config.pruning.levels = 1
        config.pruning.rewind = "2st"
        config.pruning.evaluate_levels = "all"
        for name in config.generation.keys():
            config.generation[name].warmup = "1st"
        config.runtime.reader_threads = 2
        config.runtime.log_every_seconds = 60.0
    return config
