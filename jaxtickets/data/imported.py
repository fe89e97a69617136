"""A dataset named by import path (`data.dataset = 'package.module:function'`): the
user's function returns the arrays, which are then held in memory like MNIST's.

The contract: `function()` (no arguments) returns a mapping with

* 'train': (images, labels) and 'test': (images, labels), images uint8 [N, H, W, C]
  (C channels, the same H, W, C in both), labels integers [N] in 0..num_classes-1;
* optionally 'num_classes': an int (default: the largest label + 1).

The function runs once per process and path (the arrays are kept for the setups that
read them). Inputs are normalized with the training images' per-channel mean and
standard deviation (data.normalize='standard') or to [0, 1] ('unit'); everything else
(the validation split held out of train, train_size/test_size, halves, selections,
pad-crop and flip augmentation) is what the built-in in-memory datasets get.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxtickets.errors import ConfigError
from jaxtickets.import_paths import failure, resolve

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class ImportedArrays:
    train: tuple[np.ndarray, np.ndarray]   # uint8 [N, H, W, C], int32 [N]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    mean: tuple[float, ...]                # per channel, of the training images / 255
    std: tuple[float, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train[0].shape[1:])

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.mean, self.std


def load(path: str, key: str = "data.dataset") -> ImportedArrays:
    """The arrays of dataset function `path`, checked against the contract; a
    ConfigError naming `key` otherwise. The last few paths loaded are kept, so the
    function runs once however many keys and setups read it (a failure is not kept)."""
    if path in _CACHE:
        return _CACHE[path]
    fn = resolve(path, key)
    if not callable(fn):
        raise failure(key, path, f"it is a {type(fn).__name__}, not a function returning "
                                 "{'train': (images, labels), 'test': (images, labels)}")
    try:
        raw = fn()
    except Exception as err:
        raise failure(key, path, f"calling it raised {type(err).__name__}: {err}") from err
    arrays = _checked(raw, path, key)
    while len(_CACHE) >= KEEP:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[path] = arrays
    return arrays


KEEP = 2  # datasets kept loaded: an evaluation's and one source's
_CACHE: dict[str, ImportedArrays] = {}


def forget() -> None:
    """Drops the loaded arrays (the next load calls the functions again)."""
    _CACHE.clear()


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images / 255, a chunk at a time (no float copy
    of the whole split); a constant channel gets std 1."""
    channels = images.shape[-1]
    total, sums, squares = 0, np.zeros(channels), np.zeros(channels)
    for start in range(0, len(images), 1024):
        chunk = images[start:start + 1024].reshape(-1, channels).astype(np.float64) / 255.0
        total += len(chunk)
        sums += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
    mean = sums / total
    std = np.sqrt(np.maximum(squares / total - np.square(mean), 0.0))
    return (tuple(float(m) for m in mean),
            tuple(float(s) if s > 1e-6 else 1.0 for s in std))


def _checked(raw: Any, path: str, key: str) -> ImportedArrays:
    def bad(reason: str) -> ConfigError:
        return failure(key, path, f"{reason} (a dataset function returns {{'train': "
                                  "(images, labels), 'test': (images, labels)}, images "
                                  "uint8 [N, H, W, C], optionally 'num_classes')")

    if not isinstance(raw, Mapping) or not all(s in raw for s in SPLITS):
        raise bad(f"it returned a {type(raw).__name__}"
                  + (f" with keys {sorted(map(str, raw))}" if isinstance(raw, Mapping) else ""))
    extra = sorted(set(map(str, raw)) - set(SPLITS) - {"num_classes"})
    if extra:
        raise bad(f"it returned unknown keys {extra}")
    splits = {}
    for split in SPLITS:
        pair = raw[split]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise bad(f"its {split!r} is a {type(pair).__name__}, not a pair (images, labels)")
        images, labels = np.asarray(pair[0]), np.asarray(pair[1])
        if images.dtype != np.uint8 or images.ndim != 4:
            raise bad(f"its {split} images are {images.dtype} of shape {images.shape}, "
                      "not uint8 [N, H, W, C]")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise bad(f"its {split} labels are {labels.dtype} of shape {labels.shape}, not "
                      "integers [N]")
        if len(labels) != len(images):
            raise bad(f"its {split} split has {len(images)} images but {len(labels)} labels")
        if not len(images) or 0 in images.shape[1:]:
            raise bad(f"its {split} images are of shape {images.shape}")
        splits[split] = (images, labels)
    shapes = {s: splits[s][0].shape[1:] for s in SPLITS}
    if shapes["train"] != shapes["test"]:
        raise bad(f"its train images are {shapes['train']} [H, W, C] but its test images "
                  f"{shapes['test']}")
    low = min(int(labels.min()) for _, labels in splits.values())
    high = max(int(labels.max()) for _, labels in splits.values())
    num_classes = raw.get("num_classes", high + 1)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise bad(f"its num_classes is {num_classes!r}, not a positive int")
    num_classes = int(num_classes)
    if low < 0 or high >= num_classes:
        raise bad(f"its labels lie in [{low}, {high}], outside [0, {num_classes - 1}] "
                  f"for {num_classes} classes")
    mean, std = _channel_stats(splits["train"][0])
    as_int32 = {s: (images, labels.astype(np.int32)) for s, (images, labels) in splits.items()}
    return ImportedArrays(as_int32["train"], as_int32["test"], num_classes, mean, std)
