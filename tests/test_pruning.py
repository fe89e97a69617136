"""Magnitude pruning: exact counts, closed-form densities, P2's numbers, ties, policies."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtickets.models import create_model
from jaxtickets.sparsity import masks
from jaxtickets.sparsity.masks import PrunablePolicy
from jaxtickets.sparsity.pruning import num_to_prune, prune_global, prune_layerwise

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

P2_RATES = {"conv": 0.1, "dense": 0.2, "output": 0.1, "shortcut": 0.2}
GLOBAL_RATE = 0.2
INPUT_SHAPES = {"lenet300_100": (1, 28, 28, 1), "conv2": (1, 32, 32, 3),
                "conv4": (1, 32, 32, 3), "conv6": (1, 32, 32, 3)}
# A small tree with every kind of layer and awkward (odd, prime) sizes.
SMALL = {"conv_0": (3, 3, 2, 5), "conv_1": (3, 3, 5, 7), "dense_0": (63, 17),
         "dense_1": (17, 13), "output": (13, 3), "shortcut_0": (1, 1, 2, 7)}
SMALL_KINDS = {"conv_0": "conv", "conv_1": "conv", "dense_0": "dense", "dense_1": "dense",
               "output": "output", "shortcut_0": "shortcut"}


# ---- helpers ----------------------------------------------------------------------------
def _small_params(seed: int = 0, fill=None) -> dict:
    """SMALL as a params tree (kernel + bias per module), Gaussian or constant `fill`."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in SMALL.items():
        kernel = (np.full(shape, fill, np.float32) if fill is not None
                  else rng.standard_normal(shape).astype(np.float32))
        params[name] = {"kernel": kernel, "bias": np.zeros(shape[-1], np.float32)}
    return params


@functools.lru_cache(maxsize=None)
def _abstract_params(name: str):
    """Parameter shapes of a registered model, without computing anything."""
    model = create_model(name, 10)
    sample = jnp.zeros(INPUT_SHAPES[name], jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), sample))["params"]


def _random_like(tree, seed: int):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda leaf: rng.standard_normal(leaf.shape).astype(np.float32), tree)


def _model_params(name: str, seed: int = 0):
    return _random_like(_abstract_params(name), seed)


def _prune(method: str, params, mask, seed: int):
    if method == "layerwise":
        return prune_layerwise(params, mask, P2_RATES, seed)
    return prune_global(params, mask, GLOBAL_RATE, seed)


def _check_exact_counts(method: str, old, new) -> None:
    """Each layer (layer-wise) or the whole set (global) lost round-half-up(rate x alive)
    of the weights that were alive in `old`; layer sizes are unchanged."""
    before, after = masks.layer_counts(old), masks.layer_counts(new)
    assert {k: t for k, (_, t) in after.items()} == {k: t for k, (_, t) in before.items()}
    if method == "layerwise":
        for name, (alive, _) in before.items():
            rate = P2_RATES[SMALL_KINDS[name.split("/")[0]]]
            assert alive - after[name][0] == math.floor(rate * alive + 0.5), name
    else:
        alive = masks.remaining_and_total(old)[0]
        removed = alive - masks.remaining_and_total(new)[0]
        assert removed == math.floor(GLOBAL_RATE * alive + 0.5)


def _trained_like(mask, level: int, pruned: str, seed: int):
    """Fresh Gaussian weights for a level, as training would leave them: pruned entries
    exactly zero (`pruned='zero'`), or large (`'large'`, e.g. rewound weights)."""
    params = _small_params(seed * 1000 + level)
    flat_mask = masks.to_flat_dict(mask)
    for name, m in flat_mask.items():
        module = name.split("/")[0]
        kernel = params[module]["kernel"]
        kernel[~m] = 0.0 if pruned == "zero" else 1e3
    return params


def _kernels(params) -> dict:
    """{layer name: kernel} for every kernel in a params tree."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {masks.path_name(p): np.asarray(w) for p, w in flat
            if masks.kernel_kind(p, w) is not None}


def _drift_bound(rate: float, levels: int) -> float:
    """Largest possible distance from N(1-rate)^L after L levels of exact rounding: each
    level rounds by at most half a weight and later levels shrink that error by (1-rate).
    (The bound, not 'one weight': e.g. a 147,456-weight layer at 10% drifts 1.29.)"""
    return 0.5 * sum((1.0 - rate) ** k for k in range(levels))


def _imp_densities(params, policy: PrunablePolicy, levels: int, density_fn) -> list[float]:
    """% remaining (by `density_fn`) after levels 0..levels of P2's layer-wise pruning."""
    mask = masks.init_mask(params, policy)
    out = []
    for level in range(levels + 1):
        out.append(round(100 * density_fn(mask, params), 2))
        if level < levels:
            mask = prune_layerwise(masks.apply_mask(params, mask), mask, P2_RATES, level)
    return out


