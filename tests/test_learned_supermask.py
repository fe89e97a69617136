"""P4's learned supermask on embedded MNIST: straight-through gradient, frozen weights,
density control by the logit init, learning, determinism and fixed pruned entries."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtickets.config_schema import base_config
from jaxtickets.data.datasets import load_splits
from jaxtickets.experiment.sources import evaluation_setup
from jaxtickets.sparsity.masks import PrunablePolicy, init_mask
from jaxtickets.supermask.learned import (SupermaskRecipe, gated_params, init_logits,
                                          learned_mask_sample, train_supermask)

SUMMARY_KEYS = {"early_stop_step", "early_stop_test_accuracy", "early_stop_validation_loss",
                "early_stop_validation_accuracy", "test_accuracy", "test_loss",
                "validation_accuracy", "validation_loss", "train_accuracy", "wall_seconds",
                "start_step", "train_steps", "density", "early_stop_density",
                "expected_density", "logit_init", "early_stop_basis"}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture(scope="module")
def lenet():
    c = base_config()
    c.data.source = "embedded"
    c.data.validation_size = 500
    c.train.batch_size = 60
    c.train.duration = "200st"
    c.train.eval_every = "100st"
    d = c.data
    splits = load_splits(d.dataset, d.source, d.data_dir, d.validation_size, d.train_size,
                         d.test_size, d.split_seed)
    setup = evaluation_setup(c, splits)
    sample = jnp.zeros((1,) + setup.image_shape)
    init = jax.jit(lambda k: setup.model.init({"params": k, "dropout": k}, sample,
                                              train=False))  # eager init is slower
    variables = init(jax.random.PRNGKey(0))
    variables = {"params": variables["params"], "batch_stats": {}}  # device arrays
    mask = init_mask(variables["params"], PrunablePolicy())
    return setup, variables, mask


@pytest.fixture(scope="module")
def trained(lenet):
    """One P4-style run (lr 100, batch 128) and a host copy of the inputs taken before."""
    setup, variables, mask = lenet
    before = jax.tree_util.tree_map(lambda x: np.array(x, copy=True), variables)
    recipe = SupermaskRecipe(logit_init=1.0, steps=300, learning_rate=100.0)
    summary, history = train_supermask(setup, variables, mask, recipe, seed=0)
    return before, summary, history


def test_straight_through_gradient():
    m = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)), jnp.float32)
    keep = np.ones((3, 4), bool)
    keep[1, 2] = False
    mask = {"dense": {"kernel": keep, "bias": None}}
    logits = {"dense": {"kernel": m, "bias": None}}
    c = jnp.arange(1.0, 13.0).reshape(3, 4)
    key = jax.random.PRNGKey(3)

    def loss(logits):
        return jnp.sum(c * learned_mask_sample(logits, mask, key)["dense"]["kernel"])

    gate = np.asarray(learned_mask_sample(logits, mask, key)["dense"]["kernel"])
    grad = np.asarray(jax.jit(jax.grad(loss))(logits)["dense"]["kernel"])
    s = 1.0 / (1.0 + np.exp(-np.asarray(m, np.float64)))
    assert set(np.unique(gate)) <= {0.0, 1.0}           # forward: an exact sample
    assert gate[1, 2] == 0.0 and grad[1, 2] == 0.0       # pruned: no value, no gradient
    np.testing.assert_allclose(grad[keep], (np.asarray(c) * s * (1 - s))[keep], rtol=1e-5)
    assert np.all(grad[keep] != 0.0)                     # backward: sigmoid's gradient

    # Through a layer: d/dm sum(x @ (w * g)) = (sum_b x)[:, None] * w * s * (1 - s).
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(5, 3)), jnp.float32)

    def layer_loss(logits):
        params = gated_params({"dense": {"kernel": w, "bias": jnp.ones(4)}},
                              learned_mask_sample(logits, mask, key))
        return jnp.sum(x @ params["dense"]["kernel"] + params["dense"]["bias"])

    expected = np.asarray(x).sum(0)[:, None] * np.asarray(w) * s * (1 - s)
    layer_grad = np.asarray(jax.jit(jax.grad(layer_loss))(logits)["dense"]["kernel"])
    np.testing.assert_allclose(layer_grad[keep], expected[keep], rtol=1e-4, atol=1e-6)


def test_frozen_weights_and_exact_effective_weights(lenet, trained):
    setup, variables, mask = lenet
    before, _, _ = trained
    for old, new in zip(jax.tree_util.tree_leaves(before),
                        jax.tree_util.tree_leaves(variables)):
        assert np.array_equal(old, np.asarray(new))  # bitwise (no NaN in an init)
    params = variables["params"]

    @jax.jit
    def draw(logits, key):
        gates = learned_mask_sample(logits, mask, key)
        return gates, gated_params(params, gates)

    gates, effective = draw(init_logits(mask, 0.0), jax.random.PRNGKey(5))
    for (path, w), eff, g in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                                 jax.tree_util.tree_leaves(effective),
                                 jax.tree_util.tree_flatten(
                                     gates, is_leaf=lambda x: x is None)[0]):
        w, eff = np.asarray(w), np.asarray(eff)
        if g is None:                                     # biases: untouched
            assert np.array_equal(w, eff), path
        else:
            kept = np.asarray(g) == 1.0
            assert np.array_equal(eff[kept], w[kept]) and np.all(eff[~kept] == 0.0), path


@pytest.mark.parametrize("c", [-2.0, 2.0])
def test_density_at_init_follows_sigmoid(lenet, c):
    setup, variables, mask = lenet
    summary, history = train_supermask(setup, variables, mask,
                                       SupermaskRecipe(c, steps=0, learning_rate=100.0), 0)
    assert set(summary) == SUMMARY_KEYS
    assert len(history) == 1 and history[0]["step"] == 0
    assert summary["train_accuracy"] is None and summary["train_steps"] == 0
    assert abs(summary["density"] - sigmoid(c)) < 0.01
    assert abs(summary["expected_density"] - sigmoid(c)) < 1e-5


def test_training_learns_a_mask(trained):
    _, summary, history = trained
    print("learned supermask, LeNet, c=1, lr 100, 300 steps:", summary)
    assert set(summary) == SUMMARY_KEYS
    assert [h["step"] for h in history] == [100, 200, 300]
    assert summary["test_accuracy"] > 0.8              # measured 0.914 (chance: 0.1)
    assert summary["train_accuracy"] > 0.6
    assert abs(summary["density"] - sigmoid(1.0)) > 0.005  # measured 0.711 vs 0.731
    best = min(history, key=lambda h: (h["validation_loss"], h["step"]))
    assert summary["early_stop_step"] == best["step"]
    assert summary["early_stop_test_accuracy"] == best["test_accuracy"]
    assert summary["early_stop_density"] == best["density"]


def test_same_seed_same_results(lenet):
    setup, variables, mask = lenet
    # eval_every 100 as in `trained`: the same chunk length reuses its compiled step.
    recipe = SupermaskRecipe(0.0, steps=110, learning_rate=100.0, eval_every=100,
                             eval_samples=2)

    def run(seed):
        summary, history = train_supermask(setup, variables, mask, recipe, seed)
        summary.pop("wall_seconds")
        return summary, history

    first = run(7)
    assert [h["step"] for h in first[1]] == [100, 110]
    assert run(7) == first
    assert run(8) != first


def test_pruned_entries_stay_zero(lenet):
    setup, variables, mask = lenet
    rng = np.random.default_rng(0)
    half = jax.tree_util.tree_map(lambda m: None if m is None else rng.random(m.shape) < 0.5,
                                  mask, is_leaf=lambda x: x is None)
    logits = init_logits(half, 5.0)
    draw = jax.jit(lambda key: learned_mask_sample(logits, half, key))
    for s in range(5):
        gates = draw(jax.random.PRNGKey(s))
        for g, m in zip(jax.tree_util.tree_leaves(gates), jax.tree_util.tree_leaves(half)):
            assert np.all(np.asarray(g)[~m] == 0.0)
    kept = sum(int(m.sum()) for m in jax.tree_util.tree_leaves(half))
    total = sum(m.size for m in jax.tree_util.tree_leaves(half))
    recipe = SupermaskRecipe(5.0, steps=100, learning_rate=100.0, eval_samples=1)
    summary, _ = train_supermask(setup, variables, half, recipe, 0)
    # Without the fixed zeros, sigmoid(5) = 0.993 of the entries would be kept.
    assert 0.8 * kept / total < summary["density"] <= kept / total
    assert summary["expected_density"] <= kept / total
    # One sample sees each test image exactly once: accuracy * size is a whole number.
    assert abs(summary["test_accuracy"] * 2000 - round(summary["test_accuracy"] * 2000)) < 1e-6
