"""JAX's persistent compilation cache, on by default (runtime.compilation_cache).

Without it every run compiles its programs again, the same XLA programs each time: 3-6
s of a LeNet-300-100 or Conv-2 run's start-up on a 2-core CPU (BENCHMARKS.md,
"Start-up"). With it a run reads the executables that an earlier run compiled.

The cache never changes a result: an entry is keyed by the program itself, the jax and
jaxlib versions, the XLA flags, the compile options (runtime.cpu_convolutions among
them) and the devices, and what is read back is the executable XLA compiled for that
key (tests/test_compilation_cache.py compares a cold and a warm run bitwise). XLA:CPU
also refuses an executable compiled for another CPU model, which is then compiled again.

Settings (`configure`):
  'auto'        $JAXTICKETS_CACHE_DIR/xla, else $XDG_CACHE_HOME/jaxtickets/xla, else
                ~/.cache/jaxtickets/xla: one directory per user, shared by all runs.
  '' or 'off'   no cache from jaxtickets.
  a path        that directory.

A cache that the user has given JAX itself (JAX_COMPILATION_CACHE_DIR in the
environment, or jax.config.update('jax_compilation_cache_dir', ...) before the run)
wins over all three: it is left exactly as configured, thresholds included. JAX opens
its cache once per process, so the first run of a process decides for the process.

A directory that cannot be created or written is reported once (a warning) and the run
goes on without the cache, as it would with 'off'. In a multi-process run every process
reads the cache and only process 0 writes it (JAX's rule).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Optional

from absl import logging

from jaxtickets.errors import ConfigError

AUTO = "auto"
OFF = ("", "off")
ENV_DIR = "JAXTICKETS_CACHE_DIR"  # the jaxtickets cache root; the XLA cache is under xla/
XLA_SUBDIR = "xla"
# JAX's thresholds for writing an entry (1 s of compile time by default, which would
# leave out the many small programs of a start-up); one the user set is kept.
_THRESHOLDS = {  # option: its environment variable; 0 caches every program
    "jax_persistent_cache_min_compile_time_secs": "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "jax_persistent_cache_min_entry_size_bytes": "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
}
_warned: set[str] = set()  # directories already reported as unwritable


def check(value: object, key: str = "runtime.compilation_cache") -> None:
    """Raises ConfigError (naming `key`) unless `value` is a setting `configure` accepts."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be '{AUTO}', 'off' (or '') or a directory path; "
                          f"got {value!r}")
    if value.strip() != value or "\n" in value:
        raise ConfigError(f"{key}: a directory path without surrounding spaces or "
                          f"newlines; got {value!r}")


def default_dir() -> pathlib.Path:
    """The directory 'auto' means: per user, outside any workdir or checkout."""
    root = os.environ.get(ENV_DIR)
    if root:
        return pathlib.Path(root).expanduser() / XLA_SUBDIR
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "jaxtickets" / XLA_SUBDIR


def resolve(setting: str) -> Optional[pathlib.Path]:
    """The directory `setting` names, or None for no cache."""
    if setting in OFF:
        return None
    if setting == AUTO:
        return default_dir()
    return pathlib.Path(setting).expanduser()


def _writable(path: pathlib.Path) -> Optional[str]:
    """None if `path` can be created and written; else why not. Probed with a file of
    this process's own (no two processes race for one name) that is removed again."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def configure(setting: str) -> Optional[pathlib.Path]:
    """Points JAX's persistent compilation cache at the directory `setting` names (see
    the module docstring) before the run's first compile; returns the directory JAX
    uses, or None when no persistent cache is in use."""
    import jax

    existing = jax.config.jax_compilation_cache_dir
    if existing:  # the user's own JAX setting, or an earlier run of this process
        return pathlib.Path(existing)
    path = resolve(setting)
    if path is None:
        return None
    problem = _writable(path)
    if problem is not None:
        if str(path) not in _warned:
            _warned.add(str(path))
            logging.warning("cannot use %s for the compilation cache (%s); compiling "
                            "without it (runtime.compilation_cache)", path, problem)
        return None
    for option, env in _THRESHOLDS.items():
        if env not in os.environ:
            jax.config.update(option, 0)
    jax.config.update("jax_compilation_cache_dir", str(path))
    return path
