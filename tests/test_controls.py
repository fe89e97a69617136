"""The controls' building blocks: P4's criteria, mask-1 and mask-0 actions, P2's noise,
D_m and iteration-0 controls, one-shot rates and P0's random-adjusted mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxtickets.sparsity import actions, baselines, criteria
from jaxtickets.sparsity.masks import (init_mask, layer_counts, masked_apply_updates,
                                       PrunablePolicy, prunable_leaves)
from jaxtickets.sparsity.pruning import one_shot_rate, prune_global, prune_layerwise
from jaxtickets.training.optimizers import build_optimizer

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def _params(seed=0, shapes=((40, 30), (30, 10))):
    rng = np.random.default_rng(seed)
    names = ["hidden_0", "output"]
    return {n: {"kernel": rng.normal(0, 0.1, s).astype(np.float32),
                "bias": np.zeros(s[1], np.float32)} for n, s in zip(names, shapes)}


def _mask(params, keep=0.5, seed=1):
    rng = np.random.default_rng(seed)
    mask = init_mask(params, PrunablePolicy())
    return jax.tree_util.tree_map(lambda m: None if m is None else rng.random(m.shape) < keep,
                                  mask, is_leaf=lambda x: x is None)


def _kernels(tree):
    return {k: np.asarray(v["kernel"]) for k, v in tree.items()}


# ---- criteria -------------------------------------------------------------------------
WI = np.array([0.5, -0.2, 0.1, -0.4], np.float32)
WF = np.array([-0.1, -0.6, 0.3, 0.0], np.float32)


@pytest.mark.parametrize("name,expected", [
    ("large_final", [0.1, 0.6, 0.3, 0.0]),
    ("small_final", [-0.1, -0.6, -0.3, -0.0]),
    ("large_init", [0.5, 0.2, 0.1, 0.4]),
    ("small_init", [-0.5, -0.2, -0.1, -0.4]),
    ("magnitude_increase", [-0.4, 0.4, 0.2, -0.4]),
    ("movement", [0.6, 0.4, 0.2, 0.4]),
    ("random", [0, 0, 0, 0]),
    ("large_final_same_sign", [0.0, 0.6, 0.3, 0.0]),
    ("large_final_diff_sign", [0.1, 0.0, 0.0, 0.0]),
])
def test_criterion_formulas(name, expected):
    np.testing.assert_allclose(criteria.score(name, WI, WF), expected, atol=1e-6)


def test_mixed_criteria_align_percentiles():
    alpha = np.median(np.abs(WF)) / np.median(np.abs(WI))  # 0.2 / 0.3
    np.testing.assert_allclose(criteria.score("large_init_large_final", WI, WF),
                               np.minimum(alpha * np.abs(WI), np.abs(WF)), rtol=1e-6)
    np.testing.assert_allclose(criteria.score("small_init_small_final", WI, WF),
                               -np.maximum(alpha * np.abs(WI), np.abs(WF)), rtol=1e-6)


def test_criteria_masks_keep_exact_counts_and_the_right_weights():
    init, final = _params(0), _params(1)
    mask = init_mask(init, PrunablePolicy())
    rates = {"dense": 0.5, "output": 0.5}
    for name in criteria.CRITERIA:
        new = prune_layerwise(final, mask, rates, seed=3, criterion=name, init=init)
        assert {k: r for k, (r, _) in layer_counts(new).items()} == {
            "hidden_0/kernel": 600, "output/kernel": 150}
    kept = prune_layerwise(final, mask, rates, 3, "small_init", init)["hidden_0"]["kernel"]
    w = np.abs(init["hidden_0"]["kernel"])
    assert w[kept].max() <= w[~kept].min()  # small_init keeps the smallest |w_i|
    # random: different seeds give different masks, each uniformly spread.
    a = prune_layerwise(final, mask, rates, 1, "random")["hidden_0"]["kernel"]
    b = prune_layerwise(final, mask, rates, 2, "random")["hidden_0"]["kernel"]
    assert (a != b).any() and abs(a[:20].mean() - a[20:].mean()) < 0.1
    with pytest.raises(ValueError, match="needs the initial weights"):
        prune_global(final, mask, 0.5, 0, criterion="movement")


# ---- mask-1 actions -------------------------------------------------------------------
def test_mask1_actions_keep_counts_multisets_constants_and_signs():
    rewind, fresh = _params(0), _params(5)
    mask = _mask(rewind)
    sigmas = actions.layer_sigmas(rewind, mask)
    assert sigmas["hidden_0/kernel"] == pytest.approx(np.std(rewind["hidden_0"]["kernel"]))
    for action in actions.MASK1_ACTIONS:
        out = _kernels(actions.mask1_weights(action, rewind, fresh, mask, sigmas, seed=7))
        for layer in ("hidden_0", "output"):
            m, w0 = mask[layer]["kernel"], rewind[layer]["kernel"]
            kept, sigma = out[layer][m], sigmas[f"{layer}/kernel"]
            np.testing.assert_array_equal(out[layer][~m], w0[~m])  # pruned untouched
            if action == "rewind":
                np.testing.assert_array_equal(kept, w0[m])
            if action.startswith("reshuffle"):  # the multiset of kept values per layer
                np.testing.assert_array_equal(np.sort(np.abs(kept)), np.sort(np.abs(w0[m])))
            if action == "reshuffle":
                np.testing.assert_array_equal(np.sort(kept), np.sort(w0[m]))
                assert (kept != w0[m]).any()
            if action.startswith("constant"):  # exactly +-sigma
                np.testing.assert_array_equal(np.abs(kept), np.float32(sigma))
            if action.startswith("reinit"):
                np.testing.assert_array_equal(np.abs(kept), np.abs(fresh[layer]["kernel"][m]))
            if action.endswith("_sign") or action == "rewind":
                np.testing.assert_array_equal(np.sign(kept), np.sign(w0[m]))
            elif action != "reinit":  # sign-free variants flip about half of the signs
                assert 0.3 < np.mean(np.sign(kept) != np.sign(w0[m])) < 0.7
    np.testing.assert_array_equal(rewind["hidden_0"]["kernel"], _params(0)["hidden_0"]["kernel"])


def test_noise_dm_and_signed_constant():
    rewind = _params(0, shapes=((300, 200), (200, 10)))
    mask = _mask(rewind, keep=0.3)
    sigmas = actions.layer_sigmas(rewind, mask)
    m, w0 = mask["hidden_0"]["kernel"], rewind["hidden_0"]["kernel"]
    noisy = actions.add_noise(rewind, mask, sigmas, 2.0, seed=1)["hidden_0"]["kernel"]
    assert np.std(noisy[m] - w0[m]) == pytest.approx(2.0 * sigmas["hidden_0/kernel"], rel=0.02)
    np.testing.assert_array_equal(noisy[~m], w0[~m])
    dm = actions.resample_kept(rewind, mask, seed=1)["hidden_0"]["kernel"]
    assert set(dm[m].tolist()) <= set(w0[m].tolist())  # drawn from the kept values only
    assert len(set(dm[m].tolist())) < m.sum()           # with replacement
    const = actions.signed_constant(rewind, mask, sigmas)["hidden_0"]["kernel"]
    np.testing.assert_array_equal(const[m], np.float32(sigmas["hidden_0/kernel"]) * np.sign(w0[m]))


def test_supermasks_use_the_untrained_network_even_after_rewinding():
    """P4's supermasks are evaluated on theta_0, not on weights rewound to a step k > 0."""
    from jaxtickets import branches

    init = _params(0)
    rewound = jax.tree_util.tree_map(lambda w: w + 1.0, init)
    mask = _mask(init, keep=0.4)
    ctx = branches.LevelContext({"params": rewound, "batch_stats": {}}, mask,
                                {"params": init, "batch_stats": {}}, None, None, 1e-7)
    plain = branches.get("supermask_init").weights(ctx, mask, 0)["params"]
    np.testing.assert_array_equal(plain["hidden_0"]["kernel"], init["hidden_0"]["kernel"])
    const = branches.get("supermask_constant").weights(ctx, mask, 0)["params"]
    m, w0 = mask["hidden_0"]["kernel"], init["hidden_0"]["kernel"]
    sigma = np.float32(np.std(w0.astype(np.float64)))
    np.testing.assert_array_equal(const["hidden_0"]["kernel"][m], sigma * np.sign(w0[m]))
    # The noise control perturbs the ticket's (rewound) weights.
    noisy = branches.get("noise_1").weights(ctx, mask, 0)["params"]
    np.testing.assert_array_equal(noisy["output"]["bias"], rewound["output"]["bias"])


