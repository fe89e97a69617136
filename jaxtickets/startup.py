"""Where a run's start-up goes: the seconds from process start to the first train step,
split into imports, data and compile, printed once as one line of the progress output:

    start-up 3.1 s: imports 1.9, data 0.4, compile 0.8, other 0.0

`imports` runs from the first line of jaxtickets/main.py (the interpreter's own start,
a few tens of ms, is not counted) until the experiment starts building; `data` is the
loading of the datasets (decoding, or reading the decoded cache); `compile` the XLA
compile seconds until the first train step ends (reading the programs back, when the
persistent compilation cache holds them: compilation_cache.py); `other` the rest (model
set-up, tracing the programs, the copy of the data to the device, the first step itself). A run started from Python
rather than from main.py has no process start: its line counts from the experiment's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

_process_start: float | None = None
_imports_done: float | None = None
_data_seconds = 0.0


def mark_process_start(when: float) -> None:
    """Called first thing by main.py with time.time()."""
    global _process_start
    _process_start = when


def mark_imports_done() -> None:
    """Called by main.py once the experiment's modules are imported."""
    global _imports_done
    _imports_done = time.time()


def begin_experiment() -> None:
    """The experiment starts building: its data seconds start from zero, and a run
    without main.py counts its start-up from here."""
    global _data_seconds, _imports_done, _process_start
    _data_seconds = 0.0
    if _process_start is None or _imports_done is None:
        _process_start = _imports_done = time.time()


@contextlib.contextmanager
def loading_data() -> Iterator[None]:
    """Adds the seconds spent inside to the data seconds."""
    global _data_seconds
    start = time.time()
    try:
        yield
    finally:
        _data_seconds += time.time() - start


def summary(compile_seconds: float) -> dict[str, float]:
    """The start-up so far in seconds: total, imports, data, compile and other."""
    now = time.time()
    start = _process_start if _process_start is not None else now
    imports = (_imports_done - start) if _imports_done is not None else 0.0
    total = now - start
    other = max(total - imports - _data_seconds - compile_seconds, 0.0)
    return {"total": total, "imports": imports, "data": _data_seconds,
            "compile": compile_seconds, "other": other}


def line(compile_seconds: float) -> str:
    s = summary(compile_seconds)
    return (f"start-up {s['total']:.1f} s: imports {s['imports']:.1f}, data "
            f"{s['data']:.1f}, compile {s['compile']:.1f}, other {s['other']:.1f}")
