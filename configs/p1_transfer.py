r"""P1's ticket transfer on VGG-19 / CIFAR-10 at paper scale: same-distribution transfer
(CIFAR-10a ticket evaluated on CIFAR-10b, Sec. 4.1) and cross-optimizer transfer
(SGD-momentum ticket evaluated with Adam and the reverse, Sec. 4.3; the dataset: docs/choices.md#optimizer-transfer).

Commands (prepare CIFAR-10 in TFDS once, see docs/data.md):
  python -m jaxtickets.main --config=configs/p1_transfer.py:halves --workdir=runs/p1_halves
  python -m jaxtickets.main --config=configs/p1_transfer.py:sgd_to_adam --workdir=runs/p1_sgd_to_adam
  python -m jaxtickets.main --config=configs/p1_transfer.py:adam_to_sgd --workdir=runs/p1_adam_to_sgd
Hardware: one GPU per run. Time (estimate, no accelerator measured here): 30 levels x
  160 epochs of 25,000-45,000 images plus the evaluations, per seed; ~1-2 GPU-days.
Expected (P1 Figs. 2, 5, qualitative, no numbers in the text): the 10a ticket on 10b
  matches the 10b ticket and beats the random ticket at high sparsity; tickets transfer
  across optimizers, with the transferred ticket close to the target optimizer's own.

Recipe (P1 App. A): batch 512, 160 epochs, LR x0.1 at epochs 80 and 120; SGD 0.1,
momentum 0.9, weight decay 1e-4; Adam 3e-4, weight decay 1e-4; global pruning 20% per
level for 30 levels, output layer unpruned; late resetting to 1 epoch; evaluation at
'morcos' levels; 6 seeds; random ticket = globally permuted mask with fresh weights.
Every training image is trained on (no validation split; each CIFAR-10 half is 25,000
images); a run reports its last evaluation, at the end of training.

Deviations from P1: none known. P1 does not name the cross-optimizer dataset; CIFAR-10
is the one its other VGG-19 experiments use.

Arguments after the colon: halves | sgd_to_adam | adam_to_sgd, each optionally ,smoke.
"""

from jaxtickets.config_schema import add_source, base_config
from jaxtickets.experiment.presets import p1_vgg19, shrink_to_smoke

SGD = {"optimizer": "momentum", "learning_rate": 0.1}
ADAM = {"optimizer": "adam", "learning_rate": 3e-4}
VARIANTS = ("halves", "sgd_to_adam", "adam_to_sgd")


def _recipe(config, optimizer: dict) -> None:
    config.train.optimizer = optimizer["optimizer"]
    config.train.learning_rate = optimizer["learning_rate"]


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke = "smoke" in parts
    parts = [p for p in parts if p != "smoke"]
    if len(parts) != 1 or parts[0] not in VARIANTS:
        raise ValueError(f"configs/p1_transfer.py: choose one of {VARIANTS} (optionally "
                         f",smoke); got {arg!r}")
    variant = parts[0]
    config = base_config()
    p1_vgg19(config, "cifar10")
    if variant == "halves":
        _recipe(config, SGD)
        config.data.half = "b"  # evaluate on CIFAR-10b
        add_source(config, "cifar10b", half="b", branches=("ticket", "random_ticket"))
        add_source(config, "cifar10a", half="a")
    else:
        source, target = (SGD, ADAM) if variant == "sgd_to_adam" else (ADAM, SGD)
        _recipe(config, target)
        add_source(config, "target", branches=("ticket", "random_ticket"))
        add_source(config, "transfer", **source)
    if smoke:
        shrink_to_smoke(config)
        config.model.name = "vgg11"
    return config
