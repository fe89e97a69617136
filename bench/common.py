"""Timing side by side: the machines are noisy, so every benchmark interleaves its
variants in one process and reports medians and ratios, never absolute times from
different runs."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(variants: dict[str, Callable[[], None]], repeats: int,
                warmup: int = 1) -> dict[str, float]:
    """Median wall seconds per call of each variant, calls interleaved round-robin so a
    slow spell of the machine hits all of them alike. Each callable must block until
    its work is done (jax: `block_until_ready`)."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table (BENCHMARKS.md pastes these as printed)."""
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
