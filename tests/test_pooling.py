"""The fast 2x2 max-pool equals nn.max_pool bit for bit: values and gradients, with ties,
odd sizes, bf16, inside the Conv and VGG models, and under vmap."""

from __future__ import annotations

import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtickets.models import create_model
from jaxtickets.models.pooling import max_pool_2x2


def reference_pool(x):
    return nn.max_pool(x, (2, 2), strides=(2, 2))


def _bits(tree):
    return [np.atleast_1d(np.asarray(leaf, np.float32)).view(np.uint32)
            for leaf in jax.tree_util.tree_leaves(tree)]


def _tied_input(shape, dtype, seed=0):
    """ReLU-like values rounded to one decimal: most windows hold ties (zeros and
    repeats), the case where 'which entry gets the gradient' matters."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.maximum(rng.standard_normal(shape), 0).round(1), dtype)


@pytest.mark.parametrize("shape", [(3, 8, 8, 5), (2, 7, 9, 3), (1, 32, 32, 64)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_values_and_gradients_match_nn_max_pool_bitwise(shape, dtype):
    x = _tied_input(shape, dtype)
    out_shape = reference_pool(x).shape
    rng = np.random.default_rng(1)
    upstream = rng.standard_normal(out_shape)
    upstream[rng.random(out_shape) < 0.2] = -0.0  # signed zeros arrive as +0.0 in both
    upstream = jnp.asarray(upstream, dtype)
    want, want_vjp = jax.vjp(reference_pool, x)
    got, got_vjp = jax.vjp(max_pool_2x2, x)
    assert got.shape == want.shape and got.dtype == want.dtype
    for a, b in zip(_bits((got, got_vjp(upstream))), _bits((want, want_vjp(upstream)))):
        assert np.array_equal(a, b)
    # The tied windows route the whole gradient to one entry, not a share to each.
    grad = np.asarray(got_vjp(jnp.ones(out_shape, dtype))[0], np.float32)
    assert set(np.unique(grad)) <= {0.0, 1.0}
    assert grad.sum() == np.prod(out_shape)


def test_under_vmap_each_replicate_matches():
    xs = _tied_input((4, 2, 8, 8, 3), jnp.float32)
    loss = lambda pool: (lambda x: jnp.sum(pool(x) ** 2))
    got = jax.vmap(jax.grad(loss(max_pool_2x2)))(xs)
    want = jnp.stack([jax.grad(loss(reference_pool))(x) for x in xs])
    assert np.array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("name, module", [("conv2", "convnets"), ("vgg11", "vgg")])
def test_model_gradients_are_those_of_nn_max_pool(name, module, monkeypatch):
    model = create_model(name, 10)
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)) / 255.0,
                    jnp.float32)
    variables = model.init(jax.random.PRNGKey(0), x, train=False)
    labels = jnp.arange(4) % 10

    def value_and_grad():
        def loss(params):
            out = model.apply({**variables, "params": params}, x, train=True,
                              mutable=["batch_stats"])
            logits = out[0] if isinstance(out, tuple) else out
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])
        return jax.value_and_grad(loss)(variables["params"])

    got = value_and_grad()
    monkeypatch.setattr(importlib.import_module(f"jaxtickets.models.{module}"), "max_pool_2x2",
                        reference_pool)
    want = value_and_grad()
    for a, b in zip(_bits(got), _bits(want)):
        assert np.array_equal(a, b), name
