"""Data held on the device, and the batch order as a pure function of (seed, step).

Because the indices of step s depend only on the seed and s (one seeded shuffle of
the training set per epoch, remainder dropped), a run resumed from a checkpoint at
step s sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from jax.sharding import Mesh

from jaxtickets.parallel import batch_sharded, global_array, replicated


@dataclasses.dataclass
class DeviceSplit:
    images: jax.Array
    labels: jax.Array
    size: int


def put_split(images: np.ndarray, labels: np.ndarray, mesh: Mesh) -> DeviceSplit:
    """Copies a split to every device of the mesh (small datasets only)."""
    rep = replicated(mesh)
    return DeviceSplit(jax.device_put(images, rep),
                       jax.device_put(labels.astype(np.int32), rep), len(labels))


@dataclasses.dataclass(frozen=True)
class BatchOrder:
    """Which training examples form each step's batch."""

    num_examples: int
    batch_size: int
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.batch_size

    @functools.lru_cache(maxsize=4)
    def _epoch_permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def index(self, step: int, row: int) -> int:
        """The training example at `row` of step `step`'s batch (one entry of `indices`)."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        return int(self._epoch_permutation(epoch)[pos * self.batch_size + row])

    def indices(self, start_step: int, count: int, pad_to: int) -> np.ndarray:
        """int32 [pad_to, batch] indices for steps start..start+count (rows past count are 0)."""
        out = np.zeros((pad_to, self.batch_size), dtype=np.int32)
        for row in range(count):
            epoch, pos = divmod(start_step + row, self.steps_per_epoch)
            perm = self._epoch_permutation(epoch)
            out[row] = perm[pos * self.batch_size:(pos + 1) * self.batch_size]
        return out


def device_indices(indices: np.ndarray, mesh: Mesh, leading_dims: int) -> jax.Array:
    """The indices, split over the mesh along the batch axis (after `leading_dims`)."""
    return global_array(indices, batch_sharded(mesh, leading_dims))


def eval_chunks(size: int, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(indices, weights) covering every example exactly once; the last chunk is padded
    with weight-0 repeats so all chunks share one shape (one compilation)."""
    chunks = []
    for start in range(0, size, batch):
        idx = np.arange(start, min(start + batch, size), dtype=np.int32)
        weights = np.ones(batch, dtype=np.float32)
        weights[idx.size:] = 0.0
        chunks.append((np.resize(idx, batch).astype(np.int32), weights))
    return chunks
