r"""P3's sanity checks on ResNet-20 / CIFAR-10 at paper scale: OMP and IMP masks, each
trained from the original init (LT) or rewound to epoch 8 (WR, trained T - t), against
random reinit (RR) and the small-dense network (SDT), at one learning rate per run.

Commands (one workdir per learning rate and variant; P3 App. A runs 0.005, 0.01, 0.1):
  python -m jaxtickets.main --config=configs/p3_resnet20.py:0.1 --workdir=runs/p3_lt_0.1 \
      --config.data.data_dir=DATA_DIR
  python -m jaxtickets.main --config=configs/p3_resnet20.py:0.1,wr --workdir=runs/p3_wr_0.1 ...
  python -m jaxtickets.analysis.p3_conditions --workdirs runs/p3_wr_0.005 runs/p3_wr_0.01 \
      runs/p3_wr_0.1
Hardware: one GPU; per workdir 2 trajectories x 15 runs + controls of 160 epochs
  (~50 GPU-hours on one V100-class GPU, not measured here). `:0.1,smoke` runs in
  minutes on the CPU.
Expected (P3 Fig. A.1): at lr 0.005/0.01 dense ~90%, LT-IMP/OMP keep it and beat
  RR clearly; at lr 0.1 dense > 92% and no clear LT-RR gap; WR improves on LT.

Protocol (P3 Table E.1): 160 epochs, batch 64, SGD momentum 0.9, weight decay 5e-4,
step decay x0.1 at epochs 80 and 120, no warmup; global magnitude pruning over the
convolutions (P2's rule: 1x1 shortcuts and the output layer unpruned), 20% per level,
14 levels (95.6% sparsity); OMP prunes the dense network at once to each IMP level's
density. Augmentation: pad-4 crop and flip. Controls at levels 2, 4, 7, 10, 14. RR and
SDT train from scratch for the full 160 epochs (P3 App. B: theta'_0 * m and the small
dense network trained T), WR tickets 160 - 8. Every training image is trained on (no
validation split): a run reports its last evaluation, as P3 reports test accuracy
after T epochs.

Deviations from P3: 2 seeds (P3's count is not in its appendix); the 1x1 shortcuts stay
unpruned (P2's rule for this network; the appendix does not say).

Arguments after the colon: the learning rate (default 0.1), optionally ',wr' (rewind to
epoch 8 of 160, P3's ~5%) and ',smoke'. The other networks of P3's CIFAR study are in
configs/p3_cifar.py.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import p3_cifar


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    smoke, rewinding = "smoke" in parts, "wr" in parts
    rest = [p for p in parts if p not in ("smoke", "wr")]
    try:
        lr = float(rest[0]) if rest else 0.1
    except ValueError as err:
        raise ValueError(f"configs/p3_resnet20.py: unknown argument {arg!r}; use a "
                         "learning rate optionally followed by ',wr' and ',smoke'") from err
    config = base_config()
    p3_cifar(config, "resnet20", "cifar10", lr, rewinding, smoke)
    return config
