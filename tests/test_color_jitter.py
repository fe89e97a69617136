"""Colour jitter on streamed training images only where a config asks for it (P0 App. A:
crops and flips for every ImageNet run, colour augmentation for the 1% subsets), through
the experiment's own code path on a small imagenet2012-format dataset made here."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_jpeg_imagenet, with_overrides
from jaxtickets.config_schema import add_source, base_config, validate
from jaxtickets.data import augment
from jaxtickets.data.tfds_io import open_data_source
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment
from jaxtickets.parallel import batch_sharded, make_mesh
from jaxtickets.training.batches import BatchOrder

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

SIZE, BATCH, SEED = 16, 4, 3
OFF = augment.ImageRecipe(size=SIZE, jitter=0.0)
ON = augment.ImageRecipe(size=SIZE, jitter=augment.JITTER)


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory):
    return make_jpeg_imagenet(tmp_path_factory.mktemp("tfds"), 24, 6)


@pytest.fixture(scope="module")
def records(jpeg_dir):
    return open_data_source("imagenet2012", "train", jpeg_dir)


def streamed_config(data_dir: str, **overrides):
    config = base_config()
    config.model.name = "lenet300_100"
    config.data.dataset = "imagenet2012"
    config.data.data_dir = data_dir
    config.data.validation_size = 4
    config.data.image_size = SIZE
    config.train.batch_size = BATCH
    config.train.duration = "2st"
    config.train.eval_every = "1st"
    config.train.checkpoint_every = "1st"
    config.train.eval_batch_size = BATCH
    config.pruning.levels = 1
    config.runtime.reader_threads = 2
    config.runtime.plot = False
    return with_overrides(config, **overrides)


def delivered(split) -> np.ndarray:
    """The first training batch the split streams (uint8 [BATCH, SIZE, SIZE, 3])."""
    order = BatchOrder(len(split), BATCH, seed=SEED)
    images, _ = next(split.train_batches(batch_sharded(make_mesh(BATCH)), order, SEED, 0, 1))
    return np.asarray(images)


def expected(split, records, recipe) -> np.ndarray:
    """That batch augmented here by `recipe`, from the same per-image seeds."""
    order = BatchOrder(len(split), BATCH, seed=SEED)
    return np.stack([augment.train_image(records[int(split.indices[order.index(0, row)])]
                                         ["image"], recipe,
                                         np.random.default_rng([SEED, 0, row]))
                     for row in range(BATCH)])


def assert_jittered(split, records, jittered: bool) -> None:
    """The split streams exactly the jittered (or the unjittered) augmentation of its
    records, and not the other one."""
    got = delivered(split)
    np.testing.assert_array_equal(got, expected(split, records, ON if jittered else OFF))
    assert not np.array_equal(got, expected(split, records, OFF if jittered else ON))


def assert_evaluation_unjittered(splits, data_dir: str) -> None:
    """Validation and test images are the plain centre crops, whatever the training split
    does, and their recipes carry no jitter."""
    mesh = make_mesh(BATCH)
    test_records = open_data_source("imagenet2012", "validation", data_dir)
    train_records = open_data_source("imagenet2012", "train", data_dir)
    for split, source in ((splits.validation, train_records), (splits.test, test_records)):
        assert split.recipe.jitter == 0
        images, _, weights = next(split.eval_batches(batch_sharded(mesh), BATCH))
        for row in range(int(np.asarray(weights).sum())):
            np.testing.assert_array_equal(
                np.asarray(images)[row],
                augment.eval_image(source[int(split.indices[row])]["image"], OFF))


def test_jitter_off_keeps_the_crop_and_flip_and_draws_nothing():
    """Jitter draws after the rotation, crop and flip: an image augmented with jitter off
    is the one with jitter on before its colours change, and the jittered image is that
    image jittered with the very next draws (so jitter off consumed no draws of its own)."""
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for seed in range(20):
        for recipe in (OFF, augment.ImageRecipe(size=SIZE, jitter=0.0, rotation_degrees=15)):
            rng = np.random.default_rng(seed)
            plain = augment.train_image(image, recipe, rng)
            on = augment.train_image(image, augment.ImageRecipe(
                size=SIZE, jitter=augment.JITTER, rotation_degrees=recipe.rotation_degrees),
                np.random.default_rng(seed))
            np.testing.assert_array_equal(on, augment._jitter(plain, augment.JITTER, rng))
            assert not np.array_equal(on, plain)


def test_default_config_streams_crops_and_flips_only(jpeg_dir, records, tmp_path):
    exp = Experiment(streamed_config(jpeg_dir), tmp_path / "run")
    assert exp.config.data.color_jitter is False
    assert exp.evaluation.splits.train.recipe.jitter == 0
    assert_jittered(exp.evaluation.splits.train, records, jittered=False)
    assert_evaluation_unjittered(exp.evaluation.splits, jpeg_dir)


def test_data_color_jitter_jitters_training_images_not_evaluation_ones(jpeg_dir, records,
                                                                      tmp_path):
    exp = Experiment(streamed_config(jpeg_dir, data__color_jitter=True), tmp_path / "run")
    assert exp.evaluation.splits.train.recipe == ON
    assert_jittered(exp.evaluation.splits.train, records, jittered=True)
    assert_evaluation_unjittered(exp.evaluation.splits, jpeg_dir)


@pytest.mark.parametrize("evaluation_jitters", [False, True])
def test_a_source_jitters_by_its_own_key_and_leaves_the_evaluation_alone(
        jpeg_dir, records, tmp_path, evaluation_jitters):
    """A source that sets color_jitter opposite to data.color_jitter gets its own copy of
    the training split with its own recipe; the evaluation keeps its images, and a
    source that inherits (None) stays the evaluation's run, sharing its splits."""
    config = streamed_config(jpeg_dir, data__color_jitter=evaluation_jitters)
    add_source(config, "own", color_jitter=not evaluation_jitters)
    add_source(config, "inherits")
    exp = Experiment(config, tmp_path / "run")
    by_name = {s.name: s for s in exp.sources}
    own, inherits = by_name["own"], by_name["inherits"]
    assert inherits.is_evaluation and inherits.setup is exp.evaluation
    assert not own.is_evaluation
    assert_jittered(own.setup.splits.train, records, jittered=not evaluation_jitters)
    assert_jittered(exp.evaluation.splits.train, records, jittered=evaluation_jitters)
    np.testing.assert_array_equal(own.setup.splits.train.indices,
                                  exp.evaluation.splits.train.indices)
    assert_evaluation_unjittered(own.setup.splits, jpeg_dir)


