"""The streamed (ImageNet-style) input pipeline: TFDS records through Grain, augmented on
the host, delivered as global batches; on a JPEG dataset made here in TFDS format, under
tfds.testing.mock_data, and sharded over two processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import ROOT, free_port, make_jpeg_imagenet
from jaxtickets import parallel
from jaxtickets.data import augment, pipeline, selections, tfds_io
from jaxtickets.training.batches import BatchOrder

NUM_TRAIN, NUM_VAL, SIZE = 37, 11, 32


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory):
    return make_jpeg_imagenet(tmp_path_factory.mktemp("tfds"), NUM_TRAIN, NUM_VAL)


SHARDING = parallel.batch_sharded(parallel.make_mesh(8))


class _Split:
    """A StreamedSplit with this test file's sharding filled in."""

    def __init__(self, data_dir, split="train", threads=4, size=SIZE):
        self.split = pipeline.StreamedSplit.open("imagenet2012", split, data_dir,
                                                 augment.ImageRecipe(size=size),
                                                 threads=threads)

    def __len__(self):
        return len(self.split)

    def train_batches(self, *args, **kwargs):
        return self.split.train_batches(SHARDING, *args, **kwargs)

    def eval_batches(self, batch):
        return self.split.eval_batches(SHARDING, batch)


_split = _Split


def _host(batches):
    return [tuple(np.asarray(a) for a in b) for b in batches]


def test_train_batches_are_augmented_records_in_batch_order(jpeg_dir):
    split = _split(jpeg_dir)
    order = BatchOrder(len(split), 8, seed=5)
    batches = _host(split.train_batches(order, seed=5, start_step=0, end_step=6))
    assert len(batches) == 6  # 4 full batches per epoch of 37: the epoch boundary crossed
    records = tfds_io.open_data_source("imagenet2012", "train", jpeg_dir)
    for step, (images, labels) in enumerate(batches):
        assert images.shape == (8, SIZE, SIZE, 3) and images.dtype == np.uint8
        assert labels.dtype == np.int32
        expected = [int(records[i]["label"]) for i in order.indices(step, 1, 1)[0]]
        assert labels.tolist() == expected
        assert images.std() > 10  # real pixels, not blank
    # Random crops, flips and jitter: the same record never comes out the same twice.
    first_epoch = {int(i): row for i, row in zip(order.indices(0, 1, 1)[0], batches[0][0])}
    later = {int(i): row for i, row in zip(order.indices(4, 1, 1)[0], batches[4][0])}
    common = set(first_epoch) & set(later)
    assert common and all(not np.array_equal(first_epoch[i], later[i]) for i in common)


def test_batches_are_a_pure_function_of_seed_and_step(jpeg_dir):
    order = BatchOrder(NUM_TRAIN, 8, seed=1)
    whole = _host(_split(jpeg_dir, threads=4).train_batches(order, 1, 0, 5))
    resumed = _host(_split(jpeg_dir, threads=1).train_batches(order, 1, 3, 5))
    for a, b in zip(whole[3:], resumed):  # resumed at step 3, one reader thread
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    other = _host(_split(jpeg_dir).train_batches(order, 2, 0, 1))  # another augment seed
    assert not np.array_equal(other[0][0], whole[0][0])
    np.testing.assert_array_equal(other[0][1], whole[0][1])  # same order: seeded apart


def test_evaluation_covers_the_split_exactly_once(jpeg_dir):
    split = _split(jpeg_dir, "validation")
    batches = _host(split.eval_batches(8))
    assert len(batches) == 2  # 11 records: 8 + 3 and 5 weight-0 pads
    weights = np.concatenate([w for _, _, w in batches])
    assert weights.sum() == NUM_VAL and set(weights.tolist()) == {0.0, 1.0}
    labels = np.concatenate([l for _, l, _ in batches])[weights == 1]
    records = tfds_io.open_data_source("imagenet2012", "validation", jpeg_dir)
    assert sorted(labels.tolist()) == sorted(int(records[i]["label"]) for i in range(NUM_VAL))
    # Centre crops are deterministic: the first image is the centre of record 0.
    np.testing.assert_array_equal(batches[0][0][0], augment.eval_image(
        records[0]["image"], augment.ImageRecipe(size=SIZE)))


def test_missing_streamed_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet2012.*not prepared"):
        _split(str(tmp_path))


def test_pipeline_runs_under_tfds_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=20):
        split = _split(str(tmp_path), size=24)
        order = BatchOrder(len(split), 8, seed=0)
        images, labels = _host(split.train_batches(order, 0, 0, 1))[0]
        evals = _host(split.eval_batches(8))
    assert images.shape == (8, 24, 24, 3) and images.dtype == np.uint8
    assert ((labels >= 0) & (labels < 1000)).all()
    assert sum(w.sum() for _, _, w in evals) == 20


