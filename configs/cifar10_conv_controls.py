r"""P4 Figs. 3-5 and Table 1 on CIFAR-10 Conv-2/4/6: every mask criterion, mask-1 and
mask-0 action as its own pruning trajectory, supermask evaluations of every mask and
learned supermasks, with P4's recipe shortened.

Command (prepare CIFAR-10 into a TFDS data dir once: `make prepare-data`):
  python -m jaxtickets.main --config=configs/cifar10_conv_controls.py:conv4 \
      --workdir=runs/conv4_controls --config.data.data_dir=DATA_DIR
  python -m jaxtickets.analysis.supermask_table --workdir runs/conv4_controls
Hardware: a GPU (19 trajectories x 9 runs of 5,000 steps); on a 2-core CPU a Conv-4 step
  takes ~0.1 s, i.e. ~2 days. `:conv4,smoke` runs in minutes on 2,000 images.
Expected (P4 Table 1, Conv2/4/6): mask x initial weights 22.3/23.7/24.0%, signed
  constant 37.4/39.7/41.0%, learned mask 64.4/65.4/65.3%, trained 69.2/75.4/78.3%
  (P4's full schedule); criteria orderings as on MNIST, magnitude_increase slightly
  above large_final on Conv2/Conv4.

Protocol (P4 Table S1 shortened): Adam (2e-4 Conv-2, 3e-4 Conv-4/6), batch 60,
5,000 steps per run (P4: 20K/25K/30K), layer-wise pruning with the conv rate doubled
(20%, Conv-6 30%) and FC 36%, output 18%, 8 levels; learned supermasks with P4's
lr {100, 50, 20} and steps {2000, 1000, 800}, early stopping on validation loss.

Arguments after the colon: conv2, conv4 (default) or conv6, optionally ',smoke'.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import add_p4_trajectories

# (Adam lr, conv rate per level, learned-mask lr, learned-mask steps): P4 Table S1 / S3
RECIPES = {"conv2": (2e-4, 0.20, 100.0, 2000), "conv4": (3e-4, 0.20, 50.0, 1000),
           "conv6": (3e-4, 0.30, 20.0, 800)}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    smoke = "smoke" in parts
    names = [p for p in parts if p != "smoke"]
    if len(names) > 1 or (names and names[0] not in RECIPES):
        raise ValueError(f"configs/cifar10_conv_controls.py: unknown argument {arg!r}; use "
                         f"one of {sorted(RECIPES)} optionally followed by ',smoke'")
    name = names[0] if names else "conv4"
    lr, conv_rate, mask_lr, mask_steps = RECIPES[name]
    config = base_config()
    config.num_replicates = 2
    config.model.name = name
    config.data.dataset = "cifar10"
    config.data.source = "tfds"
    config.data.validation_size = 5000
    config.train.batch_size = 60
    config.train.duration = "5000st"
    config.train.optimizer = "adam"
    config.train.learning_rate = lr
    config.train.eval_every = "500st"
    config.train.checkpoint_every = "2500st"
    config.pruning.method = "layerwise"
    config.pruning.levels = 8
    config.pruning.rates.conv = conv_rate
    config.pruning.rates.dense = 0.36
    config.pruning.rates.output = 0.18
    config.branches = ("ticket",)
    config.supermask.logit_inits = (-1, 0, 1, 3)
    config.supermask.steps = mask_steps
    config.supermask.learning_rate = mask_lr
    config.supermask.batch_size = 60
    config.supermask.eval_every = 100
    add_p4_trajectories(config)
    config.generation.large_final.branches += ("learned_supermask",)
    if smoke:
        config.num_replicates = 1
        config.data.validation_size = 500
        config.data.train_size = 2000
        config.data.test_size = 500
        config.train.duration = "40st"
        config.train.eval_every = "20st"
        config.train.checkpoint_every = "40st"
        config.train.eval_batch_size = 500
        config.pruning.levels = 1
        config.supermask.logit_inits = (1,)
        config.supermask.steps = 20
        config.supermask.eval_every = 10
        config.supermask.eval_samples = 2
        config.generation = type(config.generation)()
        add_p4_trajectories(config, ("large_final", "magnitude_increase"),
                                            ("constant_sign",), ("hybrid",))
        config.generation.large_final.branches += ("learned_supermask",)
        config.runtime.log_every_seconds = 30.0
    return config
