"""Models chosen by name; every model follows the naming rules of `layers.py`."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxtickets.errors import ConfigError

from jaxtickets.models.convnets import ConvNet
from jaxtickets.models.lenet import LeNet

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "lenet300_100": lambda num_classes, dropout: LeNet(num_classes, (300, 100), dropout),
    "conv2": lambda num_classes, dropout: ConvNet((64,), num_classes, dropout=dropout),
    "conv4": lambda num_classes, dropout: ConvNet((64, 128), num_classes, dropout=dropout),
    "conv6": lambda num_classes, dropout: ConvNet((64, 128, 256), num_classes, dropout=dropout),
}


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def abstract_variables(model: nn.Module, image_shape: tuple[int, ...]) -> dict:
    """The model's variables as shapes and dtypes only (jax.eval_shape: no compute)."""
    sample = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    key = jax.random.PRNGKey(0)
    return jax.eval_shape(lambda: model.init({"params": key, "dropout": key}, sample,
                                             train=False))


def create_model(name: str, num_classes: int, dropout: float = 0.0) -> nn.Module:
    if name not in _REGISTRY:
        raise ConfigError(f"model.name: unknown model {name!r}; choose one of {model_names()}")
    return _REGISTRY[name](num_classes, dropout)