# ---- mask-0 actions -------------------------------------------------------------------
def test_value_masks_of_the_mask0_actions():
    init = {"l": {"kernel": np.array([0.5, -0.5, 0.2, 0.2, 0.1], np.float32)}}
    final = {"l": {"kernel": np.array([0.9, -0.1, 0.3, 0.1, 0.1], np.float32)}}
    previous = {"l": {"kernel": np.array([1, 1, 1, 1, 0], bool)}}
    earlier_values = {"l": {"kernel": np.array([1, 1, 1, 1, 1], bool)}}  # entry 4 frozen
    new = {"l": {"kernel": np.array([0, 0, 1, 0, 0], bool)}}
    assert actions.value_mask("zero", new, previous, None, init, final) is None
    frozen = actions.value_mask("frozen_init", new, previous, None, init, final)
    assert frozen["l"]["kernel"].all()
    hybrid = actions.value_mask("hybrid", new, previous, earlier_values, init, final)
    # 0 grew -> frozen at init; 1 and 3 shrank -> zero; 2 kept; 4 frozen earlier.
    np.testing.assert_array_equal(hybrid["l"]["kernel"], [1, 0, 1, 0, 1])


def test_frozen_weights_stay_bitwise_frozen_under_adam_and_weight_decay():
    params = {"l": {"kernel": jnp.asarray(np.random.default_rng(0).normal(size=(20, 20)),
                                          jnp.float32).at[0, 0].set(-0.0)}}
    mask = {"l": {"kernel": jnp.asarray(np.random.default_rng(1).random((20, 20)) < 0.5)}}
    values = {"l": {"kernel": mask["l"]["kernel"].at[:10].set(True)}}  # rows 0-9 frozen
    tx = build_optimizer("adam", optax.constant_schedule(0.1), weight_decay=0.1)
    state = tx.init(params)
    p = masked_apply_updates(params, jax.tree_util.tree_map(jnp.zeros_like, params),
                             mask, values)  # the start: value mask applied
    start = np.asarray(p["l"]["kernel"])
    for step in range(5):
        grads = jax.tree_util.tree_map(lambda w: jnp.ones_like(w) * (step + 1), p)
        updates, state = tx.update(grads, state, p, mask=mask)
        p = masked_apply_updates(p, updates, mask, values)
    out, m, v = np.asarray(p["l"]["kernel"]), np.asarray(mask["l"]["kernel"]), \
        np.asarray(values["l"]["kernel"])
    frozen = v & ~m
    assert frozen.sum() > 50
    np.testing.assert_array_equal(out[frozen].view(np.uint32), start[frozen].view(np.uint32))
    assert (out[~v] == 0).all() and (out[m] != start[m]).all()


