"""Forward-order conv layers (P0 layerwise tickets) and restricting a mask to them."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxtickets.models import abstract_variables, create_model
from jaxtickets.sparsity.layer_order import (conv_layers_in_order, first_conv_layers,
                                             restrict_mask)
from jaxtickets.sparsity.masks import PrunablePolicy, init_mask, prunable_leaves

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

IMAGENET, CIFAR = (224, 224, 3), (32, 32, 3)


@pytest.fixture(scope="module")
def resnet50_order():
    return conv_layers_in_order(create_model("resnet50", 1000), IMAGENET)


def test_resnet50_stage_boundaries(resnet50_order):
    order = resnet50_order
    assert len(order) == len(set(order)) == 53
    assert order[0] == "stem_conv/kernel"
    # P0's 11 / 24 / 43 end exactly at the last conv of stages 1, 2, 3.
    assert order[10] == "stage1_block2/conv3/kernel"
    assert order[23] == "stage2_block3/conv3/kernel"
    assert order[42] == "stage3_block5/conv3/kernel"
    assert order[52] == "stage4_block2/conv3/kernel"
    assert [order[i].split("/")[0] for i in (11, 24, 43)] == [
        "stage2_block0", "stage3_block0", "stage4_block0"]
    # The projection shortcut runs after the block's three convs.
    assert order[1:5] == [f"stage1_block0/{c}/kernel"
                          for c in ("conv1", "conv2", "conv3", "shortcut_conv")]
    assert sum("shortcut" in name for name in order) == 4


def test_resnet20_starts_with_stem():
    order = conv_layers_in_order(create_model("resnet20", 10), CIFAR)
    assert order[:3] == ["stem_conv/kernel", "stage1_block0/conv1/kernel",
                         "stage1_block0/conv2/kernel"]
    assert len(order) == 21  # stem + 18 block convs + 2 shortcuts


def test_alexnet_five_convs_stem_first():
    model = create_model("alexnet", 1000)
    order = conv_layers_in_order(model, IMAGENET)
    assert order == [f"conv_{i}/kernel" for i in range(5)]
    params = abstract_variables(model, IMAGENET)["params"]
    sizes = [params[name.split("/")[0]]["kernel"].shape[0] for name in order]
    assert sizes[0] == max(sizes) == 11


def test_conv4_order_and_first_n():
    model = create_model("conv4", 10)
    assert conv_layers_in_order(model, CIFAR) == [f"conv_{i}/kernel" for i in range(4)]
    assert first_conv_layers(model, CIFAR, 1) == {"conv_0/kernel"}
    assert first_conv_layers(model, CIFAR, 3) == {f"conv_{i}/kernel" for i in range(3)}
    for bad in (0, 5, -1, 2.0, True):
        with pytest.raises(ValueError, match=r"1\.\.4"):
            first_conv_layers(model, CIFAR, bad)


def test_restrict_mask_keeps_only_allowed():
    model = create_model("conv4", 10)
    params = abstract_variables(model, CIFAR)["params"]
    mask = init_mask(params, PrunablePolicy())
    allowed = first_conv_layers(model, CIFAR, 2)
    restricted = restrict_mask(mask, allowed)
    assert {name for name, _ in prunable_leaves(restricted)} == allowed
    assert jax.tree_util.tree_structure(restricted, is_leaf=lambda x: x is None) == \
        jax.tree_util.tree_structure(mask, is_leaf=lambda x: x is None)
    for name, m in prunable_leaves(restricted):
        assert m is dict(prunable_leaves(mask))[name] and np.all(m)
    with pytest.raises(ValueError, match="not in the mask"):
        restrict_mask(mask, {"conv_9/kernel"})
    only_convs = init_mask(params, PrunablePolicy(conv=False))
    with pytest.raises(ValueError, match="none of the allowed"):
        restrict_mask(only_convs, allowed)


def test_restrict_mask_resnet_shortcut_counts_but_follows_policy(resnet50_order):
    params = abstract_variables(create_model("resnet50", 1000), IMAGENET)["params"]
    allowed = set(resnet50_order[:11])
    restricted = restrict_mask(init_mask(params, PrunablePolicy()), allowed)
    names = {name for name, _ in prunable_leaves(restricted)}
    assert names == allowed - {"stage1_block0/shortcut_conv/kernel"} and len(names) == 10
    with_shortcuts = restrict_mask(init_mask(params, PrunablePolicy(shortcut=True)), allowed)
    assert {name for name, _ in prunable_leaves(with_shortcuts)} == allowed
