"""Shared layer conventions: the papers' Gaussian Glorot init and names the pruner reads.

The sparsity code finds layers by parameter path, so every model follows one naming
rule: the final classifier is called `output`, 1x1 projection shortcuts contain
`shortcut` in their name. Kernels are pruned; biases and normalization never.
"""

from __future__ import annotations

import flax.linen as nn

from jaxtickets.sparsity.naming import OUTPUT_LAYER, SHORTCUT_MARK  # noqa: F401

# P2/P1/P4: Gaussian Glorot (PyTorch's xavier_normal_), i.e. untruncated normal.
glorot_normal = nn.initializers.variance_scaling(1.0, "fan_avg", "normal")
zeros = nn.initializers.zeros


def dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=glorot_normal, bias_init=zeros, name=name)


def conv3x3(features: int, name: str) -> nn.Conv:
    return nn.Conv(features, (3, 3), padding="SAME", kernel_init=glorot_normal,
                   bias_init=zeros, name=name)
