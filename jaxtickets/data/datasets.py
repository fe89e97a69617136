"""Named datasets as in-memory uint8 arrays, with P2's held-out validation split.

MNIST and CIFAR-10 are small enough to hold in memory (and on the device); they
come from TFDS (`tfds.data_source` over array_record, no TensorFlow), from an .npz
file (data.source='npz', data/npz_files.py) or, for MNIST, from the subset embedded
in the package so the demo needs no download. TFDS is imported only for 'tfds'.
A dataset named by import path ('package.module:function') comes from the user's
function as arrays (data/imported.py) and is held in memory the same way.
Test images are never used for any choice; validation is carved out of train.
"""

from __future__ import annotations

import dataclasses
import importlib.resources

import numpy as np

from jaxtickets.errors import ConfigError
from jaxtickets.import_paths import is_import_path

NORMALIZATION = {  # per-channel mean and std of the training images
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    # Streamed (data/pipeline.py): the usual ImageNet statistics, for Places365 too.
    **{name: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) for name in (
        "imagenet2012", "imagenet2012_subset/1pct", "imagenet2012_subset/10pct",
        "places365_small")},
}
# 'standard': (pixel/255 - mean) / std per channel; 'unit': pixel/255 in [0, 1], what P4's
# code feeds its networks (it matters for untrained supermasks: P4 Table 1).
NORMALIZE_MODES = ("standard", "unit")


def normalization(dataset: str, mode: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) per channel that inputs are normalized with under `mode`."""
    mean, std = _imported(dataset).mean_std() if is_import_path(dataset) else (
        NORMALIZATION[dataset])
    if mode == "unit":
        return (0.0,) * len(mean), (1.0,) * len(std)
    return mean, std


# Held in memory (and on the device); read from TFDS. 'label' is CIFAR-100's fine label.
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100,
               "svhn_cropped": 10}
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1),  # [H, W, C]
                "cifar10": (32, 32, 3), "cifar100": (32, 32, 3), "svhn_cropped": (32, 32, 3)}
EMBEDDED_MNIST = "mnist_subset.npz"
# Streamed from disk (data/pipeline.py), with their classes; images are cropped to
# data.image_size squares.
STREAMED_CLASSES = {"imagenet2012": 1000, "imagenet2012_subset/1pct": 1000,
                    "imagenet2012_subset/10pct": 1000, "places365_small": 365}


def input_shape(dataset: str, image_size: int = 224) -> tuple[int, int, int]:
    """[H, W, C] of the network input: the dataset's own, or the crop of a streamed one."""
    if dataset in STREAMED_CLASSES:
        return (image_size, image_size, 3)
    if is_import_path(dataset):
        return _imported(dataset).image_shape
    return IMAGE_SHAPES[dataset]


def num_classes(dataset: str) -> int:
    if is_import_path(dataset):
        return _imported(dataset).num_classes
    return STREAMED_CLASSES.get(dataset) or NUM_CLASSES[dataset]


def is_known(dataset: str) -> bool:
    """A built-in dataset name or an import path (which `validate` loads and checks)."""
    return dataset in NUM_CLASSES or dataset in STREAMED_CLASSES or is_import_path(dataset)


def _imported(dataset: str):
    from jaxtickets.data import imported

    return imported.load(dataset)


@dataclasses.dataclass
class Split:
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int32 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> "Split":
        return Split(self.images[index], self.labels[index])

    def with_labels(self, labels: np.ndarray) -> "Split":
        return Split(self.images, np.asarray(labels, dtype=np.int32))


@dataclasses.dataclass
class Splits:
    name: str
    train: Split
    validation: Split
    test: Split
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])


def _embedded_mnist() -> dict[str, Split]:
    ref = importlib.resources.files("jaxtickets.data") / "embedded" / EMBEDDED_MNIST
    with importlib.resources.as_file(ref) as path, np.load(path) as raw:
        return {split: Split(raw[f"x_{split}"][..., None], raw[f"y_{split}"].astype(np.int32))
                for split in ("train", "test")}


def _tfds(name: str, data_dir: str) -> dict[str, Split]:
    from jaxtickets.data.tfds_io import load_tfds_arrays

    out = {}
    for split in ("train", "test"):
        images, labels = load_tfds_arrays(name, split, data_dir or None)
        out[split] = Split(images, labels.astype(np.int32))
    return out


def _npz(dataset: str, path: str) -> dict[str, Split]:
    """train/test from an .npz file (data.source='npz'), checked against `dataset`: a
    file of another dataset must fail here, naming the key, not inside the model."""
    from jaxtickets.data.npz_files import load_npz_arrays

    try:
        arrays = load_npz_arrays(path)
    except FileNotFoundError:
        raise ConfigError(f"data.npz_file: no such file {path!r}") from None
    except (ValueError, KeyError, IndexError) as err:
        raise ConfigError(f"data.npz_file: {path!r}: {err}") from None
    out = {}
    for split, (images, labels) in arrays.items():
        if images.shape[1:] != IMAGE_SHAPES[dataset]:
            raise ConfigError(
                f"data.npz_file: {path!r} holds {split} images of shape "
                f"{tuple(images.shape[1:])}; data.dataset={dataset!r} needs "
                f"{IMAGE_SHAPES[dataset]} [H, W, C]")
        if len(labels) and not 0 <= labels.min() <= labels.max() < NUM_CLASSES[dataset]:
            raise ConfigError(
                f"data.npz_file: {path!r} holds {split} labels outside "
                f"[0, {NUM_CLASSES[dataset]}) for data.dataset={dataset!r}")
        out[split] = Split(images, labels)
    return out


def _raw_splits(dataset: str, source: str, data_dir: str, npz_file: str) -> dict[str, Split]:
    """train/test of `dataset` from `source` ('embedded', 'npz' or 'tfds'), or from its
    function where `dataset` is an import path (`source` is not read then)."""
    if is_import_path(dataset):
        arrays = _imported(dataset)
        return {"train": Split(*arrays.train), "test": Split(*arrays.test)}
    if source == "embedded":
        return _embedded_mnist()
    if source == "npz":
        return _npz(dataset, npz_file)
    return _tfds(dataset, data_dir)


def load_splits(dataset: str, source: str, data_dir: str, validation_size: int,
                train_size: int = 0, test_size: int = 0, split_seed: int = 0,
                npz_file: str = "") -> Splits:
    """Loads train/test and holds `validation_size` training images out (seeded).
    0 holds none out (P0, P1 and P3 train on every image): the validation split is
    empty and, without train_size, train is the whole training set in its stored order.
    `npz_file`: the file that source 'npz' reads (data.npz_file)."""
    raw = _raw_splits(dataset, source, data_dir, npz_file)
    train, test = raw["train"], raw["test"]
    if validation_size >= len(train):
        raise ConfigError(f"data.validation_size: {validation_size} leaves no training "
                         f"images out of {len(train)}")
    order = np.random.default_rng(split_seed).permutation(len(train))
    validation = train.take(np.sort(order[:validation_size]))
    rest = order[validation_size:]
    if train_size:
        if train_size > len(rest):
            raise ConfigError(f"data.train_size: {train_size} exceeds the {len(rest)} "
                             "training images left after the validation split")
        rest = rest[:train_size]
    train = train.take(np.sort(rest))
    if test_size:
        if test_size > len(test):
            raise ConfigError(f"data.test_size: {test_size} exceeds the {len(test)} test images")
        test = test.take(np.sort(np.random.default_rng(split_seed + 1).permutation(
            len(test))[:test_size]))
    return Splits(dataset, train, validation, test, num_classes(dataset))
