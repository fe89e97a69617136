r"""P2's controls on LeNet-300-100 / MNIST at CPU scale: IMP against random reinit, reinit
from the ticket's own init distribution D_m (App. F.3), Gaussian noise of 0.5 to 3 sigma
on the ticket's init (F.7), pruning at iteration 0 (F.4), a random sparse network with
the same per-layer counts (Fig. 1 / App. E), P0's random-adjusted baseline and P3's
small-dense network; one-shot pruning (Sec. 2) and strategy 2 (App. B) beside IMP.

Command (prepare the TFDS data once, see docs/data.md):
  python -m jaxtickets.main --config=configs/mnist_p2_controls.py \
      --workdir=runs/mnist_p2_controls --config.data.data_dir=DATA_DIR
  python -m jaxtickets.report --workdir runs/mnist_p2_controls --out runs/mnist_p2_controls/report
Hardware: a 2-core CPU. Time: docs/papers/p2_lottery_ticket.md; `:smoke` runs in
  seconds on the embedded subset.
Expected (P2): the ticket above random reinit, D_m reinit and the random sparse network
  from ~21% remaining down; noise of 0.5 sigma close to the ticket, 3 sigma still above
  random reinit; pruning at iteration 0 below IMP; one-shot tickets below IMP ones at
  high sparsity; strategy 2 no better than resetting.

Protocol: P2's recipe (Adam 1.2e-3, batch 60, layer-wise 20% per level, output 10%, reset
to init) with every run cut to 5,000 steps (P2: 50K; LeNet's early-stopping step is
3-7K), evaluated every 250; 10 levels (10.7% remaining), controls at levels 3, 7 and 10;
one-shot pruning to the same densities (so that one-shot and IMP tickets are compared at
equal sparsity); 2 replicates.

P2 Fig. 4c's one-shot sweep is the `fig4c` variant: one-shot pruning of the dense network
in linear steps of 12.5% of the hidden layers' weights and 6.25% of the output layer's,
i.e. 87.5, 75.0, 62.6, 50.1, 37.6, 25.1 and 12.7% of the weights remaining (7 levels),
each ticket against 3 random reinits per trial, with this file's 5,000-step runs and 2
trials (`--config.train.duration=50000st --config.num_replicates=5` for P2's).
It is a variant of its own because one config has one set of pruning rates, and IMP's
20% per level cannot take 12.5% linear steps.

Deviations from P2: every run is cut to 5,000 iterations (P2: 50K) with 2 trials (P2: 5)
and one reinit per trial in the default protocol (P2: 3), to fit a CPU; the default
protocol's one-shot levels are IMP's densities rather than Fig. 4c's (see `fig4c`).

Arguments after the colon: (none) the protocol above; fig4c: P2 Fig. 4c's one-shot
sweep; smoke: the embedded subset, 2 levels of 200 steps, every control, for tests.
"""

from jaxtickets.config_schema import add_source, base_config
from jaxtickets.experiment.presets import embedded_mnist_smoke, lenet_mnist

CONTROLS = ("ticket", "random_reinit", "reinit_dm", "noise_0.5", "noise_1", "noise_2",
            "noise_3", "prune_at_init", "random_ticket_local", "random_adjusted", "small_dense")


def get_config(arg: str | None = None):
    config = base_config()
    lenet_mnist(config)
    config.num_replicates = 2
    config.train.duration = "5000st"
    config.train.eval_every = "250st"
    config.train.checkpoint_every = "5000st"
    config.pruning.method = "layerwise"
    config.pruning.levels = 10
    config.pruning.evaluate_levels = (0, 3, 7, 10)
    config.branches = ("ticket",)
    add_source(config, "imp", branches=CONTROLS)
    add_source(config, "one_shot", schedule="one_shot", branches=("ticket", "random_reinit"),
               evaluate_levels=(3, 7, 10))
    add_source(config, "strategy2", strategy="continue", evaluate_levels=(3, 7, 10))
    if arg in (None, ""):
        return config
    if arg == "fig4c":
        return _fig4c(config)
    if arg == "smoke":
        embedded_mnist_smoke(config)
        config.pruning.evaluate_levels = (0, 2)
        for name in ("one_shot", "strategy2"):
            config.generation[name].evaluate_levels = (2,)
        return config
    raise ValueError(f"configs/mnist_p2_controls.py: unknown argument {arg!r}; use fig4c "
                     "or smoke")


def _fig4c(config):
    """P2 Fig. 4c: one-shot pruning at linear 12.5% steps (output 6.25%), 7 levels."""
    for name in list(config.generation.keys()):
        del config.generation[name]
    config.pruning.schedule = "one_shot"
    config.pruning.one_shot_spacing = "linear"
    config.pruning.rates.dense = 0.125
    config.pruning.rates.output = 0.0625
    config.pruning.levels = 7
    config.pruning.evaluate_levels = ("all",)
    config.pruning.control_draws = 3
    config.branches = ("ticket", "random_reinit")
    return config
