r"""P2's LeNet-300-100 on MNIST: IMP with reset to init, ticket vs random reinit (P2 Fig. 4).

Command (full recipe; prepare the TFDS data once, see docs/data.md):
  python -m jaxtickets.main --config=configs/mnist_lenet.py --workdir=runs/mnist_lenet
Hardware: one CPU core is enough; a GPU is faster. Time: 50K iterations per run, 28
  levels + 3 reinits at each of the 27 pruned levels = 109 runs per trial, 5 trials:
  at about 40 s per 10K iterations on one CPU core about 30 hours;
  `--config.num_replicates=1 --config.pruning.control_draws=1 --config.pruning.levels=7`
  (to 21% remaining, 15 runs) takes about an hour.
Expected (P2 Fig. 4): dense ~98% test accuracy; tickets at 21% remaining at least as
  accurate, learning ~38% faster; random reinit below the dense network from 21.1%.

Arguments after the colon:
  (none)  P2's recipe: Adam 1.2e-3, batch 60, 50K iterations, layer-wise 20% per level
          (output layer 10%), reset to init ('0st'), 5,000 validation images; 27 levels
          (0.26% remaining, Fig. 4's last point), 5 trials, 3 random reinits per trial
          and level (Fig. 4's 15 dashed-line runs).
  demo    the quickstart's main job (`make demo`): the MNIST subset embedded in the package (12,000
          train / 2,000 test images), 2,500 iterations, 8 levels, 1 trial, 1 reinit; a
          few minutes on CPU.
  smoke   a run of well under a minute for tests: 3 levels of 300 iterations.

Deviations from P2: none in the full recipe. demo and smoke are cut to CPU minutes
(fewer images, iterations, levels, trials and reinits), so their numbers are not P2's.
"""

from jaxtickets.config_schema import base_config


def get_config(arg: str | None = None):
    config = base_config()
    config.model.name = "lenet300_100"
    config.data.dataset = "mnist"
    config.data.source = "tfds"
    config.data.validation_size = 5000
    config.train.batch_size = 60
    config.train.duration = "50000st"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1.2e-3
    config.train.eval_every = "100st"
    config.train.checkpoint_every = "5000st"
    config.pruning.method = "layerwise"
    config.num_replicates = 5
    config.pruning.levels = 27
    config.pruning.control_draws = 3
    config.pruning.rates.dense = 0.2
    config.pruning.rates.output = 0.1
    config.pruning.rewind = "0st"
    config.branches = ("ticket", "random_reinit")
    if arg in (None, ""):
        return config
    if arg in ("demo", "smoke"):
        config.num_replicates = 1
        config.pruning.control_draws = 1
    if arg == "demo":
        config.data.source = "embedded"
        config.data.validation_size = 1000
        config.train.duration = "2500st"
        config.train.eval_every = "100st"
        config.train.checkpoint_every = "500st"
        config.pruning.levels = 8
        config.pruning.evaluate_levels = (0, 2, 4, 6, 7, 8)
        config.runtime.log_every_seconds = 20.0
        return config
    if arg == "smoke":
        config.data.source = "embedded"
        config.data.validation_size = 1000
        config.data.train_size = 3000
        config.data.test_size = 1000
        config.train.duration = "300st"
        config.train.eval_every = "100st"
        config.train.checkpoint_every = "100st"
        config.pruning.levels = 2
        config.runtime.log_every_seconds = 5.0
        return config
    raise ValueError(f"configs/mnist_lenet.py: unknown argument {arg!r}; use demo or smoke")
