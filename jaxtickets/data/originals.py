"""MNIST and CIFAR-10 from their original files, downloaded through TFDS, without TensorFlow.

TFDS's own ``mnist`` and ``cifar10`` builders need TensorFlow to prepare their data:
they extract and read the downloaded files with ``tf.io.gfile`` and PNG-encode numpy
images with ``tf.image``. Only their download step runs without it, so that is the part
used here: ``tfds.download.DownloadManager`` fetches the files those builders fetch,
from the same URLs, checks each against the size and SHA-256 that TFDS registers for
that URL (a URL TFDS does not know is refused), and caches it under
``download_dir/<name>/`` (TFDS's own layout, so a rerun reuses it). The files are then
decoded here with numpy (gzipped IDX files for MNIST, the binary batches inside
CIFAR-10's tar.gz), checked (headers, split sizes, CIFAR-10's class names) and handed to
:func:`jaxtickets.data.tfds_io.import_to_tfds`, the writer that ``prepare --source``
uses: the result is the same dataset on disk, built in a temporary folder and renamed
into place only once it is complete.
"""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from jaxtickets.data import tfds_io

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]

_MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"  # TFDS's mirror
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"

# What the registered TFDS builders download (tensorflow_datasets/image_classification/
# mnist.py and cifar.py); TFDS's url_checksums/ hold the size and SHA-256 of each.
URLS: dict[str, dict[str, str]] = {
    "mnist": {
        "train_images": _MNIST_URL + "train-images-idx3-ubyte.gz",
        "train_labels": _MNIST_URL + "train-labels-idx1-ubyte.gz",
        "test_images": _MNIST_URL + "t10k-images-idx3-ubyte.gz",
        "test_labels": _MNIST_URL + "t10k-labels-idx1-ubyte.gz",
    },
    "cifar10": {"archive": _CIFAR10_URL},
}

# Examples per split in the official releases; the decoded files must hold exactly these.
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "mnist": {"train": 60_000, "test": 10_000},
    "cifar10": {"train": 50_000, "test": 10_000},
}

# IDX magic numbers: 0x08 (unsigned byte) data, then the number of dimensions.
_IDX_IMAGES = 0x00000803
_IDX_LABELS = 0x00000801
_MNIST_SIDE = 28

# Inside cifar-10-binary.tar.gz: 10,000 records per batch file, each one label byte and
# a 32x32 image as three 1024-byte planes (red, green, blue), rows top to bottom.
_CIFAR_DIR = "cifar-10-batches-bin/"
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
_CIFAR_META = "batches.meta.txt"
_CIFAR_SIDE = 32
_CIFAR_RECORD = 1 + 3 * _CIFAR_SIDE * _CIFAR_SIDE


class DownloadFailed(RuntimeError):
    """The original files could not be fetched (network, HTTP or checksum failure)."""