# ---- (a) exact counts -------------------------------------------------------------------
@pytest.mark.parametrize("rate, remaining, expected", [
    (0.5, 5, 3),     # half rounds up (Python's round() would give 2)
    (0.3, 5, 2),     # 1.5 -> 2
    (0.25, 2, 1),    # 0.5 -> 1
    (0.2, 2, 0),     # 0.4 -> 0
    (0.2, 3, 1),     # 0.6 -> 1
    (0.2, 235_200, 47_040),
    (0.1, 1_000, 100),
    (0.2, 0, 0),
])
def test_num_to_prune_rounds_half_up(rate, remaining, expected):
    assert num_to_prune(rate, remaining) == expected


@pytest.mark.parametrize("pruned", ["zero", "large"])
@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_exact_counts_at_every_level(method, pruned):
    policy = PrunablePolicy(shortcut=True)
    mask = masks.init_mask(_small_params(), policy)
    for level in range(12):
        params = _trained_like(mask, level, pruned, seed=1)
        new = _prune(method, params, mask, seed=level)
        _check_exact_counts(method, mask, new)
        mask = new


def test_tiny_layer_half_rounds_up():
    params = {"output": {"kernel": np.arange(1, 6, dtype=np.float32).reshape(5, 1)}}
    mask = masks.init_mask(params, PrunablePolicy())
    new = prune_layerwise(params, mask, {"output": 0.5}, seed=0)
    assert new["output"]["kernel"].ravel().tolist() == [False, False, False, True, True]


# ---- (b) closed-form densities ----------------------------------------------------------
@pytest.mark.parametrize("levels", [1, 2, 5, 10])
def test_layerwise_closed_form(levels):
    params = _model_params("lenet300_100")
    mask = masks.init_mask(params, PrunablePolicy())
    for level in range(levels):
        mask = prune_layerwise(params, mask, P2_RATES, level)
    for name, (remaining, total) in masks.layer_counts(mask).items():
        rate = P2_RATES["output" if name.startswith("output") else "dense"]
        assert abs(remaining - total * (1 - rate) ** levels) <= _drift_bound(rate, levels)


@pytest.mark.parametrize("levels", [1, 2, 5, 10])
def test_global_closed_form(levels):
    params = _model_params("lenet300_100", seed=3)
    mask = masks.init_mask(params, PrunablePolicy())
    for level in range(levels):
        mask = prune_global(params, mask, GLOBAL_RATE, level)
    remaining, total = masks.remaining_and_total(mask)
    assert total == 266_200
    assert abs(remaining - total * 0.8 ** levels) <= _drift_bound(GLOBAL_RATE, levels)
    assert masks.density(mask) == pytest.approx(0.8 ** levels, abs=1e-5)


# ---- (c) P2's numbers -------------------------------------------------------------------
LENET_P2 = [100, 80.04, 64.06, 51.28, 41.05, 32.87, 26.32, 21.07, 16.88, 13.52, 10.83]
CONV_P2 = {
    "conv2": ([100, 80.1, 64.16, 51.41, 41.2, 33.02], 0.1),
    "conv4": ([100, 81.08, 65.84, 53.55, 43.63, 35.61], 0.1),
    "conv6": ([100, 82.54, 68.2, 56.39, 46.68, 38.67], 0.15),
}


@pytest.fixture(scope="module")
def lenet_params():
    model = create_model("lenet300_100", 10)
    return model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]


@pytest.mark.parametrize("density_fn", [masks.kernel_density,
                                        lambda mask, params: masks.density(mask)],
                         ids=["kernel_density", "density"])
def test_lenet_matches_p2_schedule(lenet_params, density_fn):
    params = jax.tree_util.tree_map(np.asarray, lenet_params)
    assert _imp_densities(params, PrunablePolicy(), 10, density_fn) == LENET_P2


