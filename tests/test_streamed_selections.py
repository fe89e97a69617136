"""Data selections on streamed datasets (P0's low-shot, class-subset, S4L and shuffled
ImageNet sources) and transfers between streamed and in-memory datasets (P0 Table 8,
P1's ImageNet sources), on imagenet2012-format JPEG files and real CIFAR-10 made here."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import HAVE_CIFAR, make_jpeg_imagenet, needs_cifar, shared_to_tfds, with_overrides
from jaxtickets.config_schema import base_config
from jaxtickets.data import label_index, selections
from jaxtickets.data.augment import ImageRecipe
from jaxtickets.data.datasets import Split
from jaxtickets.data.pipeline import load_streamed_splits
from jaxtickets.data.tfds_io import open_data_source
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment, run_experiment
from jaxtickets.experiment.presets import add_source
from jaxtickets.parallel import make_mesh
from jaxtickets.training.batches import BatchOrder

from jax.sharding import NamedSharding, PartitionSpec

N_TRAIN, N_TEST, CLASSES = 60, 16, 1000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """imagenet2012 (JPEG files, random labels) and the first CIFAR-10 images in one dir."""
    path = tmp_path_factory.mktemp("tfds")
    make_jpeg_imagenet(path, N_TRAIN, N_TEST)
    if HAVE_CIFAR:
        shared_to_tfds("cifar10", path, 200, 60)
    return str(path)


def record_labels(data_dir, split):
    records = open_data_source("imagenet2012", split, data_dir)
    return np.array([records[i]["label"] for i in range(len(records))], np.int32)


def test_label_index_is_read_once_kept_and_read_again_when_bad(data_dir, tmp_path, capsys,
                                                               monkeypatch):
    truth = record_labels(data_dir, "train")
    labels = label_index.cached_labels("imagenet2012", "train", data_dir, N_TRAIN, tmp_path)
    np.testing.assert_array_equal(labels, truth)
    path = label_index.cache_path(tmp_path, "imagenet2012", "train")
    assert path.stat().st_size == 128 + 4 * N_TRAIN  # the .npy header, 4 bytes a label
    calls = []
    real = label_index.read_labels
    monkeypatch.setattr(label_index, "read_labels",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    label_index.cached_labels("imagenet2012", "train", data_dir, N_TRAIN, tmp_path)
    assert calls == []  # served from the index
    for bad in (b"not an npy file", None):
        if bad is None:
            np.save(path, truth[:-1])  # another length: another split or dataset version
        else:
            path.write_bytes(bad)
        again = label_index.cached_labels("imagenet2012", "train", data_dir, N_TRAIN, tmp_path)
        np.testing.assert_array_equal(again, truth)
        assert "reading the labels again" in capsys.readouterr().out
    assert len(calls) == 2


def test_labels_are_read_in_order_across_chunks_and_threads(data_dir, monkeypatch):
    monkeypatch.setattr(label_index, "READ_CHUNK", 7)  # 60 records: 9 chunks, 3 threads
    records = label_index._label_records("imagenet2012", "train", data_dir)
    assert isinstance(records[0]["image"], bytes)  # images left encoded
    np.testing.assert_array_equal(label_index.read_labels(records, threads=3),
                                  record_labels(data_dir, "train"))


def test_label_index_works_under_tfds_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=20):
        records = open_data_source("imagenet2012", "train")
        truth = [records[i]["label"] for i in range(20)]
        labels = label_index.cached_labels("imagenet2012", "train", None, 20, tmp_path)
    np.testing.assert_array_equal(labels, truth)


def test_streamed_and_in_memory_selections_choose_the_same_images(data_dir, tmp_path):
    splits = load_streamed_splits("imagenet2012", data_dir, 10, 0, ImageRecipe(size=16),
                                  threads=2, label_cache=tmp_path)
    streamed = splits.train
    # In memory: each "image" is the record's own index, so take() shows what was chosen.
    memory = Split(streamed.indices.reshape(-1, 1, 1, 1), streamed.labels.copy())

    def same(a, b):
        np.testing.assert_array_equal(a.indices, b.images.reshape(-1))
        np.testing.assert_array_equal(a.labels, b.labels)

    for f in (0.5, 0.25, 1.0):
        same(selections.sample_fraction(streamed, f, 3), selections.sample_fraction(memory, f, 3))
    for which in ("a", "b"):
        same(selections.half(streamed, which, 4), selections.half(memory, which, 4))
    same(selections.shuffled_labels(streamed, 5), selections.shuffled_labels(memory, 5))
    unlabelled = selections.mark_unlabelled(streamed, 0.5, 6)
    same(unlabelled, selections.mark_unlabelled(memory, 0.5, 6))
    assert (unlabelled.labels == selections.UNLABELLED).any()
    subset = selections.class_subset(splits, 0.3, 7)
    keep = selections.chosen_classes(CLASSES, 0.3, 7)
    assert subset.num_classes == keep.size == 300
    for name in ("train", "validation", "test"):
        full, part = getattr(splits, name), getattr(subset, name)
        inside = np.isin(full.labels, keep)
        np.testing.assert_array_equal(part.indices, full.indices[inside])
        np.testing.assert_array_equal(keep[part.labels], full.labels[inside])


def test_batches_of_a_selection_carry_its_labels(data_dir, tmp_path):
    splits = load_streamed_splits("imagenet2012", data_dir, 10, 0, ImageRecipe(size=16),
                                  threads=2, label_cache=tmp_path)
    subset = selections.class_subset(splits, 0.5, 1)
    train = selections.shuffled_labels(subset.train, 2)
    mesh = make_mesh(4)
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    order = BatchOrder(len(train), 4, seed=0)
    for step, (_, labels) in enumerate(train.train_batches(sharding, order, 0, 0, 3)):
        expected = [train.labels[order.index(step, row)] for row in range(4)]
        np.testing.assert_array_equal(np.asarray(labels), expected)
    seen = np.concatenate([np.asarray(labels)[np.asarray(weights) > 0] for _, labels, weights
                           in subset.test.eval_batches(sharding, 4)])
    np.testing.assert_array_equal(seen, subset.test.labels)
    assert seen.max() < subset.num_classes


def streamed_config(data_dir: str, **overrides):
    config = base_config()
    config.model.name = "lenet300_100"
    config.data.dataset = "imagenet2012"
    config.data.data_dir = data_dir
    config.data.validation_size = 10
    config.data.image_size = 16
    config.train.batch_size = 4
    config.train.duration = "4st"
    config.train.eval_every = config.train.checkpoint_every = "2st"
    config.train.eval_batch_size = 8
    config.train.learning_rate = 1e-3
    config.pruning.levels = 1
    config.pruning.evaluate_levels = (1,)
    config.branches = ("ticket",)
    config.runtime.steps_per_call = 1
    config.runtime.reader_threads = 2
    config.runtime.plot = False
    return with_overrides(config, **overrides)


def test_low_shot_class_subset_semisup_and_shuffled_sources_train_on_streamed_images(
        data_dir, tmp_path):
    config = streamed_config(data_dir)
    add_source(config, "few", sample_fraction=0.5)
    add_source(config, "classes", class_fraction=0.3)
    add_source(config, "s4l", task="semisup", labelled_fraction=0.5)
    add_source(config, "shuffled", task="shuffled_labels", augment=False)
    results = run_experiment(config, tmp_path / "run")
    rows = {r["source"]: r for r in results["rows"]}
    train_labels = record_labels(data_dir, "train")
    held_out = np.sort(np.random.default_rng(0).permutation(N_TRAIN)[:10])
    rest = np.setdiff1d(np.arange(N_TRAIN), held_out)
    keep = np.isin(train_labels[rest], selections.chosen_classes(CLASSES, 0.3, selections_seed(
        0)))
    assert set(rows) == {"labels:imagenet2012/50%samples", "labels:imagenet2012/300classes",
                         "semisup:imagenet2012/50%labelled", "shuffled_labels:imagenet2012"}
    summaries = results["sources"]
    assert summaries["classes"]["train_images"] == int(keep.sum())
    assert summaries["classes"]["classes"] == 300
    assert summaries["few"]["train_images"] < len(rest)
    s4l = summaries["s4l"]
    assert s4l["train_images"] == len(rest) and 0 < s4l["labelled_images"] < len(rest)
    assert all(r["level"] == 1 and r["branch"] == "ticket" for r in results["rows"])
    assert (tmp_path / "run" / "label_index").is_dir()


def selections_seed(split_seed: int) -> int:
    from jaxtickets.experiment.sources import CLASS_STREAM, _seed

    return _seed(split_seed, CLASS_STREAM)


@needs_cifar
def test_tickets_transfer_between_streamed_and_in_memory_datasets(data_dir, tmp_path):
    """P0 Table 8's CIFAR-10 ticket evaluated on ImageNet, and P1's ImageNet ticket
    evaluated on CIFAR-10: each source trains at its own resolution (16-pixel crops,
    32 x 32), ResNet-20's global pooling takes both."""
    to_imagenet = streamed_config(data_dir, model__name="resnet20")
    add_source(to_imagenet, "c10", dataset="cifar10", pad_crop=2, flip=True)
    to_cifar = streamed_config(data_dir, model__name="resnet20", data__dataset="cifar10",
                               data__pad_crop=4, data__flip=True)
    add_source(to_cifar, "imnet", dataset="imagenet2012")
    for config, name, source in ((to_imagenet, "to_imagenet", "labels:cifar10"),
                                 (to_cifar, "to_cifar", "labels:imagenet2012")):
        exp = Experiment(config, tmp_path / name)
        (src,) = exp.sources
        assert src.setup.image_shape != exp.evaluation.image_shape
        results = exp.run()
        assert [r["source"] for r in results["rows"]] == [source]
        assert np.isfinite(results["rows"][0]["test_accuracy"])
    c10 = Experiment(to_imagenet, tmp_path / "to_imagenet").sources[0].setup.input_spec
    imnet = Experiment(to_cifar, tmp_path / "to_cifar").sources[0].setup.input_spec
    assert (c10.pad_crop, c10.flip) == (2, True)      # the source's own keys
    assert (imnet.pad_crop, imnet.flip) == (0, False)  # cropped and flipped on the host


@needs_cifar
def test_a_model_tied_to_its_input_size_refuses_a_source_of_another_size(data_dir, tmp_path):
    config = streamed_config(data_dir)  # LeNet: its first layer's size is the image's
    add_source(config, "c10", dataset="cifar10")
    with pytest.raises(ConfigError, match="generation.c10.dataset.*global pooling"):
        Experiment(config, tmp_path / "lenet")
    assert not (tmp_path / "lenet" / "results.json").exists()
