"""The larger architectures: parameter counts against the papers/torchvision (shapes only,
via abstract initialization) and a tiny forward pass of the small-input models."""

from __future__ import annotations

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtickets.errors import ConfigError
from jaxtickets.models import abstract_variables, create_model, model_names
from jaxtickets.models.alexnet import adaptive_avg_pool
from jaxtickets.sparsity.masks import (PrunablePolicy, apply_mask, init_mask, kernel_kind,
                                       path_name)

CIFAR = (32, 32, 3)
IMAGENET = (224, 224, 3)
NEW_MODELS = ("vgg11", "vgg13", "vgg16", "vgg19", "resnet20", "resnet32", "resnet18",
              "resnet18_imagenet", "resnet50", "alexnet", "mobilenet_v1")


def _params(name: str, classes: int, shape: tuple[int, ...]) -> dict:
    return abstract_variables(create_model(name, classes), shape)["params"]


def kernel_counts(name: str, classes: int, shape: tuple[int, ...]) -> dict[str, int]:
    """Kernel weights per kind (conv, dense, output, shortcut) and layers per kind."""
    counts: dict[str, int] = collections.Counter()
    for path, leaf in jax.tree_util.tree_flatten_with_path(_params(name, classes, shape))[0]:
        kind = kernel_kind(path, leaf)
        if kind:
            counts[kind] += math.prod(leaf.shape)
            counts[kind + "_layers"] += 1
    return dict(counts)


def total_params(name: str, classes: int, shape: tuple[int, ...]) -> int:
    """Every trainable parameter (kernels, biases, BN scale/bias), not batch_stats."""
    return sum(math.prod(leaf.shape)
               for leaf in jax.tree_util.tree_leaves(_params(name, classes, shape)))


def test_registered():
    assert set(NEW_MODELS) <= set(model_names())


def test_vgg19_conv_weights():
    counts = kernel_counts("vgg19", 10, CIFAR)
    assert counts["conv"] == 20_018_880  # P2 App. I.2 (digest)
    assert counts["output"] == 5_120 and counts["conv_layers"] == 16
    assert "dense" not in counts and "shortcut" not in counts  # one linear layer only


@pytest.mark.parametrize("name, convs", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13)])
def test_vgg_depths(name, convs):
    counts = kernel_counts(name, 10, CIFAR)
    assert counts["conv_layers"] == convs and counts["output"] == 5_120


def test_resnet20_counts():
    counts = kernel_counts("resnet20", 10, CIFAR)
    assert counts["conv"] == 267_696  # P2 App. I.3: stem + 18 block convs
    assert counts["shortcut"] == 2_560  # 1x1 downsampling 16->32 and 32->64
    assert counts["output"] == 640
    assert counts["conv_layers"] == 19 and counts["shortcut_layers"] == 2


def test_resnet32_and_resnet18_layout():
    counts = kernel_counts("resnet32", 10, CIFAR)
    assert counts["conv_layers"] == 31 and counts["shortcut"] == 2_560
    counts = kernel_counts("resnet18", 10, CIFAR)
    assert counts["conv_layers"] == 17 and counts["shortcut_layers"] == 3
    assert counts["conv"] - 3 * 3 * 3 * 64 == 10_985_472  # block convs; stem 3x3
    assert total_params("resnet18_imagenet", 1000, IMAGENET) == 11_689_512  # torchvision


def test_resnet50_total():
    assert total_params("resnet50", 1000, IMAGENET) == 25_557_032  # torchvision
    counts = kernel_counts("resnet50", 1000, IMAGENET)
    # P0 App. C counts 53 conv layers including the 4 downsampling convs.
    assert counts["conv_layers"] == 49 and counts["shortcut_layers"] == 4


def test_alexnet_total():
    assert total_params("alexnet", 1000, IMAGENET) == 61_100_840  # torchvision
    counts = kernel_counts("alexnet", 1000, IMAGENET)
    assert counts["conv_layers"] == 5 and counts["dense_layers"] == 2


def test_alexnet_rejects_small_inputs():
    with pytest.raises(ConfigError, match="63x63"):
        abstract_variables(create_model("alexnet", 10), CIFAR)
    abstract_variables(create_model("alexnet", 10), (63, 63, 3))


def test_adaptive_avg_pool_matches_pytorch_bins():
    x = jnp.arange(2 * 5 * 7 * 3, dtype=jnp.float32).reshape(2, 5, 7, 3)
    out = np.asarray(adaptive_avg_pool(x, (3, 2)))
    rows, cols = [(0, 2), (1, 4), (3, 5)], [(0, 4), (3, 7)]  # floor/ceil bin edges
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            np.testing.assert_allclose(out[:, i, j], np.asarray(x)[:, r0:r1, c0:c1].mean((1, 2)))
    assert adaptive_avg_pool(x, (5, 7)) is x


def test_mobilenet_v1_total():
    assert total_params("mobilenet_v1", 1000, IMAGENET) == 4_231_976
    counts = kernel_counts("mobilenet_v1", 1000, IMAGENET)
    assert counts["conv_layers"] == 27 and counts["output"] == 1_024_000  # depthwise = conv


@pytest.mark.parametrize("name", ["vgg11", "resnet20"])
def test_forward_and_mask(name):
    model = create_model(name, 10)
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (2,) + CIFAR, jnp.float32)
    variables = model.init({"params": key, "dropout": key}, x, train=False)
    assert "batch_stats" in variables

    @jax.jit
    def forward(params):
        return model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                           train=True, rngs={"dropout": key}, mutable=["batch_stats"])

    logits, updates = forward(variables["params"])
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))
    assert jax.tree_util.tree_structure(updates["batch_stats"]) == \
        jax.tree_util.tree_structure(variables["batch_stats"])

    mask = init_mask(variables["params"], PrunablePolicy())
    target = "conv_1/kernel" if name == "vgg11" else "stage2_block0/conv1/kernel"
    mask = jax.tree_util.tree_map_with_path(
        lambda p, m: np.zeros_like(m) if m is not None and path_name(p) == target else m,
        mask, is_leaf=lambda m: m is None)
    masked = apply_mask(variables["params"], mask)
    leaves = {path_name(p): leaf
              for p, leaf in jax.tree_util.tree_flatten_with_path(masked)[0]}
    assert leaves[target].ndim == 4 and not bool(jnp.any(leaves[target]))
    masked_logits, _ = forward(masked)
    assert masked_logits.shape == (2, 10)
    assert not np.allclose(np.asarray(masked_logits), np.asarray(logits))