def test_augmentations_follow_the_recipe():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)
    recipe = augment.ImageRecipe(size=16, rotation_degrees=10)
    a = augment.train_image(image, recipe, np.random.default_rng(3))
    b = augment.train_image(image, recipe, np.random.default_rng(3))
    c = augment.train_image(image, recipe, np.random.default_rng(4))
    assert a.shape == (16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    gray = augment.train_image(image[..., 0], augment.ImageRecipe(size=8), rng)
    assert gray.shape == (8, 8, 3)
    for seed in range(50):  # every crop box lies inside the image with a legal shape
        x0, y0, x1, y1 = augment._crop_box(80, 50, augment.ImageRecipe(),
                                           np.random.default_rng(seed))
        assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 50
        assert 0.08 * 4000 * 0.9 <= (x1 - x0) * (y1 - y0)
    # Evaluation: shorter side to size / 0.875, centre crop; an identity on a flat image.
    flat = np.full((64, 100, 3), 77, np.uint8)
    np.testing.assert_array_equal(augment.eval_image(flat, augment.ImageRecipe(size=56)),
                                  np.full((56, 56, 3), 77, np.uint8))


SHARDED_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from jaxtickets import distributed
    address, index, data_dir, out, cache = (sys.argv[1], int(sys.argv[2]), sys.argv[3],
                                            sys.argv[4], sys.argv[5])
    distributed.initialize(address, 2, index)
    import jax
    from jax.experimental import multihost_utils
    from jaxtickets import parallel
    from jaxtickets.data import augment, pipeline
    from jaxtickets.training.batches import BatchOrder
    sharding = parallel.batch_sharded(parallel.make_mesh(8))
    split = pipeline.StreamedSplit.open("imagenet2012", "train", data_dir,
                                        augment.ImageRecipe(size=32))
    order = BatchOrder(len(split), 8, seed=5)
    images, labels = list(split.train_batches(sharding, order, 5, 1, 2))[0]
    rows = pipeline.local_rows(sharding, 8)
    local = np.concatenate([np.asarray(s.data) for s in sorted(
        images.addressable_shards, key=lambda s: s.index[0].start)])
    whole = multihost_utils.process_allgather(images, tiled=True)
    whole_labels = multihost_utils.process_allgather(labels, tiled=True)
    # A class subset: the label index is read and written by process 0 inside a fence,
    # then both processes select the same records and relabel them alike.
    import pathlib
    from jaxtickets.data import selections
    splits = pipeline.load_streamed_splits("imagenet2012", data_dir, 5, 0,
                                           augment.ImageRecipe(size=32), 2,
                                           pathlib.Path(cache))
    subset = selections.class_subset(splits, 0.5, 1)
    _, chosen = list(subset.train.train_batches(sharding, BatchOrder(len(subset.train), 8, 3),
                                                3, 0, 1))[0]
    np.savez(out, whole=whole, labels=whole_labels, local=local,
             rows=np.array([rows.start, rows.stop]), subset=subset.train.indices,
             chosen=multihost_utils.process_allgather(chosen, tiled=True))
""")


def test_two_processes_build_the_same_global_batch_from_their_own_rows(jpeg_dir, tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen(
        [sys.executable, str(script), f"localhost:{port}", str(i), jpeg_dir,
         str(tmp_path / f"p{i}.npz"), str(tmp_path / "labels")], cwd=ROOT, env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    got = [np.load(tmp_path / f"p{i}.npz") for i in range(2)]
    # One process on one device builds the reference global batch of step 1.
    reference = _split(jpeg_dir)
    images, labels = _host(reference.train_batches(BatchOrder(NUM_TRAIN, 8, 5), 5, 1, 2))[0]
    assert [g["rows"].tolist() for g in got] == [[0, 4], [4, 8]]  # 2 devices x 2 rows each
    for g in got:
        np.testing.assert_array_equal(g["whole"], images)
        np.testing.assert_array_equal(g["labels"], labels)
        start, stop = g["rows"]
        np.testing.assert_array_equal(g["local"], images[start:stop])  # only its own rows
    assert jax.device_count() == 1
    # The selection: one label index per split (the class subset restricts the test split
    # too), the same records and labels as in one process.
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [
        "imagenet2012.train.labels.npy", "imagenet2012.validation.labels.npy"]
    splits = pipeline.load_streamed_splits("imagenet2012", jpeg_dir, 5, 0,
                                           augment.ImageRecipe(size=32), 2, tmp_path / "one")
    subset = selections.class_subset(splits, 0.5, 1)
    order = BatchOrder(len(subset.train), 8, 3)
    expected = [subset.train.labels[order.index(0, row)] for row in range(8)]
    for g in got:
        np.testing.assert_array_equal(g["subset"], subset.train.indices)
        np.testing.assert_array_equal(g["chosen"], expected)
