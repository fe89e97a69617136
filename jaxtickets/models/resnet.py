"""ResNets: He et al.'s CIFAR ResNet-20/32, ResNet-18 (CIFAR or ImageNet stem), ResNet-50.

Layout choices (torchvision's, as P0/P1/P3 use PyTorch):

* Convs have no bias (each is followed by BatchNorm); BN momentum 0.9 / epsilon 1e-5
  (PyTorch defaults), scale 1, bias 0, statistics in `batch_stats`.
* Projection shortcuts (1x1 conv stride s + BN) wherever the block changes stride or
  width, named `shortcut_conv` / `shortcut_bn` so the pruner sees kind 'shortcut'. For
  ResNet-20 that gives P2's 1x1 downsampling convs 16->32 and 32->64 (512 + 2,048 =
  2,560 weights); He et al.'s CIFAR option A (zero-padding shortcuts) is not used.
* Bottleneck blocks put the stride on the 3x3 conv (torchvision "v1.5").
* The ImageNet stem is 7x7/2 conv (padding 3) + 3x3/2 max-pool (padding 1); the CIFAR
  stem a 3x3/1 conv without max-pool. Strided 3x3 convs pad (1, 1) explicitly, as
  PyTorch does ('SAME' would pad (0, 1) on even inputs).
* Conv init: He (kaiming) normal, fan_out, untruncated, as torchvision. P2 says its
  ResNet-20 used Gaussian Glorot instead: pass `conv_init='glorot'` for that.
  The `output` layer uses the toolkit's Glorot normal (torchvision keeps PyTorch's
  default uniform init there).
* `dropout` (off by default; not in the papers) is applied before `output` if set.

Counts (tests/test_models_scale.py): ResNet-20 conv weights 267,696 + shortcut 2,560 +
output 640 (P2 App. I.3); ResNet-50 25,557,032 parameters with 1000 classes (torchvision).
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtickets.models.layers import OUTPUT_LAYER, dense, glorot_normal

# torchvision's kaiming_normal_(mode='fan_out', nonlinearity='relu'): std sqrt(2 / fan_out).
he_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
CONV_INITS = {"he": he_normal_fan_out, "glorot": glorot_normal}
STEMS = ("cifar", "imagenet")


def _conv(features: int, size: int, stride: int, init, name: str) -> nn.Conv:
    pad = size // 2
    return nn.Conv(features, (size, size), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=init,
                   name=name)


def _bn(train: bool, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        name=name)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection; output width `features`."""

    features: int
    stride: int = 1
    conv_init: str = "he"
    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        init = CONV_INITS[self.conv_init]
        y = nn.relu(_bn(train, "bn1")(_conv(self.features, 3, self.stride, init, "conv1")(x)))
        y = _bn(train, "bn2")(_conv(self.features, 3, 1, init, "conv2")(y))
        return nn.relu(y + _shortcut(x, self.features, self.stride, init, train))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand to 4 x `features`."""

    features: int
    stride: int = 1
    conv_init: str = "he"
    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        init = CONV_INITS[self.conv_init]
        out = self.features * self.expansion
        y = nn.relu(_bn(train, "bn1")(_conv(self.features, 1, 1, init, "conv1")(x)))
        y = nn.relu(_bn(train, "bn2")(_conv(self.features, 3, self.stride, init, "conv2")(y)))
        y = _bn(train, "bn3")(_conv(out, 1, 1, init, "conv3")(y))
        return nn.relu(y + _shortcut(x, out, self.stride, init, train))


def _shortcut(x: jnp.ndarray, out: int, stride: int, init, train: bool) -> jnp.ndarray:
    """Identity, or a 1x1 projection + BN where the shape changes. Called inside a block's
    compact __call__, so the submodules belong to that block."""
    if stride == 1 and x.shape[-1] == out:
        return x
    return _bn(train, "shortcut_bn")(_conv(out, 1, stride, init, "shortcut_conv")(x))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """`stage_sizes` blocks per stage at `widths`; stage i > 0 starts with stride 2."""

    stage_sizes: Sequence[int]
    widths: Sequence[int]
    block: str = "basic"
    num_classes: int = 10
    stem: str = "cifar"
    stem_width: Optional[int] = None  # default: widths[0]
    conv_init: str = "he"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.stem not in STEMS:
            raise ValueError(f"ResNet stem must be one of {STEMS}, got {self.stem!r}")
        init = CONV_INITS[self.conv_init]
        width = self.stem_width or self.widths[0]
        if self.stem == "imagenet":
            x = nn.relu(_bn(train, "stem_bn")(_conv(width, 7, 2, init, "stem_conv")(x)))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            x = nn.relu(_bn(train, "stem_bn")(_conv(width, 3, 1, init, "stem_conv")(x)))
        block = BLOCKS[self.block]
        for stage, (blocks, features) in enumerate(zip(self.stage_sizes, self.widths)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                x = block(features, stride, self.conv_init,
                          name=f"stage{stage + 1}_block{b}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        if self.dropout:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes, OUTPUT_LAYER)(x)


def resnet_cifar(depth: int, num_classes: int = 10, dropout: float = 0.0) -> ResNet:
    """He et al.'s CIFAR ResNet-(6n+2): 3 stages of n BasicBlocks at 16/32/64."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    return ResNet((n, n, n), (16, 32, 64), "basic", num_classes, "cifar", dropout=dropout)


def resnet18(num_classes: int = 10, dropout: float = 0.0, stem: str = "cifar") -> ResNet:
    return ResNet((2, 2, 2, 2), (64, 128, 256, 512), "basic", num_classes, stem,
                  dropout=dropout)


def resnet50(num_classes: int = 1000, dropout: float = 0.0, stem: str = "imagenet") -> ResNet:
    return ResNet((3, 4, 6, 3), (64, 128, 256, 512), "bottleneck", num_classes, stem,
                  dropout=dropout)
