"""Every label of a streamed split, read once and kept in the workdir.

Data selections (a per-class fraction of the images, a subset of the classes, shuffled
labels, S4L's labelled part) choose images by label before training starts, so they
need all of a split's labels up front. A streamed split keeps each label inside its
record, beside the JPEG bytes: reading the labels means one pass over the split with
the images left encoded (ImageNet: ~1.28M records, a few minutes from local disk). The
result, 4 bytes per image, is stored as .npy under the workdir, so a resumed or
preempted run reads it back instead of passing over the split again.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxtickets import distributed

READ_CHUNK = 256  # records per read call; threads x chunk x ~110 KB (ImageNet) in memory


def _label_records(dataset: str, split: str, data_dir: str | None) -> Sequence[Any]:
    """The split's records with images left as encoded bytes where TFDS allows it
    (its mock data, used in tests, only serves decoded images)."""
    import tensorflow_datasets as tfds

    from jaxtickets.data.tfds_io import open_data_source

    try:
        records = tfds.data_source(dataset, split=split, data_dir=data_dir, download=False,
                                   decoders={"image": tfds.decode.SkipDecoding()})
        if len(records):
            records[0]
        return records
    except Exception:  # noqa: BLE001 - the decoded source below raises the real error
        return open_data_source(dataset, split, data_dir)


def read_labels(records: Sequence[Any], threads: int = 16) -> np.ndarray:
    """int32 labels of all `records`, in order, read by `threads` threads in chunks."""

    def chunk(start: int) -> list[int]:
        keys = list(range(start, min(start + READ_CHUNK, len(records))))
        try:  # array_record reads a batch of keys in one call
            rows = records.__getitems__(keys)
        except (AttributeError, TypeError):  # sources without it (TFDS's mock data)
            rows = [records[i] for i in keys]
        return [int(r["label"]) for r in rows]

    starts = range(0, len(records), READ_CHUNK)
    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
        parts = list(pool.map(chunk, starts))
    return np.asarray([v for part in parts for v in part], dtype=np.int32)


def cache_path(cache_dir: pathlib.Path, dataset: str, split: str) -> pathlib.Path:
    return pathlib.Path(cache_dir) / f"{dataset.replace('/', '-')}.{split}.labels.npy"


def _load_if_valid(path: pathlib.Path, count: int) -> np.ndarray | None:
    """The stored labels, or None when missing, unreadable or of another length (a
    cache is derived data: a bad one is read again, never trusted)."""
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if labels.shape != (count,) or labels.dtype != np.int32:
        return None
    return labels


def cached_labels(dataset: str, split: str, data_dir: str | None, count: int,
                  cache_dir: pathlib.Path | None, threads: int = 16) -> np.ndarray:
    """The `count` labels of `dataset`/`split`: from the cache when it holds them,
    else read (by the primary process in a multi-host run) and stored there."""

    def read() -> np.ndarray:
        labels = read_labels(_label_records(dataset, split, data_dir), threads)
        if labels.shape != (count,):
            raise RuntimeError(f"{dataset}/{split}: read {labels.size} labels, the split "
                               f"has {count} records")
        return labels

    if cache_dir is None:
        return read()
    path = cache_path(cache_dir, dataset, split)

    def build() -> None:
        if _load_if_valid(path, count) is not None:
            return
        if path.exists():
            print(f"label index {path}: unreadable or stale, reading the labels again")
        fresh = read()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, fresh, allow_pickle=False)
        os.replace(tmp, path)

    # Every process takes the fence (none may decide alone that the file is there).
    distributed.on_primary(build, f"writing the label index {path}")
    labels = _load_if_valid(path, count)
    if labels is None:
        raise RuntimeError(f"label index {path}: written but not readable back")
    return labels


def lazy_labels(dataset: str, split: str, data_dir: str | None, count: int,
                cache_dir: pathlib.Path | None, threads: int = 16
                ) -> Callable[[], np.ndarray]:
    """A function that reads the labels on first call and returns the same array after:
    runs without selections never pay for the pass."""
    held: list[np.ndarray] = []

    def labels() -> np.ndarray:
        if not held:
            held.append(cached_labels(dataset, split, data_dir, count, cache_dir, threads))
        return held[0]

    return labels
