r"""P4 Table 1, MNIST FC row: supermasks on the untrained LeNet-300-100 (mask x initial
weights, mask x signed constant), learned supermasks, and the trained network.

Command (prepare the TFDS data once, see README):
  python -m jaxtickets.main --config=configs/mnist_supermask.py \
      --workdir=runs/mnist_supermask --config.data.data_dir=DATA_DIR
  python -m jaxtickets.analysis.supermask_table --workdir runs/mnist_supermask
Hardware: this 2-core CPU. Time: see the README (P4 controls section): `:short` ~8 min,
  the default ~1 h per replicate; `:smoke` runs in seconds on the embedded subset.
Expected (issue 4, P4 Table 1 within 3 points): best over pruning levels of mask x
  initial weights ~79.3% (large_final_same_sign), mask x signed constant ~86.3%,
  learned mask ~95.3%, trained network ~97.7%.

Protocol (default): P4 Table S1's LeNet-300-100 recipe as P4 ran it: Adam 1.2e-3, batch
60, 50,000 steps per run, layer-wise pruning 20% per level (output 10%), 12 levels down
to 6.9% remaining, for the large_final_same_sign trajectory (P4 Sec. 5: the criterion of
the best heuristic supermasks), each mask evaluated on the untrained network with the
initial weights and with the signed constant; the dense level 0 gives P4's untrained and
trained baselines. Learned supermasks (P4 Sec. 5.1): SGD momentum 0.9 at lr 100, 2,000
steps of batch 128, every mask logit initialized to one of -3, -1, 0, 1, 3, evaluation
averaged over 10 Bernoulli samples.

Arguments after the colon: (none) the protocol above; short: every run cut to 3,000 steps,
16 levels, large_final and large_final_same_sign trajectories; smoke: the short protocol
on the embedded subset, 2 levels of 200 steps, one learned mask of 100 steps, for tests.
"""

from jaxtickets.config_schema import add_source, base_config
from jaxtickets.experiment.presets import P4_SUPERMASKS, embedded_mnist_smoke, p4_lenet_short


def _learned_supermasks(config) -> None:
    config.supermask.logit_inits = "-3,-1,0,1,3"
    config.supermask.steps = 2000
    config.supermask.learning_rate = 100.0
    config.supermask.batch_size = 128
    config.supermask.eval_every = 100
    config.supermask.eval_samples = 10


def get_config(arg: str | None = None):
    config = base_config()
    p4_lenet_short(config)
    _learned_supermasks(config)
    if arg in (None, ""):
        config.train.duration = "50000st"
        config.train.eval_every = "1000st"
        config.train.checkpoint_every = "10000st"
        config.pruning.levels = 12
        add_source(config, "large_final_same_sign", criterion="large_final_same_sign",
                   branches=P4_SUPERMASKS + ",learned_supermask")
        return config
    if arg not in ("short", "smoke"):
        raise ValueError(f"configs/mnist_supermask.py: unknown argument {arg!r}; use "
                         "short or smoke")
    config.pruning.levels = 16
    add_source(config, "large_final", branches=P4_SUPERMASKS + ",learned_supermask")
    add_source(config, "large_final_same_sign", criterion="large_final_same_sign",
               branches=P4_SUPERMASKS)
    if arg == "smoke":
        embedded_mnist_smoke(config)
        config.supermask.logit_inits = "1"
        config.supermask.steps = 100
        config.supermask.eval_every = 50
        config.supermask.eval_samples = 2
    return config
