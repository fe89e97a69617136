"""Image classification splits read straight from an .npz file: no TFDS, no Grain.

Two layouts are understood, those of the offline copies in ../shared/data:

- arrays: ``x_{split}`` uint8 [N, H, W] (grey, as MNIST) or [N, H, W, C], with
  ``y_{split}`` integer labels [N];
- JPEG buffers: ``jpeg_{split}`` one flat uint8 buffer of concatenated JPEG files and
  ``offsets_{split}`` int64 [N + 1] (image i is ``buf[offsets[i]:offsets[i + 1]]``),
  with ``y_{split}`` (CIFAR-10 stored at ~900 bytes an image).

Both come out as ``{split: (images uint8 [N, H, W, C], labels int32 [N])}``. This
module imports only numpy and Pillow so that in-memory runs need neither TFDS nor
Grain installed (data.source='npz'); tfds_io uses it to import the same files into
TFDS.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from jaxtickets.host import host_cores

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]
SPLITS = ("train", "test")
# JPEGs decoded per task: large enough to amortise scheduling, small enough that
# 60,000 CIFAR images spread over every core.
_DECODE_CHUNK = 512


def decode_threads() -> int:
    """Threads for JPEG decoding: the cores this process may use, at most 32. Pillow
    releases the GIL inside its C decoder, so threads overlap the decoding; the header
    parsing around it is Python and holds the GIL, which bounds the gain."""
    return max(1, min(32, host_cores()))


def _mode(jpeg: bytes) -> str:
    """'L' when the image is stored grey, else 'RGB' (what every image is converted to,
    so that a file's images share one channel count)."""
    with Image.open(io.BytesIO(jpeg)) as im:
        return "L" if im.mode == "L" else "RGB"


def _decode_one(jpeg: bytes, mode: str) -> np.ndarray:
    """One encoded image as uint8 [H, W, C] in `mode` ('L': C = 1, 'RGB': C = 3)."""
    with Image.open(io.BytesIO(jpeg)) as im:
        image = np.asarray(im if im.mode == mode else im.convert(mode))
    return image[..., None] if image.ndim == 2 else image


def decode_jpegs(buffer: np.ndarray, offsets: np.ndarray, keep: np.ndarray,
                 threads: int | None = None) -> np.ndarray:
    """Decodes images `keep` of a flat JPEG buffer into one uint8 [len(keep), H, W, C]
    array, in chunks on a thread pool. Every image must have the first one's size (one
    array cannot hold ragged images) and is converted to its colour mode (grey or RGB).

    Raises:
      ValueError: an image of another shape, or one Pillow cannot decode.
    """
    keep = np.asarray(keep, np.int64)
    if len(keep) == 0:
        raise ValueError("no images to decode")

    def encoded(i: int) -> bytes:
        return buffer[offsets[i]:offsets[i + 1]].tobytes()

    def decoded(i: int, mode: str | None) -> np.ndarray:
        """Image i in `mode` (None: the image's own, grey or RGB)."""
        try:
            jpeg = encoded(i)
            return _decode_one(jpeg, mode or _mode(jpeg))
        except OSError as err:  # PIL's UnidentifiedImageError, truncated files
            raise ValueError(f"image {i} is not a decodable JPEG ({err})") from None

    first = decoded(int(keep[0]), None)
    mode = "L" if first.shape[-1] == 1 else "RGB"
    out = np.empty((len(keep), *first.shape), np.uint8)

    def decode_chunk(start: int) -> None:
        for j in range(start, min(start + _DECODE_CHUNK, len(keep))):
            image = decoded(int(keep[j]), mode)
            if image.shape != first.shape:
                raise ValueError(f"image {int(keep[j])} has shape {image.shape}, the first "
                                 f"{first.shape}; all images must share one shape")
            out[j] = image

    starts = range(0, len(keep), _DECODE_CHUNK)
    with concurrent.futures.ThreadPoolExecutor(threads or decode_threads()) as pool:
        list(pool.map(decode_chunk, starts))  # list(): re-raises a worker's error
    return out


def layout(keys: Sequence[str], split: str) -> str:
    """'arrays' or 'jpeg': how `split` is stored, from the file's array names.

    Raises:
      ValueError: the split or its labels are missing.
    """
    if f"y_{split}" not in keys:
        raise ValueError(f"no labels 'y_{split}' (holds {sorted(keys)})")
    if f"x_{split}" in keys:
        return "arrays"
    if f"jpeg_{split}" in keys and f"offsets_{split}" in keys:
        return "jpeg"
    raise ValueError(f"no images for split {split!r}: expected 'x_{split}', or "
                     f"'jpeg_{split}' with 'offsets_{split}' (holds {sorted(keys)})")


def _split_images(data: Mapping[str, np.ndarray], split: str, count: int, keep: np.ndarray,
                  threads: int | None) -> np.ndarray:
    """The images `keep` of one split (of `count` labels) as uint8 [len(keep), H, W, C]."""
    if layout(list(data.keys()), split) == "jpeg":
        offsets = data[f"offsets_{split}"]
        if offsets.shape != (count + 1,):
            raise ValueError(f"'offsets_{split}' must have {count + 1} entries (one per "
                             f"label, plus the end), got shape {offsets.shape}")
        return decode_jpegs(data[f"jpeg_{split}"], offsets, keep, threads)
    images = data[f"x_{split}"]
    if len(images) != count:
        raise ValueError(f"'x_{split}' holds {len(images)} images for {count} labels")
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"'x_{split}' must be uint8 [N, H, W] or [N, H, W, C], got "
                         f"{images.dtype} {images.shape}")
    images = images[keep]
    return images[..., None] if images.ndim == 3 else images


def _open(path: str | os.PathLike[str]) -> np.lib.npyio.NpzFile:
    """The file's arrays, opened lazily (only the splits asked for are read).

    Raises:
      ValueError: it is not an .npz archive (a single .npy array, or text).
    """
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise ValueError(f"not a readable .npz file ({err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("holds one array, not an .npz archive of named arrays")
    return data


def load_npz_arrays(path: str | os.PathLike[str], *,
                    indices: Mapping[str, Sequence[int] | np.ndarray] | None = None,
                    threads: int | None = None) -> Arrays:
    """Loads an .npz in either layout into ``{split: (images uint8 NHWC, labels int32)}``.

    ``indices`` optionally picks examples per split (splits not named are skipped),
    which saves decoding all of a JPEG file when a few images will do; by default
    'train' and 'test'. ``threads``: JPEG decoding threads (default: the usable cores).

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: the file lacks a split's arrays or holds malformed ones.
    """
    splits = SPLITS if indices is None else tuple(indices)
    out: Arrays = {}
    with _open(path) as data:
        for split in splits:
            layout(list(data.keys()), split)  # a clear error before any decoding
            labels = np.asarray(data[f"y_{split}"])
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"'y_{split}' must be integer labels [N], got "
                                 f"{labels.dtype} {labels.shape}")
            keep = (np.arange(len(labels)) if indices is None
                    else np.asarray(indices[split], np.int64))
            images = _split_images(data, split, len(labels), keep, threads)
            out[split] = (np.ascontiguousarray(images), labels[keep].astype(np.int32))
    return out
