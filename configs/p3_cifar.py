r"""P3's sanity checks across network sizes on CIFAR-10 and CIFAR-100 (P3 Table E.1,
App. B's "Jackpot" study): IMP and OMP masks, LT (from theta_0) or WR (rewound to
epoch 8 of 160), against random reinit (RR) and the small-dense network (SDT), for
ResNet-20, ResNet-32, MobileNet-v1, ResNet-18 and VGG-16.

Commands (prepare CIFAR-10 / CIFAR-100 in TFDS once; one workdir per model, dataset,
learning rate and variant):
  python -m jaxtickets.main --config=configs/p3_cifar.py:mobilenet_v1,cifar10,0.1,wr \
      --workdir=runs/p3_mbv1_wr --config.data.data_dir=DATA_DIR
  python -m jaxtickets.main --config=configs/p3_cifar.py:resnet18,cifar100,0.1,wr ...
  python -m jaxtickets.analysis.p3_conditions --workdirs runs/p3_mbv1_lt runs/p3_mbv1_wr
Hardware: one GPU per workdir (2 trajectories x 15 runs + controls of 160 epochs at
  batch 64). Not measured here: no accelerator was lent.
Expected (P3 App. B, qualitative): Jackpot tickets depend on network size: the
  under-parameterized ResNet-20 (CIFAR-10/100) and the heavily over-parameterized
  VGG-16 (CIFAR-10/100, theta_0 ~ theta'_0) fail the conditions; MobileNet-v1 on
  CIFAR-10 and ResNet-18 on CIFAR-100 are at the boundary. Rewinding (wr) improves on
  theta_0 tickets.

Protocol (P3 Table E.1, CIFAR column): 160 epochs, batch 64, SGD momentum 0.9, weight
decay 5e-4, x0.1 at epochs 80 and 120, no warmup except VGG-16 (75 epochs); global
magnitude pruning of the convolutions (1x1 shortcuts and the output unpruned; for
MobileNet-v1 the depthwise and pointwise convolutions alike), 20% per level, 14 levels
(95.6% sparsity); OMP prunes the dense network at once to each IMP level's density.
Pad-4 crops and flips. Controls at levels 2, 4, 7, 10, 14; RR and SDT train from scratch
for the full 160 epochs (P3 App. B), WR tickets 160 - 8. Every training image is trained
on (no validation split): a run reports its last evaluation, at the end of training.
MobileNet-v1 keeps a stride-1 stem on 32-pixel images (the CIFAR variant: a 2x2 final
map; the ImageNet stem would leave 1x1). configs/p3_resnet20.py is the ResNet-20 /
CIFAR-10 case with its learning-rate study (P3 App. A).

Deviations from P3: P3 gives no base learning rate for these networks (0.1 by default);
2 seeds; 1x1 shortcuts unpruned (the appendix does not say).

Arguments after the colon: MODEL,DATASET[,LR][,wr][,smoke]; MODEL one of resnet20,
resnet32, mobilenet_v1, resnet18, vgg16; DATASET cifar10 or cifar100; LR default 0.1
(P3 gives no base LR for these); wr: rewind to epoch 8; smoke: minutes on the CPU.
"""

from jaxtickets.config_schema import base_config
from jaxtickets.experiment.presets import p3_cifar

MODELS = ("resnet20", "resnet32", "mobilenet_v1", "resnet18", "vgg16")
DATASETS = ("cifar10", "cifar100")


def get_config(arg: str | None = None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    smoke, rewinding = "smoke" in parts, "wr" in parts
    rest = [p for p in parts if p not in ("smoke", "wr")]
    try:
        model, dataset, *lr = rest
        learning_rate = float(lr[0]) if lr else 0.1
        if model not in MODELS or dataset not in DATASETS or len(lr) > 1:
            raise ValueError
    except ValueError as err:
        raise ValueError(f"configs/p3_cifar.py: expected MODEL,DATASET[,LR][,wr][,smoke] with "
                         f"MODEL in {MODELS}, DATASET in {DATASETS}; got {arg!r}") from err
    config = base_config()
    p3_cifar(config, model, dataset, learning_rate, rewinding, smoke)
    return config
