"""AlexNet in torchvision's layout (P0's ImageNet AlexNet; the exact variant is unstated).

Features: 64@11x11/4 pad 2, max-pool 3/2, 192@5x5 pad 2, max-pool 3/2, 384@3x3,
256@3x3, 256@3x3 (pad 1), max-pool 3/2, all convs with bias and ReLU, no normalization;
adaptive average pool to 6x6; classifier dropout, 4096, ReLU, dropout, 4096, ReLU,
`output`. 61,100,840 parameters with 1000 classes at 224x224 (torchvision's count).

`dropout` is the configured model.dropout (default 0.0, as for the other models), so a
config that wants torchvision's classifier must set model.dropout = 0.5.
Init: the toolkit's Glorot normal kernels and zero biases (torchvision keeps PyTorch's
default uniform init; P0 does not state one). Inputs need at least 63x63 pixels.
The flatten is NHWC order, so torchvision weights would need a permutation to load.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtickets.errors import ConfigError
from jaxtickets.models.layers import OUTPUT_LAYER, dense, glorot_normal, zeros


def adaptive_avg_pool(x: jnp.ndarray, out_hw: Sequence[int]) -> jnp.ndarray:
    """PyTorch's AdaptiveAvgPool2d on NHWC: bin i covers [floor(i*H/o), ceil((i+1)*H/o)).
    Identity when the map already has the target size (224x224 inputs)."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = out_hw
    if (h, w) == (oh, ow):
        return x
    rows = []
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        cols = [jnp.mean(x[:, h0:h1, (j * w) // ow: -(-((j + 1) * w) // ow), :], axis=(1, 2))
                for j in range(ow)]
        rows.append(jnp.stack(cols, axis=1))
    return jnp.stack(rows, axis=1)


def _conv(features: int, size: int, stride: int, pad: int, name: str) -> nn.Conv:
    return nn.Conv(features, (size, size), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), kernel_init=glorot_normal,
                   bias_init=zeros, name=name)


def _pool(x: jnp.ndarray) -> jnp.ndarray:
    if min(x.shape[1], x.shape[2]) < 3:
        raise ConfigError(f"model.name: alexnet needs inputs of at least 63x63 pixels; a "
                          f"feature map shrank to {x.shape[1]}x{x.shape[2]} before a 3x3 pool")
    return nn.max_pool(x, (3, 3), strides=(2, 2))


class AlexNet(nn.Module):
    num_classes: int = 1000
    dropout: float = 0.0
    hidden: Sequence[int] = (4096, 4096)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = _pool(nn.relu(_conv(64, 11, 4, 2, "conv_0")(x)))
        x = _pool(nn.relu(_conv(192, 5, 1, 2, "conv_1")(x)))
        x = nn.relu(_conv(384, 3, 1, 1, "conv_2")(x))
        x = nn.relu(_conv(256, 3, 1, 1, "conv_3")(x))
        x = _pool(nn.relu(_conv(256, 3, 1, 1, "conv_4")(x)))
        x = adaptive_avg_pool(x, (6, 6))
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden):
            if self.dropout:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
            x = nn.relu(dense(width, f"dense_{i}")(x))
        return dense(self.num_classes, OUTPUT_LAYER)(x)
