"""Orbax storage for ticket artifacts and step checkpoints, plus atomic JSON files.

Stage outputs (theta_0, the rewind snapshot, each level's mask and final weights)
are written once through Orbax, which finalizes a checkpoint by renaming a
temporary directory, so a half-written artifact is never mistaken for a finished
one. Restores always go through the expected tree, and every restored array is
checked against its expected shape and dtype before use.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


class CheckpointError(RuntimeError):
    """A checkpoint or result file is missing, corrupt or does not fit the model."""


def exists(path: os.PathLike) -> bool:
    """A finished Orbax checkpoint (Orbax renames it into place only when complete)."""
    path = pathlib.Path(path)
    return path.is_dir() and (path / "_CHECKPOINT_METADATA").exists()


def _abstract(like: PyTree) -> PyTree:
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)


def check_like(tree: PyTree, like: PyTree, where: str) -> None:
    """Raises CheckpointError unless `tree` has the structure, shapes and dtypes of `like`."""
    got, got_def = jax.tree_util.tree_flatten_with_path(tree)
    want, want_def = jax.tree_util.tree_flatten_with_path(like)
    if got_def != want_def:
        raise CheckpointError(f"{where}: stored tree structure differs from the model's")
    for (path, g), (_, w) in zip(got, want):
        if np.shape(g) != np.shape(w) or np.asarray(g).dtype != np.asarray(w).dtype:
            raise CheckpointError(
                f"{where}: {jax.tree_util.keystr(path)} stored as {np.shape(g)} "
                f"{np.asarray(g).dtype}, expected {np.shape(w)} {np.asarray(w).dtype}")


def save_tree(path: os.PathLike, tree: PyTree) -> None:
    """Writes `tree` (host or device arrays) as a finished Orbax checkpoint."""
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.fspath(path), tree, force=True)
    checkpointer.wait_until_finished()


def load_tree(path: os.PathLike, like: PyTree) -> PyTree:
    """Restores a tree shaped like `like`; a missing or unreadable file names the path."""
    if not exists(path):
        raise CheckpointError(f"checkpoint {path} is missing or unfinished")
    try:
        tree = ocp.StandardCheckpointer().restore(os.fspath(path), _abstract(like))
    except Exception as err:  # Orbax raises many types for damaged files.
        raise CheckpointError(f"checkpoint {path} cannot be read: {err}") from err
    check_like(tree, like, str(path))
    return tree


class StepCheckpoints:
    """Periodic checkpoints of a training run: the train state plus JSON metadata."""

    def __init__(self, directory: os.PathLike, max_to_keep: int = 2):
        self._manager = ocp.CheckpointManager(
            os.fspath(directory),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 enable_async_checkpointing=False))

    def save(self, step: int, state: PyTree, meta: dict) -> None:
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
        self._manager.wait_until_finished()

    def latest(self, like: PyTree) -> Optional[tuple[int, PyTree, dict]]:
        """The newest readable checkpoint, falling back to older ones if it is damaged."""
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                out = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(_abstract(like)),
                    meta=ocp.args.JsonRestore()))
                check_like(out["state"], like, f"step checkpoint {step}")
            except Exception as err:  # noqa: BLE001 - any damage means: try an older one.
                print(f"warning: step checkpoint {step} unreadable ({err}); trying older")
                continue
            return step, out["state"], dict(out["meta"])
        return None

    def close(self) -> None:
        self._manager.close()


def write_json(path: os.PathLike, data: Any) -> None:
    """Writes JSON atomically: a temporary file in the same directory, fsync, rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: os.PathLike) -> Any:
    """Reads a JSON file written by write_json; damage is reported with the path."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is corrupt ({err}); delete it to recompute") from err
