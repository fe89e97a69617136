"""The decoded cache: a split of a prepared TFDS dataset kept as plain numpy arrays.

Reading MNIST or CIFAR-10 through ``tfds.data_source`` decodes every PNG again (70,000
for MNIST, about 10 s on two CPU cores). The first load therefore writes the decoded
arrays beside the TFDS data, and later loads read them back in a fraction of a second:

    DATA_DIR/NAME/VERSION/jaxtickets_cache/SPLIT.images.npy   uint8 [N, H, W, C]
    DATA_DIR/NAME/VERSION/jaxtickets_cache/SPLIT.labels.npy   int32 [N]
    DATA_DIR/NAME/VERSION/jaxtickets_cache/SPLIT.json         what they were made from

Every load checks the cache before it is used, and a cache that fails a check is
rebuilt from the TFDS data, never trusted:

* the source: ``SPLIT.json`` records the name, size and modification time (ns) of
  every file of the prepared dataset, and a sha256 of its ``dataset_info.json``. A
  re-prepared dataset is written anew (``prepare --overwrite`` replaces the whole
  folder, so its files get new times; the split sizes and shard names live in
  ``dataset_info.json``), and a changed record file changes its size or its time;
  checking them costs a few ``stat`` calls instead of reading the data again.
* the arrays: the dtype and shape in the ``.npy`` headers, and a sha256 of each
  array's bytes (about 0.13 s for CIFAR-10's 150 MB of training images on one core),
  so a truncated file, a flipped byte or a missing or unreadable ``SPLIT.json`` is
  noticed.

Files are written to temporary names in the cache folder and renamed into place,
``SPLIT.json`` last; a reader that races a writer sees either a whole cache or one that
fails its checks. The arrays are never pickled (``allow_pickle=False``). Where the cache
cannot be written (a read-only data dir), the decoded arrays are used as they are and a
warning is logged once per folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

CACHE_DIR = "jaxtickets_cache"
FORMAT = 1  # bump when the layout or the decoding changes: older caches are rebuilt
_TEMP_PREFIX = ".tmp-"
_ABANDONED_SECONDS = 3600.0
_ARRAYS = ("images", "labels")
_DTYPES = {"images": np.dtype(np.uint8), "labels": np.dtype(np.int32)}
_warned: set[str] = set()

Arrays = tuple[np.ndarray, np.ndarray]


class CacheInvalid(Exception):
    """The cache of a split is missing, stale or damaged (the message says which)."""


def cacheable(split: str) -> bool:
    """Whole named splits only ('train', 'test'): a sliced split ('train[:10%]') is
    decoded as asked."""
    return split.replace("_", "").isalnum()


def source_identity(dataset_dir: Path) -> dict[str, Any]:
    """What identifies the prepared dataset in ``dataset_dir`` without reading its
    records: every file's name, size and mtime_ns, and dataset_info.json's sha256."""
    files = {}
    for entry in sorted(os.scandir(dataset_dir), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=True):
            st = entry.stat()
            files[entry.name] = [st.st_size, st.st_mtime_ns]
    info = dataset_dir / "dataset_info.json"
    if not files or not info.is_file():
        raise CacheInvalid(f"no prepared dataset in {dataset_dir}")
    return {"files": files, "dataset_info_sha256": hashlib.sha256(info.read_bytes()).hexdigest()}


def _paths(dataset_dir: Path, split: str) -> dict[str, Path]:
    folder = dataset_dir / CACHE_DIR
    return {"json": folder / f"{split}.json",
            **{kind: folder / f"{split}.{kind}.npy" for kind in _ARRAYS}}


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


def read(dataset_dir: Path, name: str, split: str) -> Arrays:
    """The cached (images, labels) of ``split``, checked against the source and their
    checksums.

    Raises:
      CacheInvalid: no cache, a stale one, or a damaged one.
    """
    paths = _paths(dataset_dir, split)
    try:
        meta = json.loads(paths["json"].read_text())
    except FileNotFoundError:
        raise CacheInvalid("no cache") from None
    except (OSError, ValueError) as err:
        raise CacheInvalid(f"unreadable {paths['json'].name}: {err}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("arrays"), dict):
        raise CacheInvalid(f"{paths['json'].name} is not a cache description")
    if (meta.get("format"), meta.get("dataset"), meta.get("split")) != (FORMAT, name, split):
        raise CacheInvalid("written for another format, dataset or split")
    if meta.get("source") != source_identity(dataset_dir):
        raise CacheInvalid("the prepared dataset changed since the cache was written")
    out = []
    for kind in _ARRAYS:
        want = meta["arrays"].get(kind)
        if not isinstance(want, dict):
            raise CacheInvalid(f"{paths['json'].name} does not describe the {kind}")
        try:
            array = np.load(paths[kind], allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise CacheInvalid(f"unreadable {paths[kind].name}: {err}") from None
        if (not isinstance(array, np.ndarray) or array.dtype != _DTYPES[kind]
                or str(array.dtype) != want.get("dtype")
                or list(array.shape) != want.get("shape")):
            raise CacheInvalid(f"{paths[kind].name} has another dtype or shape")
        if _digest(array) != want.get("sha256"):
            raise CacheInvalid(f"{paths[kind].name} fails its checksum")
        out.append(array)
    images, labels = out
    if len(images) != len(labels):
        raise CacheInvalid("images and labels differ in length")
    return images, labels


def _write_atomic(path: Path, write: Callable[[Any], None], mode: int) -> None:
    """Writes through ``write(file)`` to a temporary file beside ``path`` (permissions
    ``mode``), then renames."""
    fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_abandoned(folder: Path) -> None:
    """Deletes temporary files that a writer killed midway left over an hour ago."""
    for entry in os.scandir(folder):
        with contextlib.suppress(OSError):
            if (entry.name.startswith(_TEMP_PREFIX)
                    and time.time() - entry.stat().st_mtime > _ABANDONED_SECONDS):
                os.unlink(entry.path)


def write(dataset_dir: Path, name: str, split: str, source: dict[str, Any],
          images: np.ndarray, labels: np.ndarray) -> None:
    """Stores ``split``'s decoded arrays; ``source`` is the identity taken before the
    decoding started (a dataset changed meanwhile then fails the next check)."""
    paths = _paths(dataset_dir, split)
    paths["json"].parent.mkdir(exist_ok=True)
    _remove_abandoned(paths["json"].parent)
    # Readable by whoever may read the dataset: its own files' permissions.
    mode = stat.S_IMODE((dataset_dir / "dataset_info.json").stat().st_mode)
    arrays = {"images": images, "labels": labels}
    meta = {"format": FORMAT, "dataset": name, "split": split, "source": source,
            "arrays": {}}
    for kind, array in arrays.items():
        array = np.ascontiguousarray(array, dtype=_DTYPES[kind])
        _write_atomic(paths[kind], lambda f, a=array: np.save(f, a, allow_pickle=False),
                      mode)
        meta["arrays"][kind] = {"dtype": str(array.dtype), "shape": list(array.shape),
                                "sha256": _digest(array)}
    text = json.dumps(meta, indent=1, sort_keys=True).encode()
    _write_atomic(paths["json"], lambda f: f.write(text), mode)


def load(dataset_dir: str | os.PathLike[str], name: str, split: str,
         decode: Callable[[], Arrays]) -> Arrays:
    """``split``'s arrays from the cache in ``dataset_dir`` when it passes its checks,
    else from ``decode()`` (then cached for the next load, where the folder is
    writable). Both give the same arrays, bit for bit."""
    dataset_dir = Path(dataset_dir)
    if not cacheable(split):
        return decode()
    try:
        return read(dataset_dir, name, split)
    except CacheInvalid as err:
        reason = str(err)
    try:
        source = source_identity(dataset_dir)
    except (CacheInvalid, OSError):
        return decode()  # not prepared: decode() says how to prepare it
    if reason != "no cache":
        logging.info("rebuilding the decoded cache of %s/%s in %s: %s", name, split,
                     dataset_dir, reason)
    images, labels = decode()
    try:
        write(dataset_dir, name, split, source, images, labels)
    except OSError as err:
        folder = str(dataset_dir / CACHE_DIR)
        if folder not in _warned:
            _warned.add(folder)
            logging.warning("cannot write the decoded cache in %s (%s); decoding %s "
                            "from its TFDS records on every run instead", folder,
                            err.strerror or err, name)
    return images, labels