# ---- P2 / P0 controls -----------------------------------------------------------------
def test_one_shot_rates():
    assert one_shot_rate(0.2, 3, "geometric") == pytest.approx(1 - 0.8 ** 3)
    assert one_shot_rate(0.125, 7, "linear") == pytest.approx(0.875)
    with pytest.raises(ValueError, match="100%"):
        one_shot_rate(0.125, 8, "linear")


def test_p2_linear_one_shot_levels_match_fig_4c():
    """P2 Fig. 4c's x-axis: hidden layers pruned in 12.5% steps, the output at half the
    rate, % of all LeNet-300-100 kernel weights remaining (docs/choices.md#p2-one-shot-levels)."""
    from jaxtickets.models import create_model
    from jaxtickets.sparsity.masks import kernel_density

    params = create_model("lenet300_100", 10).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)["params"]
    dense = init_mask(params, PrunablePolicy())
    got = [100.0] + [
        100 * kernel_density(prune_layerwise(
            params, dense, {k: one_shot_rate(r, level, "linear") for k, r in
                            {"dense": 0.125, "output": 0.0625}.items()}, seed=level), params)
        for level in range(1, 8)]
    assert got == pytest.approx([100, 87.5, 75.0, 62.6, 50.1, 37.6, 25.1, 12.7], abs=0.06)


def test_prune_at_init_keeps_the_largest_initial_weights_per_layer():
    init = _params(0)
    mask = _mask(init, keep=0.3)
    out = baselines.magnitude_at_init(mask, init, seed=0)
    assert layer_counts(out) == layer_counts(mask)
    for (_, kept), (_, w) in zip(prunable_leaves(out), prunable_leaves(
            {k: {"kernel": v["kernel"], "bias": None} for k, v in init.items()})):
        assert np.abs(w[kept]).min() >= np.abs(w[~kept]).max()


def test_random_adjusted_prunes_natural_zeros_first():
    trained = _params(0)
    trained["hidden_0"]["kernel"][:5] = 1e-9  # 150 natural zeros (below float32 eps)
    mask = _mask(trained, keep=0.4)
    out = baselines.random_adjusted(mask, trained, seed=0)
    kept = sum(k for k, _ in layer_counts(out).values())
    assert kept == sum(k for k, _ in layer_counts(mask).values())  # exact count
    assert not out["hidden_0"]["kernel"][:5].any()                # zeros pruned first
    assert baselines.natural_zero_fraction(trained, mask) == pytest.approx(150 / 1500)
    # Two seeds give different random parts.
    assert (baselines.random_adjusted(mask, trained, seed=1)["hidden_0"]["kernel"]
            != out["hidden_0"]["kernel"]).any()
