"""Orbax storage for ticket artifacts and step checkpoints, plus atomic JSON files.

Stage outputs (theta_0, the rewind snapshot, each level's mask and final weights)
are written once through Orbax into a staging directory, which Orbax finalizes by
renaming its own temporary directory. Then a sha256 digest of every leaf (bytes,
dtype, shape) is written atomically into it, and only then is it renamed to its
final name: a directory at the final name that holds the digest file is a finished
artifact (`exists`). Orbax does not checksum array data, so every restore is
checked three ways before anything uses it: the stored leaves, shapes and dtypes
against the expected tree (before reading any data), the restored arrays against
the expected tree again, and the restored bytes against the digest. Step
checkpoints carry the same digest in their JSON metadata.

No Python objects are deserialized anywhere: Orbax stores arrays through tensorstore
(OCDBT/zarr) and metadata as JSON, and results are plain JSON.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from jaxtickets import distributed
from jaxtickets.digests import (check_digest_shape, shape_dtype, tree_digest,
                                verify_digest)
from jaxtickets.errors import CheckpointError

PyTree = Any

DIGEST_FILE = "jaxtickets_sha256.json"
_META_DIGEST_KEY = "_jaxtickets_sha256"
_ORBAX_TMP = ".orbax-checkpoint-tmp"


# ---- errors ---------------------------------------------------------------------------
def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."


_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")  # tensorstore's ENOSPC and friends


def _as_os_error(err: BaseException, path: os.PathLike) -> Optional[OSError]:
    """An OSError naming `path` for an operating-system failure; None for anything else.

    Orbax raises the OSError of the file it was writing (a temporary name) or, for
    failures inside tensorstore, a ValueError whose text carries the errno.
    """
    code = getattr(err, "errno", None) if isinstance(err, OSError) else None
    if code is None:
        match = _OS_ERROR_CODE.search(str(err))
        code = int(match.group(1)) if match else None
    if code is None:
        return None
    strerror = (err.strerror if isinstance(err, OSError) and err.strerror
                else os.strerror(code))
    return OSError(code, strerror, os.fspath(path))  # OSError() picks the errno subclass


# ---- stage artifacts ------------------------------------------------------------------
def _orbax_finished(path: pathlib.Path) -> bool:
    return path.is_dir() and (path / "_CHECKPOINT_METADATA").exists()


def exists(path: os.PathLike) -> bool:
    """A finished artifact: a finalized Orbax checkpoint that also holds its digest.

    The digest is written after Orbax finalized the data and before the directory
    gets its final name, so a save that was killed at any point is not `exists`.
    """
    path = pathlib.Path(path)
    return _orbax_finished(path) and (path / DIGEST_FILE).is_file()


def _abstract(like: PyTree) -> PyTree:
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)


def check_like(tree: PyTree, like: PyTree, where: str) -> None:
    """Raises CheckpointError unless `tree` has the structure, shapes and dtypes of `like`."""
    got, got_def = jax.tree_util.tree_flatten_with_path(tree)
    want, want_def = jax.tree_util.tree_flatten_with_path(like)
    if got_def != want_def:
        got_keys = {jax.tree_util.keystr(p) for p, _ in got}
        want_keys = {jax.tree_util.keystr(p) for p, _ in want}
        raise CheckpointError(
            f"{where}: stored tree structure differs from the model's (missing "
            f"{sorted(want_keys - got_keys)[:3]}, unexpected {sorted(got_keys - want_keys)[:3]})")
    for (path, g), (_, w) in zip(got, want):
        (g_shape, g_dtype), (w_shape, w_dtype) = shape_dtype(g), shape_dtype(w)
        if g_shape != w_shape or g_dtype != w_dtype:
            raise CheckpointError(
                f"{where}: {jax.tree_util.keystr(path)} stored as {g_shape} {g_dtype}, "
                f"expected {w_shape} {w_dtype}")


def _siblings(path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """The staging directory of a save and the aside name of the checkpoint it replaces.

    Both carry Orbax's temporary marker, so every tool that removes unfinished Orbax
    directories (workdir.remove_stale_temporaries, the kill tests) also knows them.
    """
    return (path.parent / f".{path.name}{_ORBAX_TMP}-staging",
            path.parent / f".{path.name}{_ORBAX_TMP}-replaced")


def _remove_stale(path: pathlib.Path) -> None:
    """Temporary directories that a process killed while saving `path` left behind."""
    patterns = [glob.escape(os.fspath(path)) + _ORBAX_TMP + "*",
                glob.escape(os.fspath(path.parent / f".{path.name}")) + _ORBAX_TMP + "*"]
    for pattern in patterns:
        for stale in glob.glob(pattern):
            print(f"warning: removing {stale}, left by an interrupted save",
                  file=sys.stderr, flush=True)
            shutil.rmtree(stale) if os.path.isdir(stale) else os.unlink(stale)


def _fsync_dir(directory: pathlib.Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(fd)


def save_tree(path: os.PathLike, tree: PyTree) -> None:
    """Writes `tree` (host or device arrays) as a finished, digested Orbax checkpoint.

    A previous checkpoint at `path` is replaced only once the new one is complete, so
    a failed save (full disk, read-only file system) leaves it as it was. Failures of
    the file system are raised as OSError naming `path`. In a multi-host run every
    process calls this: Orbax writes the arrays from all of them, and the primary alone
    does the bookkeeping (stale cleanup, digest, renames), each step fenced.
    """
    path = pathlib.Path(path).absolute()  # Orbax needs absolute paths
    staging, replaced = _siblings(path)

    def prepare() -> None:
        _remove_stale(path)
        path.parent.mkdir(parents=True, exist_ok=True)

    def finish() -> None:
        _write_json_here(staging / DIGEST_FILE, tree_digest(tree))
        if path.exists():
            os.replace(path, replaced)
            os.replace(staging, path)
            shutil.rmtree(replaced, ignore_errors=True)
        else:
            os.replace(staging, path)
        _fsync_dir(path.parent)

    def clean_up() -> None:
        for leftover in glob.glob(glob.escape(os.fspath(staging)) + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if replaced.exists() and not path.exists():
            os.replace(replaced, path)  # the swap failed halfway: put the old one back

    try:
        distributed.on_primary(prepare, f"preparing {path}")
        # The synchronous Checkpointer: the async one leaves a thread waiting for
        # minutes when the directory cannot be created (read-only file system).
        checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
        try:
            checkpointer.save(os.fspath(staging), args=ocp.args.StandardSave(tree),
                              force=True)
        finally:
            checkpointer.close()
        distributed.on_primary(finish, f"finishing {path}")
    except Exception as err:
        if distributed.is_primary():
            clean_up()
        named = _as_os_error(err, path)
        if named is not None:
            raise named from err
        raise


def load_tree(path: os.PathLike, like: PyTree) -> PyTree:
    """Restores a tree shaped like `like`, verified against its digest.

    Raises CheckpointError naming the path (and the leaf, where one is at fault) if
    the checkpoint is missing, unfinished, has no digest, does not fit `like`, cannot
    be read, or its bytes differ from the digest.
    """
    path = pathlib.Path(path).absolute()  # Orbax needs absolute paths
    if not _orbax_finished(path):
        raise CheckpointError(f"checkpoint {path} is missing or unfinished")
    digest_path = path / DIGEST_FILE
    if not digest_path.is_file():
        raise CheckpointError(f"checkpoint {path} has no integrity digest ({DIGEST_FILE}): "
                              "its save did not finish; delete it to recompute")
    digest = read_json(digest_path)
    check_digest_shape(digest, like, f"checkpoint {path}")
    checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    try:
        tree = checkpointer.restore(os.fspath(path),
                                    args=ocp.args.StandardRestore(_abstract(like)))
    except Exception as err:  # Orbax raises many types for damaged files.
        raise CheckpointError(f"checkpoint {path} cannot be read ({_one_line(err)}); "
                              "delete it to recompute") from err
    finally:
        checkpointer.close()
    check_like(tree, like, f"checkpoint {path}")
    verify_digest(tree, digest, f"checkpoint {path}")
    return tree


# ---- step checkpoints -----------------------------------------------------------------
class StepCheckpoints:
    """Periodic checkpoints of a training run: the train state plus JSON metadata.

    The metadata carries the state's digest. `latest` skips (with a warning naming
    the directory) any checkpoint that cannot be read or fails its digest, and
    `save` replaces such a checkpoint when training reaches its step again.
    """

    def __init__(self, directory: os.PathLike, max_to_keep: int = 2):
        directory = pathlib.Path(directory).absolute()  # Orbax needs absolute paths
        self._directory = directory
        def remove_killed_saves() -> None:
            # Steps whose save was killed. Orbax's own cleanup (enabled below too) runs
            # in the background and is only awaited by the next save; this is at once.
            for stale in glob.glob(glob.escape(os.fspath(directory)) + f"/*{_ORBAX_TMP}*"):
                print(f"warning: removing {stale}, left by an interrupted save",
                      file=sys.stderr, flush=True)
                shutil.rmtree(stale) if os.path.isdir(stale) else os.unlink(stale)

        try:
            distributed.on_primary(remove_killed_saves, f"cleaning {directory}")
            self._manager = ocp.CheckpointManager(
                os.fspath(directory),
                options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                     enable_async_checkpointing=False,
                                                     cleanup_tmp_directories=True))
        except Exception as err:
            named = _as_os_error(err, directory)
            if named is not None:
                raise named from err
            raise

    def step_directory(self, step: int) -> pathlib.Path:
        return self._directory / str(step)

    def save(self, step: int, state: PyTree, meta: dict) -> None:
        meta = {**meta, _META_DIGEST_KEY: tree_digest(state)}
        try:
            if step in self._manager.all_steps():  # a damaged one that `latest` skipped
                self._manager.delete(step)
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                force=True)
            self._manager.wait_until_finished()
        except Exception as err:
            named = _as_os_error(err, self.step_directory(step))
            if named is not None:
                raise named from err
            raise

    def latest(self, like: PyTree, at_most: Optional[int] = None
               ) -> Optional[tuple[int, PyTree, dict]]:
        """The newest intact checkpoint (at step `at_most` or before, if given), falling
        back to older ones if it is damaged."""
        for step in sorted(self._manager.all_steps(), reverse=True):
            if at_most is not None and step > at_most:
                continue
            where = f"step checkpoint {self.step_directory(step)}"
            try:
                out = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(_abstract(like)),
                    meta=ocp.args.JsonRestore()))
                meta = dict(out["meta"])
                digest = meta.pop(_META_DIGEST_KEY, None)
                if digest is None:
                    raise CheckpointError("no integrity digest in its metadata")
                check_like(out["state"], like, "the state")
                verify_digest(out["state"], digest, "the state", advice="")
            except Exception as err:  # noqa: BLE001 - any damage means: try an older one.
                print(f"warning: {where} is damaged or unreadable ({_one_line(err)}); "
                      "trying an older one", file=sys.stderr, flush=True)
                continue
            return step, out["state"], meta
        return None

    def close(self) -> None:
        self._manager.close()


# ---- JSON -----------------------------------------------------------------------------
def _write_fully(fd: int, data: bytes) -> None:
    """The low-level write of every JSON file (tests inject ENOSPC/EROFS here)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_json(path: os.PathLike, data: Any) -> None:
    """Writes JSON atomically: a temporary file in the same directory, fsync, rename.

    On failure the previous file (if any) is untouched, the temporary file is removed
    and the OSError names `path`. In a multi-host run only the primary process writes
    (every process calls this at the same point).
    """
    distributed.on_primary(lambda: _write_json_here(path, data), f"writing {path}")


def _write_json_here(path: os.PathLike, data: Any) -> None:
    """write_json in this process, unfenced (inside a change already on the primary)."""
    path = pathlib.Path(path)
    text = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            _write_fully(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as err:
        named = _as_os_error(err, path)
        if named is None:
            raise
        raise named from err
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def read_json(path: os.PathLike) -> Any:
    """Reads a JSON file written by write_json; damage (truncation too) names the path."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt ({_one_line(err)}); delete it to "
                              "recompute") from err
