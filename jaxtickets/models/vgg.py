"""VGG-11/13/16/19 in P1's modified form (also P2's VGG-19 after Liu et al. 2019).

3x3 convs (padding 1, with bias), BatchNorm after every conv, then ReLU; 2x2 max-pools
as in the standard VGG configurations except the last, which is replaced by a global
average pool; then ONE linear layer `output` (the original FC stack removed).
Init as P1 states: Xavier (Glorot) normal conv kernels, zero biases, BN scale 1 bias 0.
The output layer uses the toolkit's Glorot normal too (P1 does not say).

VGG-19 on CIFAR-10 has 20,018,880 conv weights and a 5,120-weight output (digest).
BatchNorm momentum 0.9 / epsilon 1e-5 are PyTorch's defaults (P1 is PyTorch).
`dropout` (off by default; not in the papers) is applied before `output` if set.
"""

from __future__ import annotations

from typing import Sequence, Union

import flax.linen as nn
import jax.numpy as jnp

from jaxtickets.models.layers import OUTPUT_LAYER, conv3x3, dense
from jaxtickets.models.pooling import max_pool_2x2

POOL = "M"

# Standard VGG configurations with the final max-pool dropped (global average pool instead).
CONFIGS: dict[int, tuple[Union[int, str], ...]] = {
    11: (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    13: (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    16: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
         512, 512, 512),
    19: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL,
         512, 512, 512, 512),
}


class VGG(nn.Module):
    """`cfg` lists conv widths and 'M' for 2x2/stride-2 max-pools (see `CONFIGS`)."""

    cfg: Sequence[Union[int, str]]
    num_classes: int = 10
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        layer = 0
        for item in self.cfg:
            if item == POOL:
                x = max_pool_2x2(x)
                continue
            x = conv3x3(int(item), f"conv_{layer}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             name=f"bn_{layer}")(x)
            x = nn.relu(x)
            layer += 1
        x = jnp.mean(x, axis=(1, 2))
        if self.dropout:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes, OUTPUT_LAYER)(x)


def vgg(depth: int, num_classes: int = 10, dropout: float = 0.0) -> VGG:
    return VGG(CONFIGS[depth], num_classes, dropout)
