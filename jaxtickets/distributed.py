"""Several processes, one experiment: every process computes, the primary one writes.

A multi-host run (a TPU pod slice, a SLURM job, or local processes in the tests) runs
the same driver in every process over one global device mesh. Training state is
replicated, so every process holds the same parameters, masks and metrics; the
workdir lives on a file system all hosts see. Files are therefore written once, by
process 0, while Orbax's own checkpoint protocol writes array data from all hosts.

All processes make the same decisions from the workdir (is this stage finished? is
there a step checkpoint?), so they must all see the same files at the same points.
`on_primary` makes every change of the workdir a fenced step: a barrier, then the
primary's change, then an agreement on whether it worked (a failure on the primary is
raised in every process, so none waits forever). Between two fences no process
changes the workdir, so all their reads agree.

In a single process every function here reduces to a plain call: no barrier, no
collective, no change in results.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Optional, TypeVar

import jax
import numpy as np

PRIMARY = 0
T = TypeVar("T")
_fence_ids = itertools.count()


class PrimaryFailed(RuntimeError):
    """The primary process failed while changing the workdir; its own log has the error."""


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None,
               local_device_ids: Optional[Sequence[int]] = None) -> None:
    """Joins the processes of a multi-host run (before any other JAX call).

    Without arguments JAX detects the cluster (Cloud TPU, SLURM, Open MPI, ...). On CPU
    the collectives between processes go through Gloo, so the multi-process tests can
    run on one machine.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               local_device_ids=local_device_ids)


def process_count() -> int:
    return jax.process_count()


def is_primary() -> bool:
    return jax.process_index() == PRIMARY


def on_primary(change: Callable[[], T], what: str) -> Optional[T]:
    """Runs `change` (a change of the workdir) on the primary process only, fenced.

    Returns its result on the primary and None elsewhere. If it raises on the primary,
    the primary re-raises it and every other process raises PrimaryFailed naming `what`.
    """
    if process_count() == 1:
        return change()
    from jax.experimental import multihost_utils

    fence = next(_fence_ids)  # the same sequence in every process
    multihost_utils.sync_global_devices(f"jaxtickets fence {fence}")
    result, error = None, None
    if is_primary():
        try:
            result = change()
        except BaseException as err:  # noqa: BLE001 - re-raised below, after agreeing
            error = err
    ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if error is not None:
        raise error
    if not int(ok):
        raise PrimaryFailed(f"the primary process (0) failed while {what}; "
                            "see its output for the error")
    return result


def primary_print(*args, **kwargs) -> None:
    """print() in the primary process only: one copy of the progress lines."""
    if is_primary():
        print(*args, **kwargs)
