"""`python -m jaxtickets.data.prepare --dataset NAME --data_dir DIR` without --source:
the original files come through TFDS's download manager, here from a fake network.

The fake replaces the download manager's one network call (`_Downloader._sync_download`)
with a copy of small files that the tests write in the datasets' original formats
(MNIST's four gzipped IDX files, CIFAR-10's cifar-10-binary.tar.gz), and registers
their checksums in place of TFDS's; every other connection attempt fails the test.
Everything after the network (TFDS's checksum check and cache, decoding, writing,
reading) is the real code."""

from __future__ import annotations

import gzip
import io
import json
import os
import shlex
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import ROOT, smoke_config
from jaxtickets.data import originals, tfds_io

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

SIZES = {"mnist": {"train": 60, "test": 20}, "cifar10": {"train": 50, "test": 20}}
SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


# --------------------------------------------------------------------------- #
# The fake network (also installed in the subprocess of the command-line test)
# --------------------------------------------------------------------------- #


class NoNetwork(AssertionError):
    pass


def _refuse_connect(sock, address, *args):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        raise NoNetwork(f"a test tried to reach the network: {address}")
    return _REAL_CONNECT[0](sock, address, *args)


def _refuse_connect_ex(sock, address, *args):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        raise NoNetwork(f"a test tried to reach the network: {address}")
    return _REAL_CONNECT[1](sock, address, *args)


_REAL_CONNECT = (socket.socket.connect, socket.socket.connect_ex)


