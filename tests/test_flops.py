"""forward_flops against hand counts (LeNet-300-100, Conv-4) and exact masked scaling."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxtickets.analysis.flops import forward_flops, train_step_flops, training_flops
from jaxtickets.models import create_model
from jaxtickets.sparsity.masks import PrunablePolicy, init_mask

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def _abstract_params(model, input_shape):
    """Params as ShapeDtypeStructs: nothing is computed, forward_flops needs only shapes."""
    x = np.zeros((1, *input_shape), np.float32)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))["params"]


def _half_pruned(mask, layer):
    """A copy of `mask` with exactly half of `layer`'s kernel entries pruned."""
    def edit(path, m):
        if m is None:
            return None
        m = np.array(m)
        if path[0].key == layer:
            flat = m.reshape(-1)
            assert flat.size % 2 == 0
            flat[: flat.size // 2] = False
        return m
    return jax.tree_util.tree_map_with_path(edit, mask, is_leaf=lambda x: x is None)


@pytest.fixture(scope="module")
def lenet():
    model = create_model("lenet300_100", 10)
    params = _abstract_params(model, (28, 28, 1))
    return model, params, init_mask(params, PrunablePolicy())


@pytest.fixture(scope="module")
def conv4():
    model = create_model("conv4", 10)
    params = _abstract_params(model, (32, 32, 3))
    return model, params, init_mask(params, PrunablePolicy())


def test_lenet_dense_equals_hand_count(lenet):
    model, params, mask = lenet
    hand = 2 * (784 * 300 + 300 * 100 + 100 * 10)
    for m in (mask, None):
        result = forward_flops(model, params, m, (28, 28, 1))
        assert result["dense"] == hand
        assert result["masked"] == hand
        assert result["uncounted_kernels"] == []
    assert set(result["layers"]) == {"hidden_0/kernel", "hidden_1/kernel", "output/kernel"}


def test_conv4_dense_equals_hand_count(conv4):
    model, params, mask = conv4
    macs = {
        # 32x32 'same' 3x3 convs, then 2x2 pool
        "conv_0/kernel": 32 * 32 * (3 * 3 * 3) * 64,
        "conv_1/kernel": 32 * 32 * (3 * 3 * 64) * 64,
        # 16x16 3x3 convs, then 2x2 pool -> 8x8x128
        "conv_2/kernel": 16 * 16 * (3 * 3 * 64) * 128,
        "conv_3/kernel": 16 * 16 * (3 * 3 * 128) * 128,
        # fully connected 8*8*128 -> 256 -> 256 -> 10
        "dense_0/kernel": 8 * 8 * 128 * 256,
        "dense_1/kernel": 256 * 256,
        "output/kernel": 256 * 10,
    }
    result = forward_flops(model, params, mask, (32, 32, 3))
    assert {name: e["macs"] for name, e in result["layers"].items()} == macs
    assert result["dense"] == 2 * sum(macs.values()) == 196_613_120
    assert result["masked"] == result["dense"]
    assert result["layers"]["conv_2/kernel"]["output_shape"] == (16, 16, 128)


@pytest.mark.parametrize("which,layer,input_shape,layer_flops", [
    ("lenet", "hidden_1", (28, 28, 1), 2 * 300 * 100),
    ("conv4", "conv_1", (32, 32, 3), 2 * 32 * 32 * 3 * 3 * 64 * 64),
])
def test_half_pruned_layer_halves_its_contribution(request, which, layer, input_shape,
                                                   layer_flops):
    model, params, mask = request.getfixturevalue(which)
    dense = forward_flops(model, params, mask, input_shape)
    half = forward_flops(model, params, _half_pruned(mask, layer), input_shape)
    assert half["dense"] == dense["dense"]
    assert half["masked"] == dense["dense"] - layer_flops / 2
    assert half["layers"][f"{layer}/kernel"]["masked"] == layer_flops / 2
    assert half["layers"][f"{layer}/kernel"]["remaining"] == 0.5
    for name, entry in half["layers"].items():
        if name != f"{layer}/kernel":
            assert entry["masked"] == dense["layers"][name]["masked"]


def test_train_step_is_three_forwards():
    assert train_step_flops(10) == 30
    assert train_step_flops({"dense": 4, "masked": 2.5}) == {"dense": 12, "masked": 7.5}
    assert training_flops(10, 60) == 1800.0