def in_memory_config(**overrides):
    config = base_config()  # MNIST, augmented on the device
    config.model.name = "lenet300_100"
    return with_overrides(config, **overrides)


def test_jitter_asked_of_in_memory_data_only_is_refused():
    with pytest.raises(ConfigError, match=r"^data\.color_jitter: .*streamed"):
        validate(in_memory_config(data__color_jitter=True))
    config = in_memory_config()
    add_source(config, "jit", color_jitter=True)
    with pytest.raises(ConfigError, match=r"^generation\.jit\.color_jitter: .*mnist"):
        validate(config)
    # Where every streamed split sets its own, data.color_jitter reaches nothing either.
    config = in_memory_config(data__color_jitter=True)
    add_source(config, "imagenet", dataset="imagenet2012", color_jitter=False)
    with pytest.raises(ConfigError, match=r"^data\.color_jitter: "):
        validate(config)
    # An in-memory source of a streamed evaluation: its own jitter would do nothing.
    config = streamed_config("")
    add_source(config, "cifar", dataset="cifar10", color_jitter=True)
    with pytest.raises(ConfigError, match=r"^generation\.cifar\.color_jitter: .*cifar10"):
        validate(config)


def test_jitter_reaching_a_streamed_split_is_accepted():
    validate(streamed_config("", data__color_jitter=True))
    config = in_memory_config(data__color_jitter=True)  # a streamed source inherits it
    add_source(config, "imagenet", dataset="imagenet2012")
    validate(config)
    config = in_memory_config()
    add_source(config, "imagenet", dataset="imagenet2012", color_jitter=True)
    validate(config)
