"""Move image classification datasets in and out of TFDS format without TensorFlow.

TFDS's own builders for MNIST and CIFAR-10 need TensorFlow to prepare their data
(and ``tfds.load`` needs the network). :func:`import_to_tfds` writes arrays we
already hold (an offline .npz copy, or the original files decoded by
:mod:`jaxtickets.data.originals`) into the exact on-disk layout the registered TFDS
builder would have produced (same name, version and features, ``array_record``
files), so that the standard
``tfds.data_source(name, data_dir=...)`` and ``tfds.builder(name, ...).info``
work afterwards, with TensorFlow absent. :func:`load_tfds_arrays` reads a split
back into numpy arrays.

How the writing works: a private subclass of the registered builder class
(``tfds.builder_cls(name)``) replaces only ``_split_generators``, so
``download_and_prepare`` runs TFDS's own writer, shuffler and metadata code but
never touches the network. Images are handed over as ``PIL.Image`` objects:
TFDS encodes those to PNG with Pillow, whereas numpy images would go through a
TensorFlow graph.
"""

from __future__ import annotations

import functools
import io
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jaxtickets.data import npz_files

Arrays = Mapping[str, tuple[np.ndarray, np.ndarray]]

SUPPORTED = ("mnist", "cifar10")

# The official cifar10 builder reads its label names from the downloaded
# batches.meta.txt; without the download we must supply them (standard order).
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_LABEL_NAMES: dict[str, tuple[str, ...]] = {"cifar10": CIFAR10_CLASSES}

# Records decoded per __getitems__ call: large enough to amortise the call,
# small enough that a batch of decoded dicts stays a few MB.
_READ_BATCH = 2048


def prepare_command(name: str, data_dir: str | os.PathLike[str],
                    source: str | None = None) -> str:
    """The shell command that prepares ``name`` in ``data_dir`` (used in errors): by
    downloading the original files, or from the offline copy ``source`` when given."""
    source_flag = "" if source is None else f" --source {shlex.quote(source)}"
    return (f"python -m jaxtickets.data.prepare --dataset {shlex.quote(name)}{source_flag}"
            f" --data_dir {shlex.quote(str(data_dir))}")


def builder_command(name: str, data_dir: str | os.PathLike[str]) -> str:
    """The shell command that prepares ``name`` in ``data_dir`` with TFDS's own builder,
    in the array_record format that ``tfds.data_source`` reads (needs TensorFlow)."""
    code = (f'import tensorflow_datasets as tfds; tfds.builder("{name}", data_dir='
            f'"{data_dir}").download_and_prepare(file_format="array_record")')
    return f"python -c {shlex.quote(code)}"


def prepared_dir(name: str, data_dir: str | os.PathLike[str]) -> Path:
    """Where ``name`` lives once prepared in ``data_dir``: ``data_dir/name/version``."""
    return Path(data_dir).expanduser().absolute() / name / str(tfds.builder_cls(name).VERSION)


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #


@functools.cache
def _importer_cls(name: str) -> type[Any]:
    """Subclass of the registered builder whose splits come from in-memory arrays.

    Cached so each dataset gets one class: TFDS keeps a module-level list of
    every builder class ever created.
    """
    base = tfds.builder_cls(name)

    class _ArrayImporter(base, skip_registration=True):  # type: ignore[misc, valid-type, call-arg]
        arrays: Arrays  # Set on the instance before download_and_prepare.
        # No source file means no checksums file to look up. TFDS 4.9.x's own
        # lookup needs the `importlib_resources` backport, which is not a
        # dependency on Python >= 3.9, and we download nothing anyway.
        code_path = None

        def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[Any]]:
            del dl_manager  # Nothing to download: the data is in memory.
            if name in _LABEL_NAMES:
                self.info.features["label"].names = list(_LABEL_NAMES[name])
            return {split: self._examples(split) for split in self.arrays}

        def _examples(self, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
            images, labels = self.arrays[split]
            with_id = "id" in self.info.features
            file_key = next((k for k in ("file_name", "filename")  # imagenet, places365
                             if k in self.info.features), None)
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                # Encoded bytes (JPEG) are stored as they are; PIL images are
                # PNG-encoded by Pillow inside TFDS (no TF).
                example: dict[str, Any] = {
                    "image": image if isinstance(image, bytes) else
                    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image),
                    "label": int(label),
                }
                if with_id:  # Official format, e.g. "train_00042" (index in `arrays`).
                    example["id"] = f"{split}_{i:05d}"
                if file_key:
                    example[file_key] = f"{split}_{i:05d}.JPEG"
                yield i, example

    _ArrayImporter.name = base.name
    # dataset_info.json records the builder's module; keep the official one.
    _ArrayImporter.__module__ = base.__module__
    return _ArrayImporter


