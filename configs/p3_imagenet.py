r"""P3's sanity checks on ImageNet: ResNet-50 (or ResNet-18) IMP and OMP masks, trained
from the original init (LT) or rewound to epoch 5 of 90 (WR, trained T - t), against
random reinit (RR) and the small-dense network (SDT) (P3 Table E.1, Sec. 3-4).

Commands (imagenet2012 prepared in TFDS; one workdir per variant):
  python -m jaxtickets.main --config=configs/p3_imagenet.py --workdir=runs/p3_in_lt
  python -m jaxtickets.main --config=configs/p3_imagenet.py:wr --workdir=runs/p3_in_wr
  python -m jaxtickets.main --config=configs/p3_imagenet.py:resnet18,wr --workdir=runs/p3_r18_wr
  python -m jaxtickets.analysis.p3_conditions --workdirs runs/p3_in_lt runs/p3_in_wr
Hardware: batch 1024 (P3 Table E.1): 128 per device on 8 GPUs or a v4-16 slice
  (8 chips, 2 hosts, --multihost). Use `--config.model.compute_dtype=bfloat16`.
Time (estimate, not measured here: no accelerator was lent): a 90-epoch ResNet-50 run
  is ~8-10 hours on 8 A100s; per workdir 2 trajectories x 12 runs + the controls at
  5 levels, 2 seeds.
Expected (P3, qualitative: no ImageNet numbers survive in the appendix): on ImageNet-1K
  OMP outperforms IMP for all ResNets; rewinding to ~5% of training (wr) improves on
  tickets trained from theta_0 (P3 Figs. D.1-D.14); check the LTH and Jackpot
  conditions with jaxtickets.analysis.p3_conditions.

Protocol (P3 Table E.1, ImageNet column): 90 epochs, batch 1024, SGD momentum 0.875,
weight decay 3.05e-5, cosine decay after 8 warm-up epochs; global magnitude pruning
over the convolutions (1x1 shortcuts and the output layer unpruned), 20% per level,
11 levels (91.4% sparsity); OMP prunes the dense network at once to each IMP level's
density. Augmentation: random-resized crops and flips (data/augment.py), no colour jitter.
Every training image is trained on (no validation split): a run reports its last
evaluation, at the end of training, as P3 reports test accuracy after T epochs. RR and
SDT train from scratch for the full 90 epochs (P3 App. B), WR tickets 90 - 5.
Not in the appendix, chosen here: LR 1.024 (0.256 per 256 images, linearly scaled: the
recipe whose momentum, weight decay and warm-up Table E.1 lists), no label smoothing.
Controls at levels 2, 4, 7, 11.

Deviations from P3: the learning rate and label smoothing above are not in the
appendix (its main text is missing); 2 seeds and 11 levels (P3's counts are not in the
appendix either) keep the run within weeks of one 8-GPU machine.

Arguments after the colon: [resnet50|resnet18][,wr][,smoke]; wr rewinds to epoch 5;
smoke: a seconds-long CPU run for tests.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import p3_trajectories, streamed_smoke

MODELS = {"resnet50": "resnet50", "resnet18": "resnet18_imagenet"}


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke, rewinding = "smoke" in parts, "wr" in parts
    rest = [p for p in parts if p not in ("smoke", "wr")]
    if len(rest) > 1 or (rest and rest[0] not in MODELS):
        raise ValueError(f"configs/p3_imagenet.py: unknown argument {arg!r}; use "
                         f"[{'|'.join(MODELS)}][,wr][,smoke]")
    config = base_config()
    config.num_replicates = 2
    config.model.name = MODELS[rest[0] if rest else "resnet50"]
    config.data.dataset = "imagenet2012"
    config.data.source = "tfds"
    config.data.validation_size = 0
    config.data.image_size = 224
    config.train.batch_size = 1024
    config.train.duration = "90ep"
    config.train.optimizer = "momentum"
    config.train.momentum = 0.875
    config.train.learning_rate = 1.024
    config.train.weight_decay = 3.05e-5
    config.train.schedule = "cosine"
    config.train.warmup = "8ep"
    config.train.eval_every = "5ep"
    config.train.checkpoint_every = "1ep"
    config.train.eval_batch_size = 1024
    p3_trajectories(config, levels=11, evaluate_levels=(0, 2, 4, 7, 11))
    config.pruning.rewind = "5ep" if rewinding else "0st"
    if smoke:
        streamed_smoke(config)
        config.train.warmup = "1st"
        config.pruning.rewind = "2st" if rewinding else "0st"
        config.pruning.evaluate_levels = (0, 1)
    return config