@pytest.mark.parametrize("name", sorted(CONV_P2))
def test_convnets_match_p2_schedule(name, monkeypatch):
    expected, conv_rate = CONV_P2[name]
    monkeypatch.setitem(P2_RATES, "conv", conv_rate)
    params = _model_params(name)
    assert _imp_densities(params, PrunablePolicy(), len(expected) - 1,
                          masks.kernel_density) == expected


def test_kernel_density_counts_unprunable_kernels(lenet_params):
    params = jax.tree_util.tree_map(np.asarray, lenet_params)
    mask = masks.init_mask(params, PrunablePolicy(output=False))
    assert masks.kernel_density(mask, params) == 1.0
    mask = prune_layerwise(params, mask, P2_RATES, seed=0)
    # hidden layers keep 188,160 + 24,000; the 1,000 output weights are never pruned.
    assert masks.remaining_and_total(mask) == (212_160, 265_200)
    assert masks.density(mask) == pytest.approx(0.8)
    assert masks.kernel_density(mask, params) == pytest.approx(213_160 / 266_200)


@pytest.mark.parametrize("name, weights, conv", [
    ("lenet300_100", 266_200, 0),
    ("conv2", 4_300_992, 38_592),
    ("conv4", 2_425_024, 259_776),
    ("conv6", 2_261_184, 1_144_512),
])
def test_parameter_counts(name, weights, conv):
    abstract = _abstract_params(name)
    assert masks.remaining_and_total(masks.init_mask(abstract, PrunablePolicy())) == (
        weights, weights)
    flat, _ = jax.tree_util.tree_flatten_with_path(abstract)
    assert sum(math.prod(leaf.shape) for path, leaf in flat
               if masks.path_name(path).endswith("kernel")) == weights
    if conv:
        conv_only = masks.init_mask(abstract, PrunablePolicy(dense=False, output=False))
        assert masks.remaining_and_total(conv_only)[1] == conv


# ---- (d) ties and seeds -----------------------------------------------------------------
@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_all_equal_weights_exact_counts_and_seeded(method):
    params = _small_params(fill=0.7)
    mask = masks.init_mask(params, PrunablePolicy())
    first = _prune(method, params, mask, seed=11)
    again = _prune(method, params, mask, seed=11)
    other = _prune(method, params, mask, seed=12)
    _check_exact_counts(method, mask, first)
    _check_exact_counts(method, mask, other)
    assert _same(first, again)
    assert not _same(first, other)


def _same(a, b) -> bool:
    fa, fb = masks.to_flat_dict(a), masks.to_flat_dict(b)
    return fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)


@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_ties_at_threshold_keep_exact_counts(method):
    """Three magnitude values, so the cut falls inside a group of equal weights."""
    rng = np.random.default_rng(5)
    params = jax.tree_util.tree_map(
        lambda w: rng.choice(np.float32([-2.0, -0.5, 0.5, 1.0]), size=w.shape)
        .astype(np.float32), _small_params())
    mask = masks.init_mask(params, PrunablePolicy())
    new = _prune(method, params, mask, seed=0)
    _check_exact_counts(method, mask, new)
    _check_lowest_removed(method, params, mask, new)


def test_global_threshold_path_is_the_shuffle_path_without_ties():
    """Global pruning finds the k lowest by a threshold; with distinct scores that is the
    unique set the seeded shuffle finds, and with ties at the threshold it draws the
    missing entries among the tied ones only, seeded."""
    from jaxtickets.sparsity.pruning import _dropped

    scores = np.random.default_rng(0).permutation(10_000).astype(np.float32)
    for k in (1, 37, 5_000, 9_999):
        fast = _dropped(scores, k, np.random.default_rng(3), last_draw=True)
        shuffled = _dropped(scores, k, np.random.default_rng(3), last_draw=False)
        assert np.array_equal(fast, shuffled) and fast.sum() == k
    tied = np.repeat(np.float32([1.0, 2.0, 3.0]), 100)
    draws = [_dropped(tied, 150, np.random.default_rng(s), last_draw=True) for s in (1, 1, 2)]
    assert all(d.sum() == 150 and d[:100].all() and not d[200:].any() for d in draws)
    assert np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])


