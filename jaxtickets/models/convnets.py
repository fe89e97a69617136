"""Conv-2/4/6 (P2 App. H.1, P4): VGG-like 3x3 'same' convs, 2x2 max-pool, FC 256-256-10.

Parameter counts: Conv-2 4,300,992; Conv-4 2,425,024; Conv-6 2,261,184.
Dropout (P2 Sec. 3), when enabled, follows each hidden FC layer's ReLU (docs/choices.md#dropout).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtickets.models.layers import OUTPUT_LAYER, conv3x3, dense
from jaxtickets.models.pooling import max_pool_2x2


class ConvNet(nn.Module):
    """`widths` holds one channel count per two-conv module (64, 128, 256 in P2)."""

    widths: Sequence[int]
    num_classes: int = 10
    fc: Sequence[int] = (256, 256)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        layer = 0
        for width in self.widths:
            for _ in range(2):
                x = nn.relu(conv3x3(width, f"conv_{layer}")(x))
                layer += 1
            x = max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.fc):
            x = nn.relu(dense(width, f"dense_{i}")(x))
            if self.dropout:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes, OUTPUT_LAYER)(x)
