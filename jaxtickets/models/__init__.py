"""Models chosen by name; every model follows the naming rules of `layers.py`."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxtickets.import_paths import is_import_path
from jaxtickets.registry import Registry

from jaxtickets.models.alexnet import AlexNet
from jaxtickets.models.convnets import ConvNet
from jaxtickets.models.lenet import LeNet
from jaxtickets.models.mobilenet import MobileNetV1
from jaxtickets.models.resnet import resnet18, resnet50, resnet_cifar
from jaxtickets.models.vgg import vgg

_REGISTRY: Registry[Callable[[int, float], nn.Module]] = Registry("model")
# The built-in models: factory(num_classes, dropout) -> a Flax module.
_BUILT_IN = {
    "lenet300_100": lambda num_classes, dropout: LeNet(num_classes, (300, 100), dropout),
    "conv2": lambda num_classes, dropout: ConvNet((64,), num_classes, dropout=dropout),
    "conv4": lambda num_classes, dropout: ConvNet((64, 128), num_classes, dropout=dropout),
    "conv6": lambda num_classes, dropout: ConvNet((64, 128, 256), num_classes, dropout=dropout),
    # Conv-4's layout at 1/8 of its conv widths and 1/4 of its FC widths: the CPU-scale
    # conv net of configs/cifar10_sources.py (XLA:CPU convolutions are slow here).
    "conv4_narrow": lambda num_classes, dropout: ConvNet((8, 16), num_classes, fc=(64, 64),
                                                         dropout=dropout),
    "vgg11": lambda num_classes, dropout: vgg(11, num_classes, dropout),
    "vgg13": lambda num_classes, dropout: vgg(13, num_classes, dropout),
    "vgg16": lambda num_classes, dropout: vgg(16, num_classes, dropout),
    "vgg19": lambda num_classes, dropout: vgg(19, num_classes, dropout),
    "resnet20": lambda num_classes, dropout: resnet_cifar(20, num_classes, dropout),
    "resnet32": lambda num_classes, dropout: resnet_cifar(32, num_classes, dropout),
    "resnet18": lambda num_classes, dropout: resnet18(num_classes, dropout, stem="cifar"),
    "resnet18_imagenet": lambda num_classes, dropout: resnet18(num_classes, dropout,
                                                               stem="imagenet"),
    "resnet50": lambda num_classes, dropout: resnet50(num_classes, dropout, stem="imagenet"),
    "alexnet": lambda num_classes, dropout: AlexNet(num_classes, dropout),
    # CIFAR stem (stride 1: 2x2 final map at 32 px) and the paper's (stride 2: 7x7 at 224).
    "mobilenet_v1": lambda num_classes, dropout: MobileNetV1(num_classes, stem_stride=1,
                                                             dropout=dropout),
    "mobilenet_v1_imagenet": lambda num_classes, dropout: MobileNetV1(
        num_classes, stem_stride=2, dropout=dropout),
}


def register_model(name: str, factory: Callable[[int, float], nn.Module]) -> None:
    """Adds a model: factory(num_classes, dropout) -> a Flax module whose __call__ takes
    (images, train) and whose output layer is named 'output' (docs/extending.md). A name
    holding ':' would read as an import path, so none may."""
    if is_import_path(name):
        raise ValueError(f"a model name may not hold ':' (it would read as an import "
                         f"path): {name!r}")
    _REGISTRY.add(name, factory)


for _name, _factory in _BUILT_IN.items():
    register_model(_name, _factory)


def unregister_model(name: str) -> None:
    _REGISTRY.remove(name)


def model_names() -> list[str]:
    return sorted(_REGISTRY.names())


def abstract_variables(model: nn.Module, image_shape: tuple[int, ...]) -> dict:
    """The model's variables as shapes and dtypes only (jax.eval_shape: no compute).
    The sample and the key are abstract too: made eagerly, each would compile and run a
    small XLA program, at every start-up."""
    def init(sample):
        key = jax.random.PRNGKey(0)
        return model.init({"params": key, "dropout": key}, sample, train=False)

    return jax.eval_shape(init, jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32))


def create_model(name: str, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """The registered model `name`, or the user's model at import path `name`
    ('package.module:attr': models/imported.py, docs/extending.md)."""
    if is_import_path(name):
        from jaxtickets.models import imported

        return imported.build(name, num_classes, dropout)
    return _REGISTRY.get(name, "model.name")(num_classes, dropout)
