"""Streamed input for datasets too large for memory (ImageNet, Places365): TFDS + Grain.

Records are read by index from `tfds.data_source` (array_record; TFDS decodes the
JPEGs with Pillow, no TensorFlow). Which records form the batch of step s is the same
pure function of (seed, s) as for in-memory data (`BatchOrder`: one seeded shuffle per
epoch, remainder dropped), and each image's augmentation is seeded by (seed, step,
position in the global batch). So a run resumed at step s sees exactly the batches an
uninterrupted one would, whatever the number of hosts, devices or reader threads.

Each process decodes only the rows of the global batch that its own devices hold and
hands them to `jax.make_array_from_process_local_data`. Grain runs the per-row work on
threads and prefetches a few batches ahead; nothing is cached, so memory does not
grow with the dataset. Evaluation covers the split exactly once: the last chunk is
padded with weight-0 repeats (`batches.eval_chunks`).
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding

from jaxtickets.data.augment import ImageRecipe, eval_image, train_image
from jaxtickets.data.datasets import STREAMED_CLASSES
from jaxtickets.data.label_index import lazy_labels
from jaxtickets.data.tfds_io import open_data_source
from jaxtickets.parallel import local_span
from jaxtickets.training.batches import BatchOrder, eval_chunks

# The split the papers report on (P0: ImageNet val); training images are never in it.
TEST_SPLITS = {"imagenet2012": "validation", "imagenet2012_subset/1pct": "validation",
               "imagenet2012_subset/10pct": "validation", "places365_small": "validation"}


def local_rows(sharding: NamedSharding, batch: int) -> slice:
    """The rows of a [batch, ...] global array that this process's devices hold."""
    return local_span(sharding, (batch,))[1]


def _label(record: Any, labels: np.ndarray | None, position: int) -> np.int32:
    """The record's own label, or the selection's relabelling of it."""
    return np.int32(record["label"] if labels is None else labels[position])


@dataclasses.dataclass
class _TrainRows:
    """Grain source: this process's rows of every step's batch, augmented, in order."""

    records: Any
    labels: np.ndarray | None
    order: BatchOrder
    rows: slice
    recipe: ImageRecipe
    seed: int
    steps: int

    @property
    def per_step(self) -> int:
        return self.rows.stop - self.rows.start

    def __len__(self) -> int:
        return self.steps * self.per_step

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int32]:
        step, offset = divmod(int(i), self.per_step)
        row = self.rows.start + offset
        index = self.order.index(step, row)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, step, row])
        return train_image(record["image"], self.recipe, rng), _label(record, self.labels, index)


@dataclasses.dataclass
class _EvalRows:
    """Grain source: this process's rows of every evaluation chunk, centre-cropped."""

    records: Any
    labels: np.ndarray | None
    chunks: list[tuple[np.ndarray, np.ndarray]]
    rows: slice
    recipe: ImageRecipe

    @property
    def per_chunk(self) -> int:
        return self.rows.stop - self.rows.start

    def __len__(self) -> int:
        return len(self.chunks) * self.per_chunk

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int32, np.float32]:
        chunk, offset = divmod(int(i), self.per_chunk)
        indices, weights = self.chunks[chunk]
        row = self.rows.start + offset
        index = int(indices[row])
        record = self.records[index]
        return (eval_image(record["image"], self.recipe), _label(record, self.labels, index),
                np.float32(weights[row]))


def _stack(rows):
    return tuple(np.stack(column) for column in zip(*rows))


def _global(local: np.ndarray, sharding: NamedSharding, batch: int) -> jax.Array:
    return jax.make_array_from_process_local_data(sharding, local,
                                                  (batch,) + local.shape[1:])


