"""Tests for jaxtickets.data.tfds_io: TFDS import/export without TensorFlow."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxtickets.data import tfds_io

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

# ../shared/data relative to the repository root.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_FILES = {"mnist": "mnist.npz", "cifar10": "cifar10_jpeg.npz"}
SUBSET = {"train": 500, "test": 200}


def _stratified(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n indices, equally many per class: the shared files are sorted by class."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = n // len(classes)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def _canonical(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorts by (label, pixels) so sets of examples compare regardless of order."""
    keys = [(int(label), image.tobytes()) for image, label in zip(images, labels, strict=True)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return images[order], labels[order]


def _synthetic_mnist(
    n_train: int, n_test: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        split: (
            rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int32),
        )
        for split, n in (("train", n_train), ("test", n_test))
    }


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_round_trip_real_subset(name: str, tmp_path: Path) -> None:
    path = SHARED_DATA / SHARED_FILES[name]
    if not path.exists():
        pytest.skip(f"{path} not available")
    with np.load(path) as data:
        indices = {
            split: _stratified(data[f"y_{split}"], n, seed=i)
            for i, (split, n) in enumerate(SUBSET.items())
        }
    arrays = tfds_io.decode_shared_npz(name, path, indices=indices)

    out = tfds_io.import_to_tfds(name, arrays, tmp_path)

    version = str(tfds.builder_cls(name).VERSION)
    assert Path(out) == tmp_path / name / version
    assert [p.name for p in tmp_path.iterdir()] == [name]  # Temp dir cleaned up.
    info = tfds.builder(name, data_dir=tmp_path).info
    assert info.file_format.value == "array_record"
    for split, n in SUBSET.items():
        assert info.splits[split].num_examples == n
    assert info.features["label"].num_classes == 10
    assert tuple(info.features["image"].shape) == arrays["train"][0].shape[1:]
    if name == "cifar10":
        assert "id" in info.features
        with np.load(path) as data:
            assert info.features["label"].names == [str(c) for c in data["classes"]]

    for split in SUBSET:
        images, labels = tfds_io.load_tfds_arrays(name, split, str(tmp_path))
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        expected_images, expected_labels = arrays[split]
        assert images.shape == expected_images.shape
        got, want = _canonical(images, labels), _canonical(expected_images, expected_labels)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        if name == "cifar10":  # 'id' names each record's position in `arrays`.
            source = tfds.data_source(name, split=split, data_dir=tmp_path, download=False)
            ids = [source[i]["id"] for i in range(len(source))]
            position = [
                int((i.decode() if isinstance(i, bytes) else i).split("_")[-1]) for i in ids
            ]
            np.testing.assert_array_equal(images, expected_images[position])
            np.testing.assert_array_equal(labels, expected_labels[position])


def test_missing_dataset_names_prepare_command(tmp_path: Path) -> None:
    data_dir = tmp_path / "empty"
    with pytest.raises(FileNotFoundError) as err:
        tfds_io.load_tfds_arrays("mnist", "train", str(data_dir))
    message = str(err.value)
    assert "'mnist'" in message and str(data_dir) in message
    assert f"python -m jaxtickets.data.prepare --dataset mnist --data_dir {data_dir}" in message
    assert not data_dir.exists()  # Nothing was downloaded or created.


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    first, second = _synthetic_mnist(20, 10, seed=0), _synthetic_mnist(15, 5, seed=1)
    tfds_io.import_to_tfds("mnist", first, tmp_path)

    with pytest.raises(FileExistsError, match="overwrite=True"):
        tfds_io.import_to_tfds("mnist", second, tmp_path)
    images, labels = tfds_io.load_tfds_arrays("mnist", "train", tmp_path)
    np.testing.assert_array_equal(_canonical(images, labels)[0], _canonical(*first["train"])[0])

    tfds_io.import_to_tfds("mnist", second, tmp_path, overwrite=True)
    assert tfds.builder("mnist", data_dir=tmp_path).info.splits["train"].num_examples == 15
    images, labels = tfds_io.load_tfds_arrays("mnist", "train", tmp_path)
    np.testing.assert_array_equal(_canonical(images, labels)[0], _canonical(*second["train"])[0])
    assert [p.name for p in tmp_path.iterdir()] == ["mnist"]


def test_rejects_bad_input(tmp_path: Path) -> None:
    arrays = _synthetic_mnist(4, 4, seed=0)
    with pytest.raises(ValueError, match="unsupported"):
        tfds_io.import_to_tfds("imagenet2012", arrays, tmp_path)
    wrong_shape = {"train": (np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.int32))}
    with pytest.raises(ValueError, match="shape"):
        tfds_io.import_to_tfds("mnist", wrong_shape, tmp_path)
    bad_label = {"train": (arrays["train"][0], np.full(4, 10))}
    with pytest.raises(ValueError, match="labels"):
        tfds_io.import_to_tfds("mnist", bad_label, tmp_path)
    assert not any(tmp_path.iterdir())  # The temporary build folder is gone too.


@pytest.mark.parametrize(("name", "shape"), [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_load_under_mock_data(name: str, shape: tuple[int, ...], tmp_path: Path) -> None:
    if "as_data_source_fn" not in inspect.signature(tfds.testing.mock_data).parameters:
        pytest.skip("this tfds.testing.mock_data does not mock tfds.data_source")
    with tfds.testing.mock_data(num_examples=7):
        images, labels = tfds_io.load_tfds_arrays(name, "train", str(tmp_path))
    assert images.shape == (7, *shape) and images.dtype == np.uint8
    assert labels.shape == (7,) and labels.dtype == np.int32
    assert ((labels >= 0) & (labels < 10)).all()
