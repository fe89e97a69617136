"""small_dense_model: kernel-weight counts within 1% of the target, runnable models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtickets.models import create_model
from jaxtickets.models.vgg import POOL
from jaxtickets.sparsity.small_dense import (kernel_weight_count, small_dense_model,
                                             width_fields)

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

MNIST, CIFAR = (28, 28, 1), (32, 32, 3)
CASES = ([("lenet300_100", MNIST, d) for d in (0.8, 0.2, 0.05, 0.02)]
         + [(name, CIFAR, d) for name in ("conv2", "conv4", "conv6") for d in (0.5, 0.1, 0.03)]
         + [("resnet20", CIFAR, d) for d in (0.5, 0.1)] + [("vgg11", CIFAR, 0.1)]
         + [("mobilenet_v1", CIFAR, d) for d in (0.4, 0.05)])
# One real forward pass per model family; the other cases check shapes only. Its weights
# are drawn with numpy: on XLA:CPU, model.init compiles a random-normal kernel per new
# shape (seconds each), while init itself is already traced by eval_shape.
REAL_FORWARD = {("lenet300_100", 0.02), ("conv6", 0.03), ("resnet20", 0.1)}


def _output(model, image_shape, real: bool):
    x = jnp.zeros((2, *image_shape), jnp.float32)
    key = jax.random.PRNGKey(0)
    out, variables = jax.eval_shape(lambda: model.init_with_output(key, x, train=False))
    if not real:
        return out, variables
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(
        lambda s: (0.05 * rng.standard_normal(s.shape)).astype(s.dtype), variables["params"])
    others = {col: jax.tree_util.tree_map(lambda s: np.ones(s.shape, s.dtype), tree)
              for col, tree in variables.items() if col != "params"}
    variables = {"params": params, **others}
    return jax.jit(lambda v: model.apply(v, x, train=False))(variables), variables


@pytest.mark.parametrize("name,image_shape,density", CASES)
def test_count_within_one_percent_and_model_runs(name, image_shape, density):
    model = create_model(name, 10)
    full = kernel_weight_count(model, image_shape)
    target = round(density * full)
    small, count = small_dense_model(model, target, image_shape)
    assert abs(count - target) <= 0.01 * target, (name, density, count, target)
    assert count == kernel_weight_count(small, image_shape)
    assert small.num_classes == 10
    for field, widths in width_fields(small).items():
        assert all(1 <= w <= f for w, f in zip(widths, width_fields(model)[field]))
    out, variables = _output(small, image_shape, (name, density) in REAL_FORWARD)
    assert out.shape == (2, 10)
    assert variables["params"]["output"]["kernel"].shape[-1] == 10
    if (name, density) in REAL_FORWARD:
        assert np.all(np.isfinite(np.asarray(out)))


def test_lenet_count_and_width_fields():
    lenet = create_model("lenet300_100", 10)
    assert kernel_weight_count(lenet, MNIST) == 266_200
    assert width_fields(lenet) == {"hidden": (300, 100)}
    assert width_fields(create_model("conv4", 10)) == {"widths": (64, 128), "fc": (256, 256)}
    assert width_fields(create_model("resnet20", 10)) == {"widths": (16, 32, 64)}
    assert width_fields(create_model("resnet20", 10).clone(stem_width=8)) == {
        "widths": (16, 32, 64), "stem_width": (8,)}


def test_vgg_keeps_its_pools():
    vgg = create_model("vgg11", 10)
    small, _ = small_dense_model(vgg, kernel_weight_count(vgg, CIFAR) // 10, CIFAR)
    assert [i for i, v in enumerate(small.cfg) if v == POOL] == \
        [i for i, v in enumerate(vgg.cfg) if v == POOL]


@pytest.mark.parametrize("name,image_shape", [("lenet300_100", MNIST), ("conv4", CIFAR),
                                              ("resnet20", CIFAR)])
def test_full_target_keeps_original_widths(name, image_shape):
    model = create_model(name, 10)
    full = kernel_weight_count(model, image_shape)
    small, count = small_dense_model(model, full, image_shape)
    assert count == full
    assert width_fields(small) == width_fields(model)


def test_impossible_targets_raise():
    lenet = create_model("lenet300_100", 10)
    with pytest.raises(ValueError, match="exceeds"):
        small_dense_model(lenet, 266_201, MNIST)
    # Every width 1: 784 + 1 + 10 kernel weights.
    with pytest.raises(ValueError, match="below 795"):
        small_dense_model(lenet, 794, MNIST)
    _, count = small_dense_model(lenet, 795, MNIST)
    assert count == 795
    with pytest.raises(ValueError, match="no width fields"):
        small_dense_model(create_model("alexnet", 10), 10_000, (224, 224, 3))
