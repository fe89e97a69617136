"""Facts about the host this process runs on (standard library only, so that data
loaders without JAX can use them too)."""

from __future__ import annotations

import os


def host_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS reports one
    (a container or `taskset` may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