# ---- (e) nested masks, lowest magnitudes removed ----------------------------------------
def _check_lowest_removed(method, params, old, new) -> None:
    """new ⊆ old, and every removed weight is no larger in magnitude than every kept one
    (within each layer for layer-wise pruning, over all layers for global)."""
    kernels, old_flat, new_flat = _kernels(params), masks.to_flat_dict(old), \
        masks.to_flat_dict(new)
    removed_all, kept_all = [], []
    for name, o in old_flat.items():
        n = new_flat[name]
        assert not np.any(n & ~o), f"{name}: a pruned weight came back"
        size = np.abs(kernels[name])
        removed, kept = size[o & ~n], size[n]
        if method == "layerwise" and removed.size and kept.size:
            assert removed.max() <= kept.min(), name
        removed_all.append(removed)
        kept_all.append(kept)
    removed_all, kept_all = np.concatenate(removed_all), np.concatenate(kept_all)
    if method == "global" and removed_all.size and kept_all.size:
        assert removed_all.max() <= kept_all.min()


@pytest.mark.parametrize("pruned", ["zero", "large"])
@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_nested_masks_and_lowest_magnitudes(method, pruned):
    mask = masks.init_mask(_small_params(), PrunablePolicy())
    for level in range(8):
        params = _trained_like(mask, level, pruned, seed=2)
        new = _prune(method, params, mask, seed=level)
        _check_lowest_removed(method, params, mask, new)
        mask = new
    assert masks.density(mask) < 0.3


def test_global_prunes_small_layers_preferentially():
    """Global pruning compares magnitudes across layers: a layer of tiny weights goes first."""
    params = _small_params(seed=4)
    params["dense_1"]["kernel"] *= 1e-3
    mask = masks.init_mask(params, PrunablePolicy())
    new = prune_global(params, mask, 0.05, seed=0)
    counts = masks.layer_counts(new)
    assert counts["dense_1/kernel"][0] < counts["dense_1/kernel"][1]
    assert all(r == t for name, (r, t) in counts.items() if name != "dense_1/kernel")


# ---- (f) which kernels are prunable -----------------------------------------------------
@pytest.mark.parametrize("policy, expected", [
    (PrunablePolicy(), {"conv_0", "conv_1", "dense_0", "dense_1", "output"}),
    (PrunablePolicy(output=False), {"conv_0", "conv_1", "dense_0", "dense_1"}),
    (PrunablePolicy(dense=False, output=False), {"conv_0", "conv_1"}),
    (PrunablePolicy(conv=False), {"dense_0", "dense_1", "output"}),
    (PrunablePolicy(conv=False, output=False), {"dense_0", "dense_1"}),
    (PrunablePolicy(shortcut=True), {"conv_0", "conv_1", "dense_0", "dense_1", "output",
                                     "shortcut_0"}),
])
def test_policy_selects_kernels(policy, expected):
    params = _small_params()
    mask = masks.init_mask(params, policy)
    assert {name.split("/")[0] for name, _ in masks.prunable_leaves(mask)} == expected
    for module, leaves in mask.items():
        assert leaves["bias"] is None, f"{module}: biases are never pruned"
        assert (leaves["kernel"] is not None) == (module in expected)
        if leaves["kernel"] is not None:
            assert leaves["kernel"].dtype == np.bool_ and leaves["kernel"].all()
            assert leaves["kernel"].shape == SMALL[module]


@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_unprunable_leaves_untouched(method):
    params = _small_params()
    mask = masks.init_mask(params, PrunablePolicy(conv=False))
    new = _prune(method, params, mask, seed=0)
    assert new["conv_0"]["kernel"] is None and new["dense_0"]["bias"] is None
    zeroed = masks.apply_mask(params, new)
    np.testing.assert_array_equal(zeroed["conv_1"]["kernel"], params["conv_1"]["kernel"])
    np.testing.assert_array_equal(zeroed["dense_0"]["bias"], params["dense_0"]["bias"])


@pytest.mark.parametrize("name, policy", [
    ("lenet300_100", PrunablePolicy(dense=False, output=False)),
    ("lenet300_100", PrunablePolicy(conv=True, dense=False, output=False, shortcut=True)),
    ("conv4", PrunablePolicy(conv=False, dense=False, output=False)),
])
def test_init_mask_raises_when_nothing_prunable(name, policy):
    with pytest.raises(ValueError, match="prunable set is empty"):
        masks.init_mask(_abstract_params(name), policy)
