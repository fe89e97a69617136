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
from jaxtickets.data.tfds_io import open_data_source
from jaxtickets.training.batches import BatchOrder, eval_chunks

# Datasets read this way, with their classes (P0: ImageNet and Places365).
STREAMED = {"imagenet2012": 1000, "imagenet2012_subset/1pct": 1000,
            "imagenet2012_subset/10pct": 1000, "places365_small": 365}


def local_rows(sharding: NamedSharding, batch: int) -> slice:
    """The rows of a [batch, ...] global array that this process's devices hold."""
    spans = [index[0] for index in
             sharding.addressable_devices_indices_map((batch,)).values()]
    start = min(s.start or 0 for s in spans)
    stop = max(batch if s.stop is None else s.stop for s in spans)
    return slice(start, stop)


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
    """One split of a streamed dataset, as global batches sharded over `sharding`."""

    def __init__(self, name: str, split: str, data_dir: str | None, sharding: NamedSharding,
                 recipe: ImageRecipe, threads: int = 16, prefetch_batches: int = 2):
        self.records = open_data_source(name, split, data_dir)
        self.name, self.split = name, split
        self.sharding = sharding
        self.recipe = recipe
        self.read_options = lambda rows: grain.ReadOptions(
            num_threads=threads, prefetch_buffer_size=prefetch_batches * rows)

    def __len__(self) -> int:
        return len(self.records)

    def train_batches(self, order: BatchOrder, seed: int, start_step: int,
                      end_step: int) -> Iterator[tuple[jax.Array, jax.Array]]:
        """(images uint8 [B, S, S, 3], labels int32 [B]) for steps start..end-1."""
        if order.num_examples != len(self.records):
            raise ValueError(f"{self.name}/{self.split}: the batch order covers "
                             f"{order.num_examples} records, the split has {len(self)}")
        rows = local_rows(self.sharding, order.batch_size)
        source = _TrainRows(self.records, order, rows, self.recipe, seed, end_step)
        dataset = (grain.MapDataset.source(source).batch(source.per_step, batch_fn=_stack)
                   .slice(slice(start_step, end_step)))
        for images, labels in dataset.to_iter_dataset(self.read_options(source.per_step)):
            yield (_global(images, self.sharding, order.batch_size),
                   _global(labels, self.sharding, order.batch_size))

    def eval_batches(self, batch: int) -> Iterator[tuple[jax.Array, jax.Array, jax.Array]]:
        """(images, labels, weights): every record once; weight 0 marks padding."""
        rows = local_rows(self.sharding, batch)
        source = _EvalRows(self.records, eval_chunks(len(self.records), batch), rows,
                           self.recipe)
        dataset = grain.MapDataset.source(source).batch(source.per_chunk, batch_fn=_stack)
        for images, labels, weights in dataset.to_iter_dataset(
                self.read_options(source.per_chunk)):
            yield (_global(images, self.sharding, batch), _global(labels, self.sharding, batch),
                   _global(weights, self.sharding, batch))
