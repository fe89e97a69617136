"""The device mesh: data parallel over all devices (of every process) with jit + NamedSharding."""

from __future__ import annotations

import logging
import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(global_batch: int) -> Mesh:
    """A 1-D mesh over the most devices that divide the batch evenly.

    P2's batch of 60 does not split over 8 devices; rather than change the recipe we
    use 6 of them (and say so), so results stay comparable across device counts. In a
    multi-host run the devices are those of all processes, in process order.
    """
    devices = jax.devices()
    count = max(n for n in range(1, len(devices) + 1) if global_batch % n == 0)
    if count < len(devices):
        logging.warning("batch %d does not split over %d devices; using %d of them",
                        global_batch, len(devices), count)
    return Mesh(np.array(devices[:count]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh, leading_dims: int = 0) -> NamedSharding:
    """Sharding that splits the batch axis (after `leading_dims` axes) over devices."""
    return NamedSharding(mesh, P(*([None] * leading_dims), DATA_AXIS))


def local_span(sharding: NamedSharding, shape: tuple[int, ...]) -> tuple[int, slice]:
    """(axis, slice): the entries along the sharded axis of a `shape` global array that
    this process's devices hold (contiguous: the mesh lists devices in process order)."""
    axis = next((i for i, name in enumerate(sharding.spec) if name is not None), 0)
    spans = [index[axis] for index in sharding.addressable_devices_indices_map(shape).values()]
    start = min(s.start or 0 for s in spans)
    stop = max(shape[axis] if s.stop is None else s.stop for s in spans)
    return axis, slice(start, stop)


def global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from `host`, which every process holds whole (e.g. a batch's indices).

    Each process hands over only the rows its own devices hold, through
    `jax.make_array_from_process_local_data`, which is how a multi-host input pipeline
    builds its global batches; in one process it is a plain device_put.
    """
    if jax.process_count() == 1:
        return jax.device_put(host, sharding)
    axis, rows = local_span(sharding, host.shape)
    local = host[(slice(None),) * axis + (rows,)]
    return jax.make_array_from_process_local_data(sharding, local, host.shape)


# Leaves smaller than this stay replicated under FSDP: biases, BN vectors and small
# kernels cost little memory, and gathering them every step would cost more.
FSDP_MIN_SIZE = 2 ** 14


def fsdp_spec(shape: tuple[int, ...], devices: int) -> P:
    """Shard the largest axis that the devices divide evenly; replicate small leaves."""
    if math.prod(shape) < FSDP_MIN_SIZE or devices == 1:
        return P()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % devices == 0:
            return P(*([None] * axis), DATA_AXIS)
    return P()


def state_shardings(tree, mesh: Mesh, fsdp: bool):
    """The sharding of every leaf of a train state: replicated, or FSDP-style (parameters,
    masks and optimizer moments split over the data axis, gathered inside the step)."""
    if not fsdp:
        return jax.tree_util.tree_map(lambda _: replicated(mesh), tree)
    return jax.tree_util.tree_map(
        lambda leaf: NamedSharding(mesh, fsdp_spec(tuple(np.shape(leaf)), mesh.size)), tree)


def to_host(x) -> np.ndarray:
    """A numpy copy of an array, whether or not this process holds all of it (FSDP
    leaves across hosts are gathered first)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