class FakeNetwork:
    """Serves `files` ({url: local file}) in place of the internet.

    `calls` lists the URLs asked for; a URL in `broken` sends half its bytes and then
    drops the connection; any other URL, or any socket connection, fails the test."""

    def __init__(self, files: dict[str, Path], set_attr) -> None:
        from tensorflow_datasets.core.download import checksums, downloader

        self.files, self.calls, self.broken = dict(files), [], set()
        # The checksums the download manager checks against: those of the fixture files.
        self.register()
        set_attr(checksums, "get_all_url_infos", lambda: dict(self.registered))
        set_attr(downloader._Downloader, "_sync_download",
                 lambda _, url, destination, verify=True: self._serve(url, destination))
        set_attr(downloader, "_open_url", self._no_http)
        set_attr(socket.socket, "connect", _refuse_connect)
        set_attr(socket.socket, "connect_ex", _refuse_connect_ex)

    def register(self) -> None:
        """Takes the files as they are now as the release (their checksums)."""
        from tensorflow_datasets.core.download import checksums

        self.registered = {url: checksums.compute_url_info(path)
                           for url, path in self.files.items()}

    def _serve(self, url: str, destination_path):
        from tensorflow_datasets.core.download import checksums, downloader

        self.calls.append(url)
        if url not in self.files:
            raise NoNetwork(f"a real download was attempted: {url}")
        out = Path(destination_path) / url.rsplit("/", 1)[-1]
        data = self.files[url].read_bytes()
        if url in self.broken:
            out.write_bytes(data[: len(data) // 2])
            raise ConnectionResetError(f"connection to {url} reset")
        out.write_bytes(data)
        return downloader.DownloadResult(path=out, url_info=checksums.compute_url_info(out))

    @staticmethod
    def _no_http(url, **kwargs):
        raise NoNetwork(f"a real download was attempted: {url}")


def install_in_subprocess(spec: str) -> None:
    """Entry point of the command-line test's subprocess: the same fake network."""
    spec = json.loads(spec)
    for name, sizes in spec["sizes"].items():
        originals.SPLIT_SIZES[name] = sizes
    FakeNetwork({url: Path(p) for url, p in spec["files"].items()}, setattr)


# --------------------------------------------------------------------------- #
# Fixture files in the original formats
# --------------------------------------------------------------------------- #


def _images(rng: np.random.Generator, labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Noise plus a bright square whose place says the class: learnable in a few steps,
    and every pixel distinct enough that a decoding mistake cannot go unnoticed."""
    images = rng.integers(0, 120, (len(labels), *shape), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        row, col = divmod(int(label), 5)
        image[2 + 12 * row: 12 + 12 * row, 1 + 5 * col: 6 + 5 * col] = 250
    if shape[-1] == 3:  # Distinct channels, so a mixed-up plane order shows.
        images[..., 1] //= 2
        images[..., 2] = 255 - images[..., 2]
    return images


def fixture_arrays(name: str, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in SIZES[name].items():
        labels = rng.permutation(np.arange(n) % 10).astype(np.int32)  # every class
        out[split] = (_images(rng, labels, SHAPES[name]), labels)
    return out


def _idx_gz(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_mnist_originals(folder: Path, arrays) -> dict[str, Path]:
    files = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[split]
        for kind, array, magic in (("images", images[..., 0], 0x803),
                                   ("labels", labels, 0x801)):
            path = folder / f"{prefix}-{kind}-idx{array.ndim}-ubyte.gz"
            _idx_gz(path, array, magic)
            files[originals.URLS["mnist"][f"{split}_{kind}"]] = path
    return files


def write_cifar10_originals(folder: Path, arrays) -> dict[str, Path]:
    def records(images, labels):
        planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # R, G, B planes
        return np.concatenate([labels[:, None].astype(np.uint8), planes], axis=1).tobytes()

    train_images, train_labels = arrays["train"]
    chunks = np.array_split(np.arange(len(train_labels)), 5)
    members = {f"data_batch_{i + 1}.bin": records(train_images[c], train_labels[c])
               for i, c in enumerate(chunks)}
    members["test_batch.bin"] = records(*arrays["test"])
    members["batches.meta.txt"] = ("\n".join(tfds_io.CIFAR10_CLASSES) + "\n\n").encode()
    members["readme.html"] = b"<html></html>"
    path = folder / "cifar-10-binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {originals.URLS["cifar10"]["archive"]: path}


WRITERS = {"mnist": write_mnist_originals, "cifar10": write_cifar10_originals}


@pytest.fixture(autouse=True)
def small_release(monkeypatch):
    """The fixture files' split sizes stand in for the official ones."""
    for name, sizes in SIZES.items():
        monkeypatch.setitem(originals.SPLIT_SIZES, name, sizes)


def serve(name: str, tmp_path: Path, monkeypatch, seed: int = 0):
    """Writes `name`'s fixture files and puts them behind the fake network."""
    folder = tmp_path / f"{name}-originals"
    folder.mkdir(exist_ok=True)
    arrays = fixture_arrays(name, seed)
    return arrays, FakeNetwork(WRITERS[name](folder, arrays), monkeypatch.setattr)


def _canonical(images: np.ndarray, labels: np.ndarray):
    keys = [(int(label), image.tobytes()) for image, label in zip(images, labels, strict=True)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return images[order], labels[order]


def assert_not_prepared(name: str, data_dir: Path) -> None:
    """Nothing under data_dir loads as `name`, and no temporary build folder is left."""
    with pytest.raises(FileNotFoundError, match="not prepared"):
        tfds_io.load_tfds_arrays(name, "train", data_dir)
    assert not tfds.builder(name, data_dir=data_dir).is_prepared()
    assert not (data_dir / name).exists()
    assert not [p.name for p in data_dir.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_download_prepares_exactly_the_original_files(name, tmp_path, monkeypatch):
    arrays, network = serve(name, tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"

    path = originals.download_and_prepare(name, data_dir)

    assert Path(path) == data_dir / name / str(tfds.builder_cls(name).VERSION)
    # The URLs TFDS's own builder downloads (its registered checksums list them).
    official = tfds.download.checksums.load_url_infos(
        tfds.core.utils.tfds_path() / "url_checksums" / f"{name}.txt")
    assert sorted(network.calls) == sorted(official) == sorted(network.files)
    assert {p.name for p in data_dir.iterdir()} == {"downloads", name}
    info = tfds.builder(name, data_dir=data_dir).info
    assert info.file_format.value == "array_record"
    assert {s: info.splits[s].num_examples for s in info.splits} == SIZES[name]
    if name == "cifar10":
        assert info.features["label"].names == list(tfds_io.CIFAR10_CLASSES)
    for split, (want_images, want_labels) in arrays.items():
        images, labels = tfds_io.load_tfds_arrays(name, split, data_dir)
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        assert images.shape == (SIZES[name][split], *SHAPES[name])
        got, want = _canonical(images, labels), _canonical(want_images, want_labels)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        if name == "cifar10":  # 'id' is the position in the original batches, as in TFDS.
            source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
            ids = [source[i]["id"] for i in range(len(source))]
            position = [int((i.decode() if isinstance(i, bytes) else i).split("_")[1])
                        for i in ids]
            np.testing.assert_array_equal(images, want_images[position])
            np.testing.assert_array_equal(labels, want_labels[position])

    # The same examples imported from an offline .npz copy give the same dataset.
    npz = tmp_path / f"{name}.npz"
    np.savez(npz, **{f"{k}_{split}": v for split, (x, y) in arrays.items()
                     for k, v in (("x", x[..., 0] if x.shape[-1] == 1 else x), ("y", y))})
    offline = tmp_path / "offline"
    tfds_io.import_to_tfds(name, tfds_io.decode_shared_npz(name, npz), offline)
    assert (tfds.builder(name, data_dir=offline).info.features.to_json()
            == info.features.to_json())
    for split in arrays:
        for a, b in zip(tfds_io.load_tfds_arrays(name, split, data_dir),
                        tfds_io.load_tfds_arrays(name, split, offline), strict=True):
            np.testing.assert_array_equal(a, b)

    # Preparing again is refused before any download; --overwrite reuses the cache.
    with pytest.raises(FileExistsError, match="already prepared"):
        originals.download_and_prepare(name, data_dir)
    calls = len(network.calls)
    originals.download_and_prepare(name, data_dir, overwrite=True)
    assert len(network.calls) == calls


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_an_experiment_trains_on_the_downloaded_dataset(name, tmp_path, monkeypatch):
    from jaxtickets.data.datasets import load_splits
    from jaxtickets.experiment.driver import run_experiment

    arrays, _ = serve(name, tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"
    originals.download_and_prepare(name, data_dir)
    # What the driver loads: the fixture's examples, validation carved out of train.
    splits = load_splits(name, "tfds", str(data_dir), validation_size=10)
    images = np.concatenate([splits.train.images, splits.validation.images])
    labels = np.concatenate([splits.train.labels, splits.validation.labels])
    np.testing.assert_array_equal(_canonical(images, labels)[0],
                                  _canonical(*arrays["train"])[0])

    config = smoke_config(data__dataset=name, data__source="tfds",
                          data__data_dir=str(data_dir), data__validation_size=10,
                          data__train_size=0, data__test_size=0, train__duration="40st",
                          train__eval_every="40st", train__checkpoint_every="40st",
                          train__batch_size=10, pruning__levels=1, branches=("ticket",),
                          runtime__plot=False)
    rows = run_experiment(config, tmp_path / "run")["rows"]

    assert [(r["level"], r["branch"]) for r in rows] == [(0, "ticket"), (1, "ticket")]
    assert rows[0]["density"] == 1.0 and rows[1]["density"] < 0.9
    pixels = int(np.prod(SHAPES[name]))
    assert rows[0]["remaining_weights"] == pixels * 300 + 300 * 100 + 100 * 10
    # The class is in the images: trained on the right pairs, far above chance (0.1).
    assert rows[0]["test_accuracy"] >= 0.8, rows[0]


def _printed_commands(name: str, data_dir: Path) -> list[list[str]]:
    with pytest.raises(FileNotFoundError) as err:
        tfds_io.load_tfds_arrays(name, "train", data_dir)
    lines = [line.strip() for line in str(err.value).splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("python ")]


def _run_prepare(args: list[str], files, sizes) -> subprocess.CompletedProcess:
    """`python -m jaxtickets.data.prepare *args` in a fresh process, behind the fake
    network (files: {url: path}) with the fixture's split sizes."""
    spec = json.dumps({"files": {u: str(p) for u, p in files.items()}, "sizes": sizes})
    bootstrap = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); "
                 "import test_prepare_download as t; t.install_in_subprocess(sys.argv[2]); "
                 "sys.argv = ['prepare'] + sys.argv[3:]; "
                 "runpy.run_module('jaxtickets.data.prepare', run_name='__main__', "
                 "alter_sys=True)")
    return subprocess.run([sys.executable, "-c", bootstrap, str(ROOT / "tests"), spec, *args],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=300)


def test_the_not_prepared_error_prints_commands_that_work(tmp_path, monkeypatch):
    arrays, network = serve("mnist", tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"

    online, offline = _printed_commands("mnist", data_dir)
    assert online[:3] == ["python", "-m", "jaxtickets.data.prepare"]
    assert "--source" not in online and offline[offline.index("--source") + 1] == "FILE.npz"
    done = _run_prepare(online[3:], network.files, SIZES)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "prepared mnist {'test': 20, 'train': 60}" in done.stdout
    images, labels = tfds_io.load_tfds_arrays("mnist", "train", data_dir)
    np.testing.assert_array_equal(_canonical(images, labels)[0],
                                  _canonical(*arrays["train"])[0])

    # The offline alternative, FILE.npz being a copy in the .npz layout.
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **{f"{k}_{s}": v for s, (x, y) in arrays.items()
                     for k, v in (("x", x[..., 0]), ("y", y))})
    other = tmp_path / "tfds-offline"
    _, offline = _printed_commands("mnist", other)
    args = [str(npz) if a == "FILE.npz" else a for a in offline[3:]]
    assert args != offline[3:]
    done = _run_prepare(args, {}, SIZES)  # No network at all.
    assert done.returncode == 0, done.stderr[-3000:]
    for split in arrays:
        for a, b in zip(tfds_io.load_tfds_arrays("mnist", split, data_dir),
                        tfds_io.load_tfds_arrays("mnist", split, other), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_failed_download_prepares_nothing_and_a_rerun_resumes(tmp_path, monkeypatch):
    _, network = serve("mnist", tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"
    cut = originals.URLS["mnist"]["train_images"]
    network.broken.add(cut)

    with pytest.raises(originals.DownloadFailed, match="reset"):
        originals.download_and_prepare("mnist", data_dir)
    assert_not_prepared("mnist", data_dir)

    network.broken.clear()
    network.calls.clear()
    originals.download_and_prepare("mnist", data_dir)
    assert network.calls == [cut]  # The three complete files came from the cache.
    assert len(tfds_io.load_tfds_arrays("mnist", "test", data_dir)[1]) == 20


def test_the_command_line_reports_a_failed_download(tmp_path, monkeypatch):
    _, network = serve("mnist", tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"
    files = dict(network.files)
    del files[originals.URLS["mnist"]["test_labels"]]  # The fake network refuses it.
    done = _run_prepare(["--dataset", "mnist", "--data_dir", str(data_dir)], files, SIZES)
    assert done.returncode == 1
    assert "Nothing was prepared" in done.stderr and "--source FILE.npz" in done.stderr
    assert_not_prepared("mnist", data_dir)


def test_a_corrupt_download_is_rejected_by_its_checksum(tmp_path, monkeypatch):
    _, network = serve("cifar10", tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"
    archive = network.files[originals.URLS["cifar10"]["archive"]]
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    with pytest.raises(originals.DownloadFailed, match="checksum"):
        originals.download_and_prepare("cifar10", data_dir)
    assert_not_prepared("cifar10", data_dir)
    assert not list((data_dir / "downloads").glob("cifar10/*.tar.gz"))  # Not cached.


@pytest.mark.parametrize("damage", ["truncated", "wrong_count"])
def test_files_that_do_not_decode_to_the_release_prepare_nothing(damage, tmp_path,
                                                                 monkeypatch):
    _, network = serve("mnist", tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"
    if damage == "truncated":  # Registered as it is: the source itself is cut short.
        path = network.files[originals.URLS["mnist"]["test_images"]]
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
        network.register()
        match = "header"
    else:
        monkeypatch.setitem(originals.SPLIT_SIZES, "mnist", {"train": 60_000, "test": 20})
        match = "official release"

    with pytest.raises(ValueError, match=match):
        originals.download_and_prepare("mnist", data_dir)
    assert_not_prepared("mnist", data_dir)


def test_an_interrupted_write_prepares_nothing(tmp_path, monkeypatch):
    serve("cifar10", tmp_path, monkeypatch)
    data_dir = tmp_path / "tfds"
    real, written = tfds_io.Image.fromarray, []

    def interrupt_after_a_few(array):
        written.append(1)
        if len(written) > 30:
            raise KeyboardInterrupt
        return real(array)

    monkeypatch.setattr(tfds_io.Image, "fromarray", interrupt_after_a_few)
    with pytest.raises(KeyboardInterrupt):
        originals.download_and_prepare("cifar10", data_dir)
    assert len(written) == 31
    assert_not_prepared("cifar10", data_dir)

    monkeypatch.setattr(tfds_io.Image, "fromarray", real)
    originals.download_and_prepare("cifar10", data_dir)  # The next run starts over.
    assert len(tfds_io.load_tfds_arrays("cifar10", "train", data_dir)[1]) == 50


def test_the_fake_network_is_the_only_network(tmp_path, monkeypatch):
    _, network = serve("mnist", tmp_path, monkeypatch)
    with pytest.raises(NoNetwork):  # An address, not a name: no DNS look-up either.
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    del network.files[originals.URLS["mnist"]["train_labels"]]
    with pytest.raises(originals.DownloadFailed, match="real download was attempted"):
        originals.download("mnist", tmp_path / "dl")


def test_other_datasets_errors_print_a_builder_command_that_calls_tfds(tmp_path):
    """Datasets that only TFDS's own builder prepares (it needs TensorFlow): the printed
    command, run by a shell against a stand-in `tensorflow_datasets` that records the
    call, asks for this dataset, this data dir and the array_record files that
    `tfds.data_source` reads; the real builder accepts that argument."""
    import inspect

    with pytest.raises(FileNotFoundError) as error:
        tfds_io.open_data_source("cifar100", "train", tmp_path / "data dir")
    command = str(error.value).splitlines()[-1].strip()
    assert command.startswith("python -c ")
    stand_in = tmp_path / "stand_in" / "tensorflow_datasets"
    stand_in.mkdir(parents=True)
    record = tmp_path / "call.json"
    stand_in.joinpath("__init__.py").write_text(
        "import json\n"
        "class _Builder:\n"
        "    def __init__(self, name, data_dir):\n"
        "        self.args = {'name': name, 'data_dir': data_dir}\n"
        "    def download_and_prepare(self, file_format):\n"
        f"        open({str(record)!r}, 'w').write(json.dumps({{**self.args, "
        "'file_format': file_format}))\n"
        "def builder(name, data_dir):\n"
        "    return _Builder(name, data_dir)\n")
    env = {**os.environ, "PYTHONPATH": str(stand_in.parent)}
    done = subprocess.run(command.replace("python", shlex.quote(sys.executable), 1),
                          shell=True, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(record.read_text()) == {
        "name": "cifar100", "data_dir": str(tmp_path / "data dir"),
        "file_format": "array_record"}
    prepare = inspect.signature(tfds.core.DatasetBuilder.download_and_prepare)
    assert "file_format" in prepare.parameters
