"""LeNet-300-100 (P2, P4): 784-300-100-10 fully connected with ReLU, 266,200 weights."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtickets.models.layers import OUTPUT_LAYER, dense


class LeNet(nn.Module):
    """Fully connected net; `hidden` widths default to P2's (300, 100)."""

    num_classes: int = 10
    hidden: Sequence[int] = (300, 100)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden):
            x = nn.relu(dense(width, f"hidden_{i}")(x))
            if self.dropout:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes, OUTPUT_LAYER)(x)