def _validate(name: str, arrays: Arrays, features: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Checks arrays against the builder's features; returns them as numpy.

    The PIL path in TFDS does not check shapes, so a wrong array would be
    written silently and only fail (or mislead) at read time.
    """
    if not arrays:
        raise ValueError(f"{name}: `arrays` holds no splits")
    unknown = set(features) - {"image", "label", "id"}
    if unknown:
        raise ValueError(
            f"{name}: builder has features {sorted(unknown)} this importer cannot fill"
        )
    shape = tuple(features["image"].shape)
    num_classes = features["label"].num_classes
    out = {}
    for split, (images, labels) in arrays.items():
        images, labels = np.asarray(images), np.asarray(labels)
        if images.dtype != np.uint8 or images.shape[1:] != shape:
            raise ValueError(
                f"{name}/{split}: images must be uint8 of shape (N, {', '.join(map(str, shape))}),"
                f" got {images.dtype} {images.shape}"
            )
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{name}/{split}: labels must be integers of shape ({len(images)},),"
                f" got {labels.dtype} {labels.shape}"
            )
        if len(labels) == 0:
            raise ValueError(f"{name}/{split}: split is empty")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{name}/{split}: labels must lie in [0, {num_classes})")
        out[split] = (images, labels)
    return out


def import_to_tfds(
    name: str,
    arrays: Arrays,
    data_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> str:
    """Writes ``arrays`` as the TFDS dataset ``name`` (array_record) under ``data_dir``.

    ``arrays`` maps split names (e.g. 'train', 'test') to ``(images uint8 NHWC,
    integer labels)``. The dataset is built in a temporary folder inside
    ``data_dir`` and renamed into place, so readers never see a half-written
    dataset. Records end up in TFDS's usual deterministic shuffled order.

    Returns the prepared dataset folder ``data_dir/name/version``.

    Raises:
      ValueError: unsupported ``name`` or arrays not matching its features.
      FileExistsError: the dataset is already there and ``overwrite`` is False.
    """
    if name not in SUPPORTED:
        raise ValueError(f"unsupported dataset {name!r}; expected one of {SUPPORTED}")
    return _build(name, lambda features: _validate(name, arrays, features), data_dir,
                  overwrite)


JPEG_DATASETS = ("imagenet2012", "places365_small")


def import_jpegs_to_tfds(
    name: str,
    splits: Mapping[str, tuple[Sequence[bytes], np.ndarray]],
    data_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> str:
    """Writes JPEG files (bytes, stored as they are) as the TFDS dataset ``name``.

    For a small ImageNet-format dataset made offline (the tests make one): ``splits``
    maps split names to ``(list of JPEG bytes, integer labels)``. Returns the prepared
    folder, as :func:`import_to_tfds` does.
    """
    if name not in JPEG_DATASETS:
        raise ValueError(f"unsupported dataset {name!r}; expected one of {JPEG_DATASETS}")

    def validate(features: Any) -> dict[str, tuple[list[bytes], np.ndarray]]:
        out = {}
        classes = features["label"].num_classes
        for split, (jpegs, labels) in splits.items():
            labels = np.asarray(labels)
            if len(jpegs) == 0 or labels.shape != (len(jpegs),):
                raise ValueError(f"{name}/{split}: needs as many labels as images (> 0)")
            if labels.min() < 0 or labels.max() >= classes:
                raise ValueError(f"{name}/{split}: labels must lie in [0, {classes})")
            for i, jpeg in enumerate(jpegs):
                try:
                    with Image.open(io.BytesIO(jpeg)) as im:
                        if im.format != "JPEG":
                            raise ValueError(f"is {im.format}")
                except Exception as err:
                    raise ValueError(f"{name}/{split}: image {i} is not a JPEG ({err})") from None
            out[split] = (list(jpegs), labels)
        return out

    return _build(name, validate, data_dir, overwrite)


def _build(name: str, validate: Any, data_dir: str | os.PathLike[str],
           overwrite: bool) -> str:
    """Builds ``name`` from the validated splits in a temporary folder, then renames."""
    cls = _importer_cls(name)
    final = prepared_dir(name, data_dir)
    root = final.parent.parent
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"{name} {cls.VERSION} is already prepared at {final};"
            " pass overwrite=True (prepare: --overwrite) to replace it"
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{cls.VERSION}.importing-", dir=root))
    try:
        builder = cls(data_dir=str(tmp / "data"), file_format="array_record")
        builder.arrays = validate(builder.info.features)
        builder.download_and_prepare(
            download_dir=str(tmp / "downloads"),
            download_config=tfds.download.DownloadConfig(
                try_download_gcs=False,  # Never reach for the network.
                compute_stats=tfds.download.ComputeStatsMode.SKIP,  # Needs TF.
            ),
        )
        # Check what was written before it becomes visible: every split, whole.
        written = {split: builder.info.splits[split].num_examples for split in builder.arrays}
        wanted = {split: len(labels) for split, (_, labels) in builder.arrays.items()}
        if written != wanted:
            raise RuntimeError(f"{name}: wrote {written} examples per split, not {wanted}")
        staged = Path(builder.data_dir)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # overwrite=True: move the old one aside first.
            final.rename(tmp / "replaced")
        try:
            staged.rename(final)
        except OSError as err:  # Another writer won the race.
            raise FileExistsError(f"{final} appeared while importing {name}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


def _read_records(source: Sequence[Any], n: int) -> Iterator[Any]:
    """Yields all records, in batches via ``__getitems__`` where that works.

    ``tfds.testing.mock_data`` (tfds 4.9.x) installs a ``__getitems__`` that
    raises TypeError, so fall back to one-by-one reads in that case.
    """
    batched = hasattr(source, "__getitems__")
    for start in range(0, n, _READ_BATCH):
        keys = list(range(start, min(start + _READ_BATCH, n)))
        if batched:
            try:
                yield from source.__getitems__(keys)  # type: ignore[attr-defined]
                continue
            except TypeError:
                if start:
                    raise
                batched = False
        yield from (source[k] for k in keys)


def open_data_source(name: str, split: str,
                     data_dir: str | os.PathLike[str] | None = None) -> Sequence[Any]:
    """``tfds.data_source`` for a prepared dataset (never downloads): random access to
    decoded records.

    Raises:
      FileNotFoundError: the dataset is not prepared in ``data_dir``; the message says
        how to prepare it.
    """
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception:
        builder = tfds.builder(name, data_dir=data_dir)
        if builder.is_prepared():
            raise
        where = builder.data_dir_root
        if name in SUPPORTED:
            how = (f"Prepare it (downloads the original files; no TensorFlow needed) with:"
                   f"\n  {prepare_command(name, where)}\n"
                   f"or, from an offline .npz copy (see jaxtickets/data/npz_files.py), with:"
                   f"\n  {prepare_command(name, where, source='FILE.npz')}")
        else:
            how = ("TFDS's own builder prepares it; it needs TensorFlow (pip install "
                   "'jaxtickets[tfds-builders]'), and ImageNet its manual download in place:"
                   f"\n  {builder_command(name, where)}")
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir {where} "
            f"(looked for {builder.data_dir}). {how}"
        ) from None


def load_tfds_arrays(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Reads a whole split of a prepared TFDS dataset as ``(images uint8 NHWC, labels int32)``.

    Goes through ``tfds.data_source`` (never downloads; ``data_dir=None`` means
    TFDS's default folder). ``split`` accepts TFDS slicing, e.g. 'train[:10%]'.
    Records come in on-disk order. A whole split ('train', 'test') is decoded once
    and then read from the decoded cache beside the dataset
    (:mod:`jaxtickets.data.decoded_cache`; ``cache=False`` always decodes); the
    arrays are the same either way.

    Raises:
      FileNotFoundError: the dataset is not prepared in ``data_dir``; the
        message gives the command that prepares it.
    """
    decode = functools.partial(_decode_split, name, split, data_dir)
    if not cache:
        return decode()
    from jaxtickets.data import decoded_cache

    dataset_dir = tfds.builder(name, data_dir=data_dir).data_dir
    return decoded_cache.load(dataset_dir, name, split, decode)


def _decode_split(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``split`` decoded record by record through ``tfds.data_source``."""
    source = open_data_source(name, split, data_dir)
    n = len(source)
    images: np.ndarray | None = None
    labels = np.empty((n,), np.int32)
    for i, record in enumerate(_read_records(source, n)):
        image = record["image"]
        if images is None:
            images = np.empty((n, *image.shape), np.uint8)
        images[i] = image
        labels[i] = record["label"]
    if images is None:  # Empty split: take the shape from the metadata.
        shape = tfds.builder(name, data_dir=data_dir).info.features["image"].shape
        images = np.empty((0, *shape), np.uint8)
    return images, labels


# --------------------------------------------------------------------------- #
# The shared npz files
# --------------------------------------------------------------------------- #


def decode_shared_npz(
    name: str,
    path: str | os.PathLike[str],
    *,
    indices: Mapping[str, Sequence[int] | np.ndarray] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loads a /work/shared/data style npz into ``{split: (images uint8 NHWC, labels int32)}``.

    ``indices`` optionally picks examples per split (splits not named are
    skipped), which saves decoding all 60,000 CIFAR JPEGs when only a few are
    needed. The decoding lives in :mod:`jaxtickets.data.npz_files` (no TFDS), which
    data.source='npz' uses too; this keeps the name for the TFDS import path.
    """
    if name not in SUPPORTED:
        raise ValueError(f"unsupported dataset {name!r}; expected one of {SUPPORTED}")
    return npz_files.load_npz_arrays(path, indices=indices)