class StreamedSplit:
    """Records of one split, or a selection of them by index, delivered as global batches.

    Like an in-memory `Split` it can be narrowed (`take`) and relabelled (`with_labels`),
    which is all the data selections need; `labels` reads the split's label index on
    first use (data/label_index.py), so unselected runs never pass over the records.
    `with_recipe` gives the same records another host augmentation (a ticket source
    that colour-jitters where the evaluation does not)."""

    def __init__(self, records: Any, recipe: ImageRecipe, indices: np.ndarray | None = None,
                 threads: int = 16, prefetch_batches: int = 2, name: str = "",
                 all_labels: Callable[[], np.ndarray] | None = None,
                 labels: np.ndarray | None = None):
        self.base = records
        self.indices = (np.arange(len(records)) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        self.records = _Subset(records, self.indices)
        self.recipe = recipe
        self.name = name
        self._all_labels = all_labels   # every base record's label, read on demand
        self._labels = labels           # a selection's relabelling, or None: the records'
        self.read_options = lambda rows: grain.ReadOptions(
            num_threads=threads, prefetch_buffer_size=prefetch_batches * rows)

    @classmethod
    def open(cls, dataset: str, split: str, data_dir: str | None, recipe: ImageRecipe,
             **kwargs) -> "StreamedSplit":
        return cls(open_data_source(dataset, split, data_dir), recipe,
                   name=f"{dataset}/{split}", **kwargs)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def size(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        """int32 [len(self)]: the selection's labels, else the records' own."""
        if self._labels is not None:
            return self._labels
        if self._all_labels is None:
            raise ValueError(f"{self.name}: no label index to select by")
        return self._all_labels()[self.indices]

    def take(self, positions: np.ndarray) -> "StreamedSplit":
        """The records at `positions` of this split, in that order."""
        other = copy.copy(self)
        other.indices = self.indices[positions]
        other.records = _Subset(self.base, other.indices)
        other._labels = None if self._labels is None else self._labels[positions]
        return other

    def with_labels(self, labels: np.ndarray) -> "StreamedSplit":
        labels = np.asarray(labels, dtype=np.int32)
        if labels.shape != (len(self),):
            raise ValueError(f"{self.name}: {labels.size} labels for {len(self)} records")
        other = copy.copy(self)
        other._labels = labels
        return other

    def with_recipe(self, recipe: ImageRecipe) -> "StreamedSplit":
        """The same records and labels augmented by `recipe`; a copy, so a split shared
        with another run (the evaluation's) keeps its own."""
        other = copy.copy(self)
        other.recipe = recipe
        return other

    def train_batches(self, sharding: NamedSharding, order: BatchOrder, seed: int,
                      start_step: int, end_step: int
                      ) -> Iterator[tuple[jax.Array, jax.Array]]:
        """(images uint8 [B, S, S, 3], labels int32 [B]) for steps start..end-1."""
        if order.num_examples != len(self):
            raise ValueError(f"{self.name}: the batch order covers {order.num_examples} "
                             f"records, the split has {len(self)}")
        rows = local_rows(sharding, order.batch_size)
        source = _TrainRows(self.records, self._labels, order, rows, self.recipe, seed, end_step)
        dataset = (grain.MapDataset.source(source).batch(source.per_step, batch_fn=_stack)
                   .slice(slice(start_step, end_step)))
        for images, labels in dataset.to_iter_dataset(self.read_options(source.per_step)):
            yield (_global(images, sharding, order.batch_size),
                   _global(labels, sharding, order.batch_size))

    def eval_batches(self, sharding: NamedSharding, batch: int
                     ) -> Iterator[tuple[jax.Array, jax.Array, jax.Array]]:
        """(images, labels, weights): every record once; weight 0 marks padding."""
        rows = local_rows(sharding, batch)
        source = _EvalRows(self.records, self._labels, eval_chunks(len(self), batch), rows,
                          self.recipe)
        dataset = grain.MapDataset.source(source).batch(source.per_chunk, batch_fn=_stack)
        for images, labels, weights in dataset.to_iter_dataset(
                self.read_options(source.per_chunk)):
            yield (_global(images, sharding, batch), _global(labels, sharding, batch),
                   _global(weights, sharding, batch))


@dataclasses.dataclass
class _Subset:
    """Records `indices` of `records`, in that order (a held-out split, a selection)."""

    records: Any
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.records[int(self.indices[i])]


@dataclasses.dataclass
class StreamedSplits:
    """Train, validation (held out of train by a seeded choice) and test, streamed."""

    name: str
    train: StreamedSplit
    validation: StreamedSplit
    test: StreamedSplit
    num_classes: int
    image_shape: tuple[int, int, int]


def load_streamed_splits(dataset: str, data_dir: str | None, validation_size: int,
                         split_seed: int, recipe: ImageRecipe, threads: int = 16,
                         label_cache: pathlib.Path | None = None) -> StreamedSplits:
    """The streamed dataset's splits: `validation_size` training records held out (seeded,
    as for in-memory data; 0: none, every training record is trained on and the
    validation split is empty); the test split is the one the papers report (ImageNet val).
    Label indexes, when a selection asks for them, are kept in `label_cache`."""
    from jaxtickets.errors import ConfigError

    def opened(split_name):
        records = open_data_source(dataset, split_name, data_dir)
        return records, lazy_labels(dataset, split_name, data_dir, len(records), label_cache,
                                    threads)

    test_name = TEST_SPLITS[dataset]
    (records, train_labels), (test_records, test_labels) = opened("train"), opened(test_name)
    if validation_size >= len(records):
        raise ConfigError(f"data.validation_size: {validation_size} leaves no training "
                          f"records out of {len(records)}")
    order = np.random.default_rng(split_seed).permutation(len(records))
    held_out, rest = np.sort(order[:validation_size]), np.sort(order[validation_size:])

    def split(indices, name):
        return StreamedSplit(records, recipe, indices, threads=threads,
                             name=f"{dataset}/{name}", all_labels=train_labels)

    test = StreamedSplit(test_records, recipe, threads=threads, name=f"{dataset}/{test_name}",
                         all_labels=test_labels)
    return StreamedSplits(dataset, split(rest, "train"), split(held_out, "validation"),
                          test, STREAMED_CLASSES[dataset], (recipe.size, recipe.size, 3))
