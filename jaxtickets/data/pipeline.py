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

import dataclasses
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding

from jaxtickets.data.augment import ImageRecipe, eval_image, train_image
from jaxtickets.data.datasets import STREAMED_CLASSES
from jaxtickets.data.tfds_io import open_data_source
from jaxtickets.parallel import local_span
from jaxtickets.training.batches import BatchOrder, eval_chunks

# The split the papers report on (P0: ImageNet val); training images are never in it.
TEST_SPLITS = {"imagenet2012": "validation", "imagenet2012_subset/1pct": "validation",
               "imagenet2012_subset/10pct": "validation", "places365_small": "validation"}


def local_rows(sharding: NamedSharding, batch: int) -> slice:
    """The rows of a [batch, ...] global array that this process's devices hold."""
    return local_span(sharding, (batch,))[1]


@dataclasses.dataclass
class _TrainRows:
    """Grain source: this process's rows of every step's batch, augmented, in order."""

    records: Any
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
        return train_image(record["image"], self.recipe, rng), np.int32(record["label"])


@dataclasses.dataclass
class _EvalRows:
    """Grain source: this process's rows of every evaluation chunk, centre-cropped."""

    records: Any
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
        record = self.records[int(indices[row])]
        return (eval_image(record["image"], self.recipe), np.int32(record["label"]),
                np.float32(weights[row]))


def _stack(rows):
    return tuple(np.stack(column) for column in zip(*rows))


def _global(local: np.ndarray, sharding: NamedSharding, batch: int) -> jax.Array:
    return jax.make_array_from_process_local_data(sharding, local,
                                                  (batch,) + local.shape[1:])


class StreamedSplit:
    """Records of one split (or a subset of them, by index), delivered as global batches."""

    def __init__(self, records: Any, recipe: ImageRecipe, indices: np.ndarray | None = None,
                 threads: int = 16, prefetch_batches: int = 2, name: str = ""):
        self.records = records if indices is None else _Subset(records, indices)
        self.recipe = recipe
        self.name = name
        self.read_options = lambda rows: grain.ReadOptions(
            num_threads=threads, prefetch_buffer_size=prefetch_batches * rows)

    @classmethod
    def open(cls, dataset: str, split: str, data_dir: str | None, recipe: ImageRecipe,
             **kwargs) -> "StreamedSplit":
        return cls(open_data_source(dataset, split, data_dir), recipe,
                   name=f"{dataset}/{split}", **kwargs)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def size(self) -> int:
        return len(self.records)

    def train_batches(self, sharding: NamedSharding, order: BatchOrder, seed: int,
                      start_step: int, end_step: int
                      ) -> Iterator[tuple[jax.Array, jax.Array]]:
        """(images uint8 [B, S, S, 3], labels int32 [B]) for steps start..end-1."""
        if order.num_examples != len(self):
            raise ValueError(f"{self.name}: the batch order covers {order.num_examples} "
                             f"records, the split has {len(self)}")
        rows = local_rows(sharding, order.batch_size)
        source = _TrainRows(self.records, order, rows, self.recipe, seed, end_step)
        dataset = (grain.MapDataset.source(source).batch(source.per_step, batch_fn=_stack)
                   .slice(slice(start_step, end_step)))
        for images, labels in dataset.to_iter_dataset(self.read_options(source.per_step)):
            yield (_global(images, sharding, order.batch_size),
                   _global(labels, sharding, order.batch_size))

    def eval_batches(self, sharding: NamedSharding, batch: int
                     ) -> Iterator[tuple[jax.Array, jax.Array, jax.Array]]:
        """(images, labels, weights): every record once; weight 0 marks padding."""
        rows = local_rows(sharding, batch)
        source = _EvalRows(self.records, eval_chunks(len(self), batch), rows, self.recipe)
        dataset = grain.MapDataset.source(source).batch(source.per_chunk, batch_fn=_stack)
        for images, labels, weights in dataset.to_iter_dataset(
                self.read_options(source.per_chunk)):
            yield (_global(images, sharding, batch), _global(labels, sharding, batch),
                   _global(weights, sharding, batch))


@dataclasses.dataclass
class _Subset:
    """Records `indices` of `records`, in that order (a held-out split, by index)."""

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
                         split_seed: int, recipe: ImageRecipe,
                         threads: int = 16) -> StreamedSplits:
    """The streamed dataset's splits: `validation_size` training records held out (seeded,
    as for in-memory data); the test split is the one the papers report (ImageNet val)."""
    from jaxtickets.errors import ConfigError

    train_name, test_name = "train", TEST_SPLITS[dataset]
    records = open_data_source(dataset, train_name, data_dir)
    if validation_size >= len(records):
        raise ConfigError(f"data.validation_size: {validation_size} leaves no training "
                          f"records out of {len(records)}")
    order = np.random.default_rng(split_seed).permutation(len(records))
    held_out, rest = np.sort(order[:validation_size]), np.sort(order[validation_size:])

    def split(indices, name):
        return StreamedSplit(records, recipe, indices, threads=threads,
                             name=f"{dataset}/{name}")

    test = StreamedSplit.open(dataset, test_name, data_dir, recipe, threads=threads)
    return StreamedSplits(dataset, split(rest, "train"), split(held_out, "validation"),
                          test, STREAMED_CLASSES[dataset], (recipe.size, recipe.size, 3))
