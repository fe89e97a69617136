"""Data selections, P0 Table 1's rewind conversions, head transfer and the random
baselines' mask statistics (issue 3, must-show 1)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxtickets import durations
from jaxtickets.data import selections
from jaxtickets.data.datasets import Split, Splits
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.sources import transfer_mask, transfer_weights
from jaxtickets.sparsity import baselines
from jaxtickets.sparsity.masks import PrunablePolicy, layer_counts, remaining_and_total

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def _split(counts=(50, 31, 7, 12), size=4):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int32)
    order = np.random.default_rng(0).permutation(labels.size)
    labels = labels[order]
    images = np.arange(labels.size, dtype=np.int64)[:, None, None, None] * np.ones(
        (1, size, size, 1), np.int64)
    return Split((images % 256).astype(np.uint8), labels)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.5, 1.0])
def test_sample_fraction_keeps_exact_per_class_counts(fraction):
    split = _split()
    chosen = selections.sample_fraction(split, fraction, seed=4)
    for cls, n in enumerate((50, 31, 7, 12)):
        expected = max(1, int(np.floor(fraction * n + 0.5)))
        assert np.sum(chosen.labels == cls) == expected
    again = selections.sample_fraction(split, fraction, seed=4)
    np.testing.assert_array_equal(chosen.images, again.images)  # seeded


def test_class_subset_keeps_all_images_of_the_chosen_classes_relabelled():
    split = _split()
    splits = Splits("toy", split, split, split, 4)
    sub = selections.class_subset(splits, 0.5, seed=1)
    keep = selections.chosen_classes(4, 0.5, seed=1)
    assert sub.num_classes == 2 and keep.size == 2
    for new, old in enumerate(keep):
        assert np.sum(sub.train.labels == new) == np.sum(split.labels == old)
    assert set(sub.train.labels.tolist()) == {0, 1}
    assert len(sub.test) == sum(np.sum(split.labels == c) for c in keep)
    assert selections.class_subset(splits, 1.0, 1) is splits


def test_stratified_halves_are_disjoint_and_cover_every_class():
    split = _split()
    a, b = (selections.half(split, h, seed=2) for h in "ab")
    ids_a, ids_b = set(a.images[:, 0, 0, 0].tolist()), set(b.images[:, 0, 0, 0].tolist())
    assert len(a) + len(b) == len(split)
    for cls, n in enumerate((50, 31, 7, 12)):
        assert np.sum(a.labels == cls) == (n + 1) // 2 and np.sum(b.labels == cls) == n // 2
    with pytest.raises(ConfigError, match="half"):
        selections.half(split, "c", 0)
    assert ids_a or ids_b


def test_shuffled_labels_keep_the_class_counts_but_not_the_assignment():
    split = _split()
    shuffled = selections.shuffled_labels(split, seed=3)
    np.testing.assert_array_equal(np.bincount(shuffled.labels), np.bincount(split.labels))
    np.testing.assert_array_equal(shuffled.images, split.images)
    assert np.mean(shuffled.labels == split.labels) < 0.5


def test_mark_unlabelled_keeps_a_per_class_fraction_of_labels():
    split = _split()
    marked = selections.mark_unlabelled(split, 0.1, seed=0)
    labelled = marked.labels >= 0
    np.testing.assert_array_equal(marked.labels[labelled], split.labels[labelled])
    for cls, n in enumerate((50, 31, 7, 12)):
        assert np.sum(marked.labels == cls) == max(1, int(np.floor(0.1 * n + 0.5)))
    assert np.all(marked.labels[~labelled] == selections.UNLABELLED)


def test_adapt_images_between_mnist_and_cifar_shapes():
    gray = np.full((2, 28, 28, 1), 200, np.uint8)
    out = selections.adapt_images(gray, (32, 32, 3))
    assert out.shape == (2, 32, 32, 3)
    assert np.all(out[:, 2:30, 2:30] == 200) and np.all(out[:, :2] == 0)
    colour = np.full((2, 32, 32, 3), 90, np.uint8)
    back = selections.adapt_images(colour, (28, 28, 1))
    assert back.shape == (2, 28, 28, 1) and np.all(back == 90)
    assert selections.adapted_normalization(((0.5,), (0.2,)), 3) == ((0.5,) * 3, (0.2,) * 3)


def test_unit_normalization_feeds_pixels_over_255():
    """data.normalize='unit' (P4's code): the network sees pixel / 255, per channel."""
    from conftest import smoke_config
    from jaxtickets.data.datasets import NORMALIZATION, normalization
    from jaxtickets.experiment.sources import input_spec

    assert normalization("cifar10", "unit") == ((0.0,) * 3, (1.0,) * 3)
    assert normalization("mnist", "standard") == NORMALIZATION["mnist"]
    config = smoke_config(data__normalize="unit")
    spec = input_spec(config, "mnist", augment=False)
    assert (spec.mean, spec.std) == ((0.0,), (1.0,))
    config.data.normalize = "standard"
    assert input_spec(config, "mnist", augment=False).mean == NORMALIZATION["mnist"][0]


@pytest.mark.parametrize("images,batch,epochs,budget_epochs,steps,percent", [
    # P0 Table 1: ~3 x 1,281,167 samples seen, with App. A's batch sizes and budgets.
    (1_281_167, 1536, 3, 90, 2500, 3.3),
    (int(0.3 * 1_281_167), 1536, 10, 200, 2500, 5.0),
    (int(0.1 * 1_281_167), 768, 30, 200, 5000, 15.0),
    (int(0.01 * 1_281_167), 768, 300, 1000, 5000, 30.0),
])
def test_rewind_units_reproduce_p0_table_1(images, batch, epochs, budget_epochs, steps,
                                           percent):
    spe = images // batch
    total = durations.total_steps(f"{budget_epochs}ep", spe, batch, "train.duration")
    conv = durations.StepConverter(spe, batch, total)
    by_samples = conv.to_steps(f"{3 * 1_281_167}ex")
    assert abs(by_samples - steps) / steps < 0.01       # 'gradient updates' column
    units = conv.describe(by_samples)
    # P0 rounds its columns ('~', '3.3%'); epochs here drop the last partial batch, so the
    # 1% subset (16.7 -> 16 steps per epoch) sees 312.8 epochs where P0 writes 300.
    assert abs(units["epochs"] - epochs) / epochs < 0.05   # '# epochs' column
    assert abs(units["percent"] - percent) / percent < 0.05  # '% of training' column
    assert abs(units["examples"] - 3 * 1_281_167) <= batch


def _params(out=10):
    rng = np.random.default_rng(0)
    return {"hidden_0": {"kernel": rng.normal(size=(6, 5)), "bias": np.zeros(5)},
            "output": {"kernel": rng.normal(size=(5, out)), "bias": np.zeros(out)}}


def test_head_is_replaced_only_when_its_shape_differs():
    generated = {"params": _params(out=4), "batch_stats": {}}
    evaluation = {"params": _params(out=10), "batch_stats": {}}
    evaluation["params"]["hidden_0"]["kernel"] = evaluation["params"]["hidden_0"]["kernel"] + 1
    weights, replaced = transfer_weights(generated, evaluation)
    assert replaced
    np.testing.assert_array_equal(weights["params"]["hidden_0"]["kernel"],
                                  generated["params"]["hidden_0"]["kernel"])
    np.testing.assert_array_equal(weights["params"]["output"]["kernel"],
                                  evaluation["params"]["output"]["kernel"])
    same = {"params": _params(out=10), "batch_stats": {}}
    weights, replaced = transfer_weights(same, evaluation)
    assert not replaced and weights["params"]["output"]["kernel"] is same["params"]["output"][
        "kernel"]
    bad = {"params": {**_params(), "hidden_0": {"kernel": np.zeros((7, 5)),
                                                "bias": np.zeros(5)}}, "batch_stats": {}}
    with pytest.raises(ValueError, match="only the output layer"):
        transfer_weights(bad, evaluation)


def test_a_replaced_head_is_unpruned():
    gen_mask = {"hidden_0": {"kernel": np.random.default_rng(0).random((6, 5)) > 0.5,
                             "bias": None},
                "output": {"kernel": np.zeros((5, 4), bool), "bias": None}}
    mask = transfer_mask(gen_mask, _params(out=10), PrunablePolicy(output=True))
    assert mask["output"]["kernel"].shape == (5, 10) and mask["output"]["kernel"].all()
    assert mask["hidden_0"]["kernel"] is gen_mask["hidden_0"]["kernel"]
    unprunable = transfer_mask({**gen_mask, "output": {"kernel": None, "bias": None}},
                               _params(out=10), PrunablePolicy(output=False))
    assert unprunable["output"]["kernel"] is None


def _ticket_mask():
    rng = np.random.default_rng(5)
    return {"a": {"kernel": rng.random((40, 30)) < 0.1, "bias": None},
            "b": {"kernel": rng.random((30, 20)) < 0.6, "bias": None},
            "output": {"kernel": None, "bias": None}}


def test_global_permutation_keeps_the_total_count_only():
    mask = _ticket_mask()
    permuted = baselines.permute_global(mask, seed=0)
    assert remaining_and_total(permuted) == remaining_and_total(mask)
    assert permuted["output"]["kernel"] is None
    before, after = layer_counts(mask), layer_counts(permuted)
    assert before["a/kernel"][0] != after["a/kernel"][0]  # layer statistics not kept
    density = remaining_and_total(mask)[0] / remaining_and_total(mask)[1]
    for name, (kept, total) in after.items():  # uniform over the prunable set
        assert abs(kept / total - density) < 0.08, name
    np.testing.assert_array_equal(baselines.permute_global(mask, 0)["a"]["kernel"],
                                  permuted["a"]["kernel"])


def test_local_permutation_keeps_every_layer_count():
    mask = _ticket_mask()
    permuted = baselines.permute_local(mask, seed=0)
    assert layer_counts(permuted) == layer_counts(mask)
    assert not np.array_equal(permuted["a"]["kernel"], mask["a"]["kernel"])
