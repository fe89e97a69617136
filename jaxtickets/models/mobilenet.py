"""MobileNet-v1 (Howard et al. 2017), width 1.0, as P3 uses on CIFAR.

Stem 3x3 conv to 32, then 13 depthwise-separable blocks (3x3 depthwise conv + BN +
ReLU, 1x1 pointwise conv + BN + ReLU), global average pool, `output` 1024 -> classes.
The paper's table gives stride 2 to the last depthwise conv too; implementations (and
the 7x7 final map at 224) use stride 1 there, as here.

Stem stride: the paper's stride 2 (registry `mobilenet_v1_imagenet`) divides the input
by 32 in all: a 7x7 final map at 224 pixels, but 1x1 at CIFAR's 32, where the last
blocks then see single pixels. CIFAR variants keep the stem at stride 1 (registry
`mobilenet_v1`, as `resnet18` is the CIFAR ResNet-18): a 2x2 final map at 32 pixels.
P3 does not say which it used on CIFAR. The field's default is the paper's 2.

Depthwise convs are nn.Conv with feature_group_count = channels: their kernels are 4-D
(3, 3, 1, C), so the pruner counts them as kind 'conv'. Convs have no bias (BN follows);
BN momentum 0.9 / epsilon 1e-5 (PyTorch defaults). 4,231,976 parameters with 1000
classes (convs, BN scale/bias, output kernel and bias; the stem stride changes no
count). Conv init He normal fan_out as torchvision's MobileNets; `output` uses the
toolkit's Glorot normal. `dropout` (off by default) is applied before `output` if set.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxtickets.models.layers import OUTPUT_LAYER, dense

he_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# (pointwise output width, depthwise stride) per depthwise-separable block.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _bn_relu(x: jnp.ndarray, train: bool, name: str) -> jnp.ndarray:
    return nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                name=name)(x))


class MobileNetV1(nn.Module):
    num_classes: int = 1000
    stem_stride: int = 2
    dropout: float = 0.0
    # Widths as fields so P3's small-dense network can shrink them (sparsity/small_dense).
    stem_width: int = 32
    widths: tuple[int, ...] = tuple(width for width, _ in BLOCKS)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        pad = ((1, 1), (1, 1))
        s = self.stem_stride
        x = nn.Conv(self.stem_width, (3, 3), strides=(s, s), padding=pad, use_bias=False,
                    kernel_init=he_normal_fan_out, name="stem_conv")(x)
        x = _bn_relu(x, train, "stem_bn")
        for i, (width, (_, stride)) in enumerate(zip(self.widths, BLOCKS, strict=True)):
            channels = x.shape[-1]
            x = nn.Conv(channels, (3, 3), strides=(stride, stride), padding=pad,
                        feature_group_count=channels, use_bias=False,
                        kernel_init=he_normal_fan_out, name=f"depthwise_{i}")(x)
            x = _bn_relu(x, train, f"depthwise_bn_{i}")
            x = nn.Conv(width, (1, 1), use_bias=False, kernel_init=he_normal_fan_out,
                        name=f"pointwise_{i}")(x)
            x = _bn_relu(x, train, f"pointwise_bn_{i}")
        x = jnp.mean(x, axis=(1, 2))
        if self.dropout:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes, OUTPUT_LAYER)(x)
