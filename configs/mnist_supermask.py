r"""P4 Table 1, MNIST FC row: supermasks on the untrained LeNet-300-100 (mask x initial
weights, mask x signed constant), learned supermasks, and the trained network.

Command (prepare the TFDS data once, see README):
  python -m jaxtickets.main --config=configs/mnist_supermask.py \
      --workdir=runs/mnist_supermask --config.data.data_dir=DATA_DIR
  python -m jaxtickets.analysis.supermask_table --workdir runs/mnist_supermask
Hardware: this 2-core CPU. Time: see the README (P4 controls section); `:smoke` runs in
  about a minute on the embedded subset.
Expected (issue 4, P4 Table 1 within 3 points): best over pruning levels of mask x
  initial weights ~79.3% (large_final_same_sign), mask x signed constant ~86.3%,
  learned mask ~95.3%, trained network ~97.7%.

Protocol: P4 Table S1's LeNet-300-100 recipe shortened to 3,000 steps per run (Adam
1.2e-3, batch 60, layer-wise pruning 20% per level, output 10%, 16 levels down to 2.8%
remaining) for the large_final and large_final_same_sign trajectories, each mask
evaluated on the untrained network both ways; the dense level 0 gives P4's untrained
and trained baselines. Learned supermasks (P4 Sec. 5.1): SGD momentum 0.9 at lr 100,
2,000 steps of batch 128, every mask logit initialized to one of -3, -1, 0, 1, 3,
evaluation averaged over 10 Bernoulli samples.

Arguments after the colon: (none) the protocol above; smoke: the embedded subset, 2
levels of 200 steps, one learned mask of 100 steps, for tests.
"""

from jaxtickets.config_schema import add_source, base_config
from jaxtickets.experiment.presets import P4_SUPERMASKS, embedded_mnist_smoke, p4_lenet_short


def get_config(arg: str | None = None):
    config = base_config()
    p4_lenet_short(config)
    config.pruning.levels = 16
    config.supermask.logit_inits = "-3,-1,0,1,3"
    config.supermask.steps = 2000
    config.supermask.learning_rate = 100.0
    config.supermask.batch_size = 128
    config.supermask.eval_every = 100
    config.supermask.eval_samples = 10
    add_source(config, "large_final", branches=P4_SUPERMASKS + ",learned_supermask")
    add_source(config, "large_final_same_sign", criterion="large_final_same_sign",
               branches=P4_SUPERMASKS)
    if arg in (None, ""):
        return config
    if arg == "smoke":
        embedded_mnist_smoke(config)
        config.supermask.logit_inits = "1"
        config.supermask.steps = 100
        config.supermask.eval_every = 50
        config.supermask.eval_samples = 2
        return config
    raise ValueError(f"configs/mnist_supermask.py: unknown argument {arg!r}; use smoke")
