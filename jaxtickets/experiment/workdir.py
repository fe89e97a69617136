"""The workdir belongs to one experiment (its config hash) and to one process at a time."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket

import ml_collections

from jaxtickets import distributed
from jaxtickets.checkpoints import CheckpointError, read_json, write_json
from jaxtickets.config_schema import canonical_json, identity

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
# Streamed splits' labels, read once (data/label_index.py): derived from the dataset,
# not from the experiment, and written before the experiment's own files.
LABEL_INDEX_DIR = "label_index"


class WorkdirError(RuntimeError):
    """The workdir holds another experiment or is in use."""


def check_identity(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> bool:
    """True if the workdir already holds this experiment; raises if it holds another."""
    path = workdir / CONFIG_FILE
    if not path.exists():
        if workdir.exists() and any(p.name not in (LOCK_FILE, LABEL_INDEX_DIR)
                                    for p in workdir.iterdir()):
            raise WorkdirError(f"workdir {workdir} is not empty and has no {CONFIG_FILE}; "
                               "refusing to write into it")
        return False
    try:
        stored = read_json(path)
    except CheckpointError as err:
        raise WorkdirError(f"{path} is corrupt: it records which experiment this workdir "
                           "holds and cannot be recomputed; restore it or use a new "
                           "--workdir") from err
    if stored.get("identity") != identity(config):
        raise WorkdirError(
            f"workdir {workdir} holds a different experiment (identity "
            f"{stored.get('identity')}, this config is {identity(config)}); use a new "
            "--workdir or the config that made it")
    return True


def write_config(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    write_json(workdir / CONFIG_FILE, {"identity": identity(config),
                                       "config": json.loads(canonical_json(config)),
                                       "runtime": config.runtime.to_dict()})


class WorkdirLock:
    """An exclusive lock file; a lock left by a dead process on this host is taken over.

    In a multi-host run the primary process holds it for all of them.
    """

    def __init__(self, workdir: pathlib.Path):
        self.path = workdir / LOCK_FILE
        self.token = f"{socket.gethostname()} {os.getpid()}"

    def __enter__(self) -> "WorkdirLock":
        distributed.on_primary(self._take, f"taking the lock {self.path}")
        return self

    def _take(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._holder_alive():
                    raise WorkdirError(f"workdir {self.path.parent} is in use by "
                                       f"{self.path.read_text().strip()}") from None
                self.path.unlink(missing_ok=True)
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(self.token)
            except OSError as err:
                self.path.unlink(missing_ok=True)
                raise OSError(err.errno, err.strerror, str(self.path)) from err
            return
        raise WorkdirError(f"could not take the lock {self.path}")

    def _holder_alive(self) -> bool:
        try:
            host, pid = self.path.read_text().split()
        except (OSError, ValueError):
            return False
        if host != socket.gethostname():
            return True  # cannot tell; be safe
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def __exit__(self, *exc) -> None:
        if not distributed.is_primary():
            return
        try:
            if self.path.read_text() == self.token:
                self.path.unlink()
        except OSError:
            pass


def remove_stale_temporaries(workdir: pathlib.Path) -> list[pathlib.Path]:
    """Deletes what a killed process left half-written: temporary JSON files and
    unfinished Orbax directories. Finished files are never touched (they are only ever
    created by renaming a complete temporary into place). The primary process does it;
    the list of removed paths is empty elsewhere."""
    return distributed.on_primary(lambda: _remove_stale_temporaries(workdir),
                                  f"cleaning {workdir}") or []


def _remove_stale_temporaries(workdir: pathlib.Path) -> list[pathlib.Path]:
    removed = []
    for path in sorted(workdir.rglob("*"), reverse=True):
        if path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp"):
            path.unlink()
            removed.append(path)
        elif path.is_dir() and ".orbax-checkpoint-tmp" in path.name:
            shutil.rmtree(path)
            removed.append(path)
    return removed
