"""data.random_labels_fraction (label noise) and data.blur_factor (blur)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import smoke_config
from jaxtickets import config_schema
from jaxtickets.config_schema import add_source, identity, validate
from jaxtickets.data import selections
from jaxtickets.data.augment import ImageRecipe, blur, eval_image, train_image
from jaxtickets.data.datasets import Split, Splits
from jaxtickets.errors import ConfigError
from jaxtickets.experiment import sources


def _split(n: int = 1000, classes: int = 10, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.int32)
    return Split(np.zeros((n, 2, 2, 1), np.uint8), labels)


# ---- label noise ---------------------------------------------------------------------

def test_fraction_chooses_exactly_round_count_seeded():
    split = _split(1001)
    chosen, donors = selections.random_label_sources(len(split), 0.3, 7)
    assert len(chosen) == round(0.3 * 1001) == 300
    assert np.all(np.diff(chosen) > 0)                      # distinct, sorted
    assert sorted(donors.tolist()) == chosen.tolist()       # a permutation of the chosen
    noisy = selections.random_labels(split, 0.3, 7)
    changed = np.flatnonzero(noisy.labels != split.labels)
    assert set(changed.tolist()) <= set(chosen.tolist())    # only chosen images change
    assert 0.5 * 300 < len(changed) <= 300                  # most of them do (10 classes)
    np.testing.assert_array_equal(noisy.labels[chosen], split.labels[donors])
    # class counts kept exactly
    np.testing.assert_array_equal(np.bincount(noisy.labels, minlength=10),
                                  np.bincount(split.labels, minlength=10))
    # same seed, same labels; another seed, other labels
    np.testing.assert_array_equal(selections.random_labels(split, 0.3, 7).labels, noisy.labels)
    assert not np.array_equal(selections.random_labels(split, 0.3, 8).labels, noisy.labels)
    # halves round up; 0 is the split itself
    assert len(selections.random_label_sources(5, 0.5, 0)[0]) == 3
    assert selections.random_labels(split, 0.0, 7) is split


def test_fraction_one_is_shuffled_labels():
    split = _split(997)
    for seed in (0, 3, 12345):
        np.testing.assert_array_equal(selections.random_labels(split, 1.0, seed).labels,
                                      selections.shuffled_labels(split, seed).labels)


def _loaded(**overrides):
    config = smoke_config(**overrides)
    validate(config)
    return sources.load_evaluation_data(config, None)


def test_experiment_noise_touches_training_labels_only(capsys):
    plain, _ = _loaded()
    noisy, full = _loaded(data__random_labels_fraction=0.3)
    out = capsys.readouterr().out
    n = len(plain.train)
    changed = np.flatnonzero(noisy.train.labels != plain.train.labels)
    assert 0 < len(changed) <= round(0.3 * n)
    np.testing.assert_array_equal(np.bincount(noisy.train.labels, minlength=10),
                                  np.bincount(plain.train.labels, minlength=10))
    np.testing.assert_array_equal(noisy.train.images, plain.train.images)
    for name in ("validation", "test"):
        np.testing.assert_array_equal(getattr(noisy, name).labels, getattr(plain, name).labels)
    np.testing.assert_array_equal(full.train.labels, plain.train.labels)  # before noise
    assert f"{round(0.3 * n)} of {n} training labels" in out and "min " in out
    again, _ = _loaded(data__random_labels_fraction=0.3)
    np.testing.assert_array_equal(again.train.labels, noisy.train.labels)
    assert sources.label_noise_seed(0) != sources.label_noise_seed(1)


def test_experiment_fraction_one_equals_shuffled_labels_source():
    """1.0 gives the labels a shuffled_labels source on the same data trains on."""
    noisy, _ = _loaded(data__random_labels_fraction=1.0)
    config = smoke_config()
    add_source(config, "shuffled", task="shuffled_labels")
    validate(config)
    evaluation, full = sources.load_evaluation_data(config, None)
    shuffled, _ = sources.source_splits(config, "shuffled", evaluation, full, None)
    np.testing.assert_array_equal(noisy.train.labels, shuffled.train.labels)
    assert not np.array_equal(noisy.train.labels, evaluation.train.labels)


# ---- blur ----------------------------------------------------------------------------

def test_blur_factor_two_by_hand():
    image = np.array([[0, 2, 10, 10],
                      [4, 6, 20, 21],
                      [1, 1, 255, 255],
                      [1, 2, 255, 254]], np.uint8)[..., None]
    # block means: 3, 15.25 -> 15; 1.25 -> 1, 254.75 -> 255
    want = np.array([[3, 3, 15, 15],
                     [3, 3, 15, 15],
                     [1, 1, 255, 255],
                     [1, 1, 255, 255]], np.uint8)[..., None]
    np.testing.assert_array_equal(blur(image, 2), want)
    np.testing.assert_array_equal(blur(image[None], 2), want[None])  # batched alike
    assert blur(image, 2).dtype == np.uint8
    assert blur(image, 1) is image
    with pytest.raises(ConfigError, match="data.blur_factor"):
        blur(image, 3)


def test_blur_splits_all_three_splits():
    rng = np.random.default_rng(0)

    def one():
        return Split(rng.integers(0, 256, (3, 4, 4, 1)).astype(np.uint8),
                     np.arange(3, dtype=np.int32))

    splits = Splits("x", one(), one(), one(), 3)
    blurred = selections.blur_splits(splits, 2)
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(blurred, name).images,
                                      blur(getattr(splits, name).images, 2))
        np.testing.assert_array_equal(getattr(blurred, name).labels,
                                      getattr(splits, name).labels)
    assert selections.blur_splits(splits, 1) is splits


def test_experiment_blurs_in_memory_images():
    plain, _ = _loaded()
    blurred, full = _loaded(data__blur_factor=4)
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(blurred, name).images,
                                      blur(getattr(plain, name).images, 4))
    np.testing.assert_array_equal(full.test.images, blurred.test.images)


def test_streamed_transform_blurs_after_the_crop():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 45, 3)).astype(np.uint8)
    sharp, soft = ImageRecipe(size=16, jitter=0.0), ImageRecipe(size=16, jitter=0.0, blur=4)
    np.testing.assert_array_equal(eval_image(image, soft), blur(eval_image(image, sharp), 4))
    np.testing.assert_array_equal(
        train_image(image, soft, np.random.default_rng(5)),
        blur(train_image(image, sharp, np.random.default_rng(5)), 4))
    assert not np.array_equal(eval_image(image, soft), eval_image(image, sharp))
    # the experiment's recipe carries the factor for data.dataset only
    config = config_schema.base_config()
    config.data.dataset, config.data.image_size, config.data.blur_factor = (
        "imagenet2012", 32, 2)
    assert sources.image_recipe(config).blur == 2
    assert sources.image_recipe(config, dataset="places365_small").blur == 1


# ---- config --------------------------------------------------------------------------

def test_config_checks_name_the_key():
    for key, value in (("random_labels_fraction", 1.5), ("random_labels_fraction", -0.1),
                       ("blur_factor", 0), ("blur_factor", 3)):  # 28 % 3 != 0
        config = smoke_config(**{f"data__{key}": value})
        with pytest.raises(ConfigError, match=f"data.{key}"):
            validate(config)
    config = smoke_config(data__dataset="imagenet2012", data__source="tfds",
                          data__image_size=30, data__blur_factor=4)
    with pytest.raises(ConfigError, match="data.blur_factor"):
        config_schema._validate_noise_blur(config.data)
    validate(smoke_config(data__blur_factor=7, data__random_labels_fraction=1.0))


def test_neutral_values_keep_the_identity():
    config = smoke_config()
    base = identity(config)
    assert identity(smoke_config(data__random_labels_fraction=0.0, data__blur_factor=1)) == base
    assert identity(smoke_config(data__random_labels_fraction=0.1)) != base
    assert identity(smoke_config(data__blur_factor=2)) != base


# ---- end to end ----------------------------------------------------------------------

def test_smoke_run_with_noise_and_blur(tmp_path):
    from jaxtickets.experiment.driver import run_experiment

    overrides = dict(pruning__levels=1, branches=("ticket",), train__duration="100st",
                     train__checkpoint_every="100st")
    plain = run_experiment(smoke_config(**overrides), tmp_path / "plain")
    changed = run_experiment(smoke_config(**overrides, data__random_labels_fraction=0.5,
                                          data__blur_factor=2), tmp_path / "changed")
    assert len(plain["rows"]) == len(changed["rows"]) == 2

    def numbers(results):
        return [{k: v for k, v in row.items() if isinstance(v, float) and "second" not in k}
                for row in results["rows"]]

    assert numbers(plain) != numbers(changed)