def download(name: str, download_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Fetches ``name``'s original files into ``download_dir`` (or reuses them there).

    Returns ``{key in URLS[name]: local path}``. A file whose size or SHA-256 differs
    from the one TFDS registers for its URL is rejected; an interrupted download leaves
    only a temporary ``*.tmp.*`` folder, which the next call does not take for the file.

    Raises:
      DownloadFailed: a file could not be fetched or did not match its checksum.
    """
    urls = URLS[_check_name(name)]
    try:
        manager = tfds.download.DownloadManager(
            download_dir=Path(download_dir).expanduser(),
            dataset_name=name,
            force_checksums_validation=True,  # Only URLs whose checksum TFDS knows.
        )
        paths = manager.download(urls)
    except Exception as err:  # requests, TFDS's DownloadError, NonMatchingChecksumError...
        raise DownloadFailed(f"downloading {name}'s original files failed: "
                             f"{type(err).__name__}: {err}") from err
    return {key: Path(path) for key, path in paths.items()}


def read_mnist(paths: Mapping[str, str | os.PathLike[str]]) -> Arrays:
    """Decodes MNIST's four gzipped IDX files (keys as in ``URLS['mnist']``) into
    ``{split: (images uint8 [N, 28, 28, 1], labels int32 [N])}``.

    Raises:
      ValueError: a file is not the IDX file it should be, or images and labels differ
        in number.
    """
    out = {}
    for split in ("train", "test"):
        images = _read_idx(paths[f"{split}_images"], _IDX_IMAGES, 3)
        labels = _read_idx(paths[f"{split}_labels"], _IDX_LABELS, 1)
        if images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
            raise ValueError(f"mnist/{split}: images are {images.shape[1:]}, expected "
                             f"({_MNIST_SIDE}, {_MNIST_SIDE})")
        if len(images) != len(labels):
            raise ValueError(f"mnist/{split}: {len(images)} images but {len(labels)} labels")
        out[split] = (images[..., None], labels.astype(np.int32))
    return out


def _read_idx(path: str | os.PathLike[str], magic: int, ndim: int) -> np.ndarray:
    """One gzipped IDX file of unsigned bytes with ``ndim`` dimensions."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # Not gzip, or cut short.
        raise ValueError(f"{path}: not a complete gzip file ({err})") from None
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        raise ValueError(f"{path}: not an IDX file of {ndim}-D unsigned bytes "
                         f"(magic number {magic:#010x} expected)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != header + int(np.prod(dims)):
        raise ValueError(f"{path}: holds {len(data) - header} bytes of data; its header "
                         f"{dims} says {int(np.prod(dims))}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_cifar10(archive: str | os.PathLike[str]) -> Arrays:
    """Decodes ``cifar-10-binary.tar.gz`` into ``{split: (images uint8 [N, 32, 32, 3],
    labels int32 [N])}``, train being data_batch_1..5 in order and test test_batch.

    Raises:
      ValueError: a file is missing from the archive, a batch is not whole records, or
        batches.meta.txt names other classes than TFDS's cifar10 (in another order).
    """
    wanted = {_CIFAR_DIR + f for files in _CIFAR_FILES.values() for f in files}
    wanted.add(_CIFAR_DIR + _CIFAR_META)
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # Read in memory; nothing is extracted to disk.
                if member.name in wanted and member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    members[member.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"{archive}: not a complete tar.gz archive ({err})") from None
    missing = sorted(wanted - set(members))
    if missing:
        raise ValueError(f"{archive}: lacks {', '.join(missing)}")

    classes = [line.strip() for line in members[_CIFAR_DIR + _CIFAR_META].decode().splitlines()]
    classes = [c for c in classes if c]
    if tuple(classes) != tfds_io.CIFAR10_CLASSES:
        raise ValueError(f"{archive}: {_CIFAR_META} names the classes {classes}; expected "
                         f"{list(tfds_io.CIFAR10_CLASSES)}")

    out = {}
    for split, files in _CIFAR_FILES.items():
        data = b"".join(members[_CIFAR_DIR + f] for f in files)
        if len(data) % _CIFAR_RECORD:
            raise ValueError(f"{archive}: the {split} batches are not whole records of "
                             f"{_CIFAR_RECORD} bytes")
        records = np.frombuffer(data, np.uint8).reshape(-1, _CIFAR_RECORD)
        images = records[:, 1:].reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
        out[split] = (np.ascontiguousarray(images), records[:, 0].astype(np.int32))
    return out


def read_originals(name: str, paths: Mapping[str, str | os.PathLike[str]]) -> Arrays:
    """Decodes the files that :func:`download` returned and checks the split sizes.

    Raises:
      ValueError: the files do not decode, or do not hold ``SPLIT_SIZES[name]``.
    """
    arrays = read_mnist(paths) if _check_name(name) == "mnist" else read_cifar10(
        paths["archive"])
    sizes = {split: len(labels) for split, (_, labels) in arrays.items()}
    if sizes != SPLIT_SIZES[name]:
        raise ValueError(f"{name}: the downloaded files hold {sizes} examples per split; "
                         f"the official release has {SPLIT_SIZES[name]}")
    return arrays


def download_and_prepare(
    name: str,
    data_dir: str | os.PathLike[str],
    *,
    download_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> str:
    """Downloads ``name`` (MNIST or CIFAR-10) and prepares it as a TFDS dataset.

    ``download_dir`` defaults to ``data_dir/downloads`` (TFDS's default); the files stay
    there afterwards, so preparing again (``overwrite=True``) needs no network. Returns
    the prepared folder ``data_dir/name/version``, as ``tfds_io.import_to_tfds`` does.

    Raises:
      FileExistsError: already prepared and ``overwrite`` is False (checked before
        anything is downloaded).
      DownloadFailed: the files could not be fetched or failed their checksums.
      ValueError: the files do not decode to the official dataset.
    """
    _check_name(name)
    final = tfds_io.prepared_dir(name, data_dir)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{name} is already prepared at {final}; pass overwrite=True "
                              "(--overwrite) to replace it")
    where = Path(data_dir).expanduser() / "downloads" if download_dir is None else download_dir
    arrays = read_originals(name, download(name, where))
    return tfds_io.import_to_tfds(name, arrays, data_dir, overwrite=overwrite)


def _check_name(name: str) -> str:
    if name not in URLS:
        raise ValueError(f"unsupported dataset {name!r}; expected one of {tuple(URLS)}")
    return name
