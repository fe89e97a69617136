"""R_p (P3 App. G): exact values on hand-made layers, ~p for independent weights, 1 for
identical or sign-flipped weights, masks restricting the count, and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from jaxtickets.analysis.correlation import (correlation_indicator, kept_count,
                                            kernel_layers, top_indices)

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def _layers(rng, shapes=((200, 300),) * 3) -> dict[str, np.ndarray]:
    return {f"layer{i}": rng.normal(size=s).astype(np.float32)
            for i, s in enumerate(shapes)}


def _mask_with_counts(rng, shape, count) -> np.ndarray:
    """A random mask with exactly `count` True entries (so p * count can be integral)."""
    flat = np.zeros(int(np.prod(shape)), dtype=bool)
    flat[rng.choice(flat.size, size=count, replace=False)] = True
    return flat.reshape(shape)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 1.0])
def test_identical_dense_is_one(p):
    w = _layers(np.random.default_rng(0), ((20, 30), (4, 50), (3, 3, 4, 10)))
    assert correlation_indicator(w, w, p) == 1.0


def test_identical_masked_is_one():
    rng = np.random.default_rng(1)
    w = _layers(rng, ((20, 30), (40, 50)))
    masks = {"layer0": _mask_with_counts(rng, (20, 30), 240),
             "layer1": _mask_with_counts(rng, (40, 50), 1000)}
    for p in (0.25, 0.5, 0.75):
        assert correlation_indicator(w, w, p, masks) == 1.0


def test_identical_rounding_follows_the_paper_denominator():
    w = {"a": np.arange(1.0, 4.0)}  # N = 3, p = 0.5 keeps round(1.5) = 2 weights
    assert correlation_indicator(w, w, 0.5) == pytest.approx(2 / 1.5)


def test_negated_weights_is_one():
    w = _layers(np.random.default_rng(2), ((30, 40), (50,)))
    neg = {k: -v for k, v in w.items()}
    assert correlation_indicator(w, neg, 0.5) == 1.0


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_independent_gaussians_near_p(p):
    rng = np.random.default_rng(3)
    r = correlation_indicator(_layers(rng), _layers(rng), p)
    assert abs(r - p) < 0.02


def test_positive_and_negative_correlation():
    rng = np.random.default_rng(4)
    w = _layers(rng, ((100, 100),))
    near = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in w.items()}
    assert correlation_indicator(w, near, 0.5) > 0.9
    # Magnitudes ranked in reverse: the top half of one is the bottom half of the other.
    ranks = np.argsort(np.argsort(np.abs(w["layer0"]).ravel())).reshape(100, 100)
    reverse = {"layer0": (ranks.size - ranks).astype(np.float64)}
    assert correlation_indicator(w, reverse, 0.5) == 0.0
    assert correlation_indicator(w, reverse, 0.8) == pytest.approx(0.6 / 0.8)


def test_hand_computed_example():
    first = {"a": np.array([[5.0, -1.0], [0.5, 3.0]]),     # top-2: idx 0, 3
             "b": np.array([1.0, 2.0, -3.0, 4.0, 0.0, 0.1])}  # top-3: idx 3, 2, 1
    second = {"a": np.array([[0.1, 9.0], [0.2, -8.0]]),    # top-2: idx 1, 3 -> overlap 1
              "b": np.array([4.0, 3.0, 0.0, 5.0, 1.0, 2.0])}  # top-3: idx 3, 0, 1 -> 2
    # p = 0.5: k_a = 2, k_b = 3, overlap 1 + 2 = 3, denominator 0.5 * (4 + 6) = 5
    assert correlation_indicator(first, second, 0.5) == pytest.approx(3 / 5)
    # p = 0.25: k_a = round(1.0) = 1 (0 vs 1: none), k_b = round(1.5) = 2 ({3,2} vs
    # {3,0}: 1); denominator 0.25 * 10 = 2.5
    assert correlation_indicator(first, second, 0.25) == pytest.approx(1 / 2.5)


def test_masked_example_counts_only_remaining():
    first = {"a": np.array([100.0, 1.0, 2.0, 3.0, 4.0, -50.0])}
    second = {"a": np.array([-70.0, 4.0, 3.0, 2.0, 1.0, 60.0])}
    # Dense, p = 1/3: both keep {0, 5}: R = 2 / 2 = 1.
    assert correlation_indicator(first, second, 1 / 3) == pytest.approx(1.0)
    mask = {"a": np.array([False, True, True, True, True, False])}
    # Remaining 1..4 are reversed: top-2 {3, 4} vs {1, 2}: no overlap.
    assert correlation_indicator(first, second, 0.5, mask) == 0.0
    # p = 0.75 keeps 3 of 4: {2,3,4} & {1,2,3} = 2; denominator 0.75 * 4 = 3.
    assert correlation_indicator(first, second, 0.75, mask) == pytest.approx(2 / 3)


def test_ties_are_deterministic_and_exact():
    assert sorted(top_indices(np.array([1.0, 1.0, 1.0, 1.0]), 2)) == [0, 1]
    assert sorted(top_indices(np.array([2.0, 1.0, 2.0, 2.0, 0.0]), 2)) == [0, 2]
    assert top_indices(np.array([3.0]), 0).size == 0
    zeros = {"a": np.zeros(10)}
    assert correlation_indicator(zeros, zeros, 0.3) == pytest.approx(1.0)


def test_kept_count_rounds_half_up():
    assert [kept_count(0.5, n) for n in (0, 1, 2, 3, 5)] == [0, 1, 1, 2, 3]
    assert kept_count(0.1, 4) == 0  # 0 kept is allowed


@pytest.mark.parametrize("p", [0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_bad_p(p):
    w = {"a": np.ones(4)}
    with pytest.raises(ValueError, match="p="):
        correlation_indicator(w, w, p)


def test_mismatches_name_the_layer():
    w = {"a": np.ones(4), "b": np.ones((2, 3))}
    with pytest.raises(ValueError, match="'b'"):
        correlation_indicator(w, {"a": np.ones(4), "b": np.ones((3, 2))}, 0.5)
    with pytest.raises(ValueError, match="'c'"):
        correlation_indicator(w, {"a": np.ones(4), "c": np.ones((2, 3))}, 0.5)
    with pytest.raises(ValueError, match="'a'"):
        correlation_indicator(w, w, 0.5, {"a": np.ones(3, bool),
                                          "b": np.ones((2, 3), bool)})
    with pytest.raises(ValueError, match="'b'"):
        correlation_indicator(w, w, 0.5, {"a": np.ones(4, bool), "b": np.ones((2, 3))})
    with pytest.raises(ValueError, match="no remaining"):
        correlation_indicator(w, w, 0.5, {k: np.zeros(v.shape, bool) for k, v in w.items()})


def test_kernel_layers_from_param_trees():
    rng = np.random.default_rng(5)
    params = {"Conv_0": {"kernel": rng.normal(size=(3, 3, 1, 4)), "bias": np.zeros(4)},
              "Dense_0": {"kernel": rng.normal(size=(8, 6)), "bias": np.zeros(6)}}
    weights, masks = kernel_layers(params)
    assert sorted(weights) == ["Conv_0/kernel", "Dense_0/kernel"] and masks is None
    mask = {"Conv_0": {"kernel": None, "bias": None},
            "Dense_0": {"kernel": rng.random((8, 6)) < 0.5, "bias": None}}
    weights, masks = kernel_layers(params, mask)
    assert list(weights) == ["Dense_0/kernel"] and list(masks) == ["Dense_0/kernel"]
    assert weights["Dense_0/kernel"] is not None
    np.testing.assert_array_equal(masks["Dense_0/kernel"], mask["Dense_0"]["kernel"])
    other, _ = kernel_layers({k: {n: -a for n, a in v.items()} for k, v in params.items()},
                             mask)
    assert correlation_indicator(weights, other, 1.0, masks) == 1.0
    with pytest.raises(ValueError, match="Extra"):
        kernel_layers(params, {**mask, "Extra": {"kernel": np.ones(3, bool)}})
