"""The decoded cache (jaxtickets/data/decoded_cache.py): written on the first load of a
TFDS split, used on the next, and rebuilt, never trusted, when the prepared dataset
changed or the cache is damaged; a data dir that cannot be written still loads."""

from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest

from conftest import SHARED_DATA, SHARED_FILES, shared_to_tfds
from jaxtickets.data import decoded_cache, tfds_io

N_TRAIN, N_TEST = 200, 50


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A small MNIST in TFDS format, made once; each test works on a copy."""
    return shared_to_tfds("mnist", tmp_path_factory.mktemp("tfds"), N_TRAIN, N_TEST)


@pytest.fixture
def data_dir(prepared, tmp_path):
    copy = tmp_path / "tfds"
    shutil.copytree(prepared, copy)
    return str(copy)


@pytest.fixture
def decodes(monkeypatch):
    """Counts the splits decoded from the TFDS records."""
    calls = []
    real = tfds_io._decode_split

    def counting(name, split, data_dir):
        calls.append(split)
        return real(name, split, data_dir)

    monkeypatch.setattr(tfds_io, "_decode_split", counting)
    return calls


def cache_dir(data_dir):
    return tfds_io.prepared_dir("mnist", data_dir) / decoded_cache.CACHE_DIR


def decoded(data_dir, split="train"):
    return tfds_io.load_tfds_arrays("mnist", split, data_dir, cache=False)


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def test_written_on_first_load_and_used_on_the_second(data_dir, monkeypatch):
    first = tfds_io.load_tfds_arrays("mnist", "train", data_dir)
    assert sorted(os.listdir(cache_dir(data_dir))) == [
        "train.images.npy", "train.json", "train.labels.npy"]
    assert first[0].dtype == np.uint8 and first[0].shape == (N_TRAIN, 28, 28, 1)
    assert first[1].dtype == np.int32 and first[1].shape == (N_TRAIN,)

    def no_decoding(*args):
        raise AssertionError("decoded although the cache is valid")

    reference = decoded(data_dir)
    monkeypatch.setattr(tfds_io, "_decode_split", no_decoding)
    second = tfds_io.load_tfds_arrays("mnist", "train", data_dir)
    assert_same(first, reference)
    assert_same(second, reference)
    # The TFDS data itself is untouched by the cache folder beside it.
    monkeypatch.undo()
    assert_same(decoded(data_dir), reference)


def test_a_sliced_split_is_decoded_not_cached(data_dir, decodes):
    images, _ = tfds_io.load_tfds_arrays("mnist", "train[:10]", data_dir)
    assert len(images) == 10 and decodes == ["train[:10]"]
    assert not cache_dir(data_dir).exists()


def test_rebuilt_when_the_dataset_is_prepared_again(data_dir, decodes, tmp_path):
    old = tfds_io.load_tfds_arrays("mnist", "test", data_dir)
    kept = tmp_path / "old_cache"
    shutil.copytree(cache_dir(data_dir), kept)
    # Other images: the last N_TEST test images of the shared file, in place.
    with np.load(SHARED_DATA / SHARED_FILES["mnist"]) as npz:
        n_train, n_test = len(npz["y_train"]), len(npz["y_test"])
    indices = {"train": np.arange(N_TRAIN), "test": np.arange(n_test - N_TEST, n_test)}
    assert n_train >= N_TRAIN
    tfds_io.import_to_tfds("mnist", tfds_io.decode_shared_npz(
        "mnist", SHARED_DATA / SHARED_FILES["mnist"], indices=indices), data_dir,
        overwrite=True)
    # The old cache put back beside the new records must not be trusted.
    shutil.copytree(kept, cache_dir(data_dir), dirs_exist_ok=True)
    decodes.clear()
    new = tfds_io.load_tfds_arrays("mnist", "test", data_dir)
    assert decodes == ["test"]
    assert_same(new, decoded(data_dir, "test"))
    assert new[0].tobytes() != old[0].tobytes()
    decodes.clear()
    assert_same(tfds_io.load_tfds_arrays("mnist", "test", data_dir), new)
    assert decodes == []  # rebuilt for the new records


def test_rebuilt_when_a_record_file_changes(data_dir, decodes):
    tfds_io.load_tfds_arrays("mnist", "test", data_dir)
    folder = tfds_io.prepared_dir("mnist", data_dir)
    record = next(p for p in folder.iterdir() if "test.array_record" in p.name)
    st = record.stat()
    os.utime(record, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    decodes.clear()
    tfds_io.load_tfds_arrays("mnist", "test", data_dir)
    assert decodes == ["test"]


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)


def _flip_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) - 1234)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))


def _garble(path):
    path.write_text('{"format": 1, "dataset": "mnist"')


def _wrong_shape(path):
    meta = json.loads(path.read_text())
    meta["arrays"]["images"]["shape"][0] -= 1
    path.write_text(json.dumps(meta))


DAMAGE = {
    "truncated images": ("train.images.npy", _truncate),
    "flipped image byte": ("train.images.npy", _flip_byte),
    "truncated labels": ("train.labels.npy", _truncate),
    "missing images": ("train.images.npy", os.remove),
    "missing metadata": ("train.json", os.remove),
    "corrupt metadata": ("train.json", _garble),
    "metadata of another shape": ("train.json", _wrong_shape),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_cache_is_rebuilt(data_dir, decodes, damage):
    reference = tfds_io.load_tfds_arrays("mnist", "train", data_dir)
    name, harm = DAMAGE[damage]
    harm(cache_dir(data_dir) / name)
    decodes.clear()
    assert_same(tfds_io.load_tfds_arrays("mnist", "train", data_dir), reference)
    assert decodes == ["train"]
    decodes.clear()
    assert_same(tfds_io.load_tfds_arrays("mnist", "train", data_dir), reference)
    assert decodes == []  # whole again


def test_a_read_only_data_dir_falls_back_to_decoding(data_dir, decodes, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    # Patched rather than chmod: a test running as root writes through any mode.
    monkeypatch.setattr(decoded_cache.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(decoded_cache, "_warned", set())
    warnings = []
    monkeypatch.setattr(decoded_cache.logging, "warning",
                        lambda msg, *args: warnings.append(msg % args))
    first = tfds_io.load_tfds_arrays("mnist", "train", data_dir)
    second = tfds_io.load_tfds_arrays("mnist", "train", data_dir)
    assert decodes == ["train", "train"]
    assert_same(first, second)
    assert len(warnings) == 1 and "Read-only file system" in warnings[0]
    assert not any(p.suffix == ".npy" for p in cache_dir(data_dir).iterdir())


def test_the_start_up_line(monkeypatch):
    from jaxtickets import startup
    from jaxtickets.training.loop import Progress

    clock = iter([100.0, 101.5, 102.0, 102.25, 104.0])
    monkeypatch.setattr(startup.time, "time", lambda: next(clock))
    monkeypatch.setattr(startup, "_process_start", 99.0)
    monkeypatch.setattr(startup, "_imports_done", None)
    startup.mark_imports_done()  # 100.0
    startup.begin_experiment()
    with startup.loading_data():  # 101.5 .. 102.0
        pass
    with startup.loading_data():  # 102.25 .. 104.0
        pass
    monkeypatch.setattr(startup.time, "time", lambda: 105.0)
    lines = []
    progress = Progress(10, 0.0, first_step=lambda: lines.append(startup.line(0.5)))
    monkeypatch.setattr("jaxtickets.distributed.primary_print", lambda *a, **k: None)
    progress.update("run", 1, 10, 1, {})
    progress.update("run", 2, 10, 1, {})
    assert lines == ["start-up 6.0 s: imports 1.0, data 2.2, compile 0.5, other 2.2"]
