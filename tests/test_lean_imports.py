"""In-memory runs need neither TFDS nor Grain (nor array_record), and data.source='npz'
reads an .npz file directly.

The command line runs in a fresh process whose import system refuses the three packages
(a `sys.meta_path` finder raising ImportError), as on a machine without them; the process
reports at exit which of them it asked for and which ended up loaded."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SHARED_DATA, jpeg_layout, needs_cifar
from jaxtickets.data import npz_files
from jaxtickets.data.datasets import load_splits
from jaxtickets.errors import ConfigError

HIDDEN = ("tensorflow_datasets", "grain", "array_record")
REPORT = "HIDDEN-MODULES-REPORT "
# Runs module argv[1] as __main__ with argv[2:], the packages in HIDDEN refused.
BOOTSTRAP = """
import importlib.abc, json, runpy, sys
HIDDEN = set(%r)
refused = []
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            refused.append(name)
            raise ImportError(f"{name} is hidden by the test")
        return None
preloaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
sys.meta_path.insert(0, Hide())
module, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
    print(%r + json.dumps({"preloaded": preloaded, "loaded": loaded, "refused": refused}),
          flush=True)
""" % (HIDDEN, REPORT)


def run_hidden(module: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs `python -m module args` with HIDDEN refused; returns the process and its report
    (as tests/conftest.py's run_cli: a fresh process in the repository root)."""
    done = subprocess.run([sys.executable, "-c", BOOTSTRAP, module, *args], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith(REPORT)]
    assert lines, f"no report; stderr: {done.stderr[-2000:]}"
    return done, json.loads(lines[-1][len(REPORT):])


def assert_ran_without_hidden(done: subprocess.CompletedProcess, report: dict,
                              workdir: pathlib.Path) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["preloaded"] == [] and report["loaded"] == [], report
    rows = json.loads((workdir / "results.json").read_text())["rows"]
    assert rows and all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)


@pytest.mark.parametrize("module, package", [("jaxtickets.data.tfds_io", "tensorflow_datasets"),
                                             ("jaxtickets.data.pipeline", "grain")])
def test_the_hider_refuses_the_packages(module, package):
    """The other tests here could not fail if the hider let the packages through."""
    done, report = run_hidden(module)
    assert done.returncode != 0 and "ImportError" in done.stderr, done.stderr[-2000:]
    assert package in report["refused"] and report["loaded"] == [], report


def test_smoke_cli_runs_without_tfds_grain_array_record(tmp_path):
    workdir = tmp_path / "run"
    done, report = run_hidden("jaxtickets.main", "--config=configs/mnist_lenet.py:smoke",
                              f"--workdir={workdir}")
    assert_ran_without_hidden(done, report, workdir)


def _mnist_subset(path: pathlib.Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """The first images of every class of ../shared/data/mnist.npz (sorted by class), in
    its layout, written to `path`; skips the test without the file."""
    source = SHARED_DATA / "mnist.npz"
    if not source.exists():
        pytest.skip(f"{source} absent")
    with np.load(source) as data:
        arrays = {}
        for split, n in (("train", n_train), ("test", n_test)):
            labels = data[f"y_{split}"]
            keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:n // 10]
                                           for c in range(10)]))
            arrays[f"x_{split}"], arrays[f"y_{split}"] = data[f"x_{split}"][keep], labels[keep]
    np.savez(path, **arrays)
    return arrays


def test_npz_source_cli_runs_without_tfds_grain_array_record(tmp_path):
    npz = tmp_path / "mnist_small.npz"
    _mnist_subset(npz, 600, 100)
    workdir = tmp_path / "run"
    done, report = run_hidden(
        "jaxtickets.main", "--config=configs/mnist_lenet.py:smoke", f"--workdir={workdir}",
        "--config.data.source=npz", f"--config.data.npz_file={npz}",
        "--config.data.validation_size=100", "--config.data.train_size=500",
        "--config.data.test_size=100", "--config.train.duration=100st",
        "--config.train.eval_every=50st", "--config.train.checkpoint_every=100st",
        "--config.pruning.levels=1")
    assert_ran_without_hidden(done, report, workdir)
    rows = json.loads((workdir / "results.json").read_text())["rows"]
    assert {r["level"] for r in rows} == {0, 1}


# ---- loading .npz files ------------------------------------------------------------------

def _reference_decode(buffer: np.ndarray, offsets: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The serial decoding tfds_io.decode_shared_npz did before npz_files existed."""
    images = np.empty((len(keep), 32, 32, 3), np.uint8)
    for j, i in enumerate(keep):
        with Image.open(io.BytesIO(buffer[offsets[i]:offsets[i + 1]].tobytes())) as im:
            images[j] = np.asarray(im.convert("RGB"))
    return images


def _cifar_subset(path: pathlib.Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """Every 100th / 20th CIFAR-10 image of ../shared/data in its JPEG layout, at `path`."""
    with np.load(SHARED_DATA / "cifar10_jpeg.npz") as data:
        arrays = {"classes": data["classes"]}
        for split, n in (("train", n_train), ("test", n_test)):
            buffer, offsets, labels = (data[f"jpeg_{split}"], data[f"offsets_{split}"],
                                       data[f"y_{split}"])
            keep = np.linspace(0, len(labels) - 1, n).astype(np.int64)
            arrays.update(jpeg_layout([buffer[offsets[i]:offsets[i + 1]] for i in keep],
                                      split))
            arrays[f"y_{split}"] = labels[keep]
            arrays[f"reference_{split}"] = _reference_decode(buffer, offsets, keep)
    np.savez(path, **{k: v for k, v in arrays.items() if not k.startswith("reference")})
    return arrays


@needs_cifar
def test_cifar_jpeg_npz_decodes_as_before(tmp_path):
    from jaxtickets.data import tfds_io

    path = tmp_path / "cifar_small.npz"
    arrays = _cifar_subset(path, 300, 100)
    got = npz_files.load_npz_arrays(path, threads=4)
    assert set(got) == {"train", "test"}
    for split, (images, labels) in got.items():
        assert images.dtype == np.uint8 and images.shape == (len(labels), 32, 32, 3)
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(images, arrays[f"reference_{split}"])
        np.testing.assert_array_equal(labels, arrays[f"y_{split}"])
        via_tfds_io = tfds_io.decode_shared_npz("cifar10", path)[split]
        np.testing.assert_array_equal(via_tfds_io[0], images)
    # One thread or many: the same arrays.
    serial = npz_files.load_npz_arrays(path, threads=1)
    np.testing.assert_array_equal(serial["train"][0], got["train"][0])
    # indices pick examples per split, and skip splits not named.
    picked = npz_files.load_npz_arrays(path, indices={"test": [5, 0, 99]})
    assert list(picked) == ["test"]
    np.testing.assert_array_equal(picked["test"][0], arrays["reference_test"][[5, 0, 99]])


@needs_cifar
def test_cifar_npz_source_loads_splits(tmp_path):
    path = tmp_path / "cifar_small.npz"
    arrays = _cifar_subset(path, 300, 100)
    splits = load_splits("cifar10", "npz", "", validation_size=50, npz_file=str(path))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (250, 50, 100)
    assert splits.image_shape == (32, 32, 3) and splits.num_classes == 10
    np.testing.assert_array_equal(splits.test.images, arrays["reference_test"])


def test_mnist_npz_gets_a_channel_axis(tmp_path):
    path = tmp_path / "mnist_small.npz"
    arrays = _mnist_subset(path, 200, 50)
    got = npz_files.load_npz_arrays(path)
    for split in ("train", "test"):
        images, labels = got[split]
        assert images.dtype == np.uint8 and images.shape == (*arrays[f"x_{split}"].shape, 1)
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(images[..., 0], arrays[f"x_{split}"])
        np.testing.assert_array_equal(labels, arrays[f"y_{split}"])
    splits = load_splits("mnist", "npz", "", validation_size=20, train_size=100,
                         npz_file=str(path))
    assert splits.image_shape == (28, 28, 1)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (100, 20, 50)


def _synthetic_mnist_npz(path: pathlib.Path, **changes: np.ndarray) -> pathlib.Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 40).astype(np.uint8),
              "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 10).astype(np.uint8), **changes}
    np.savez(path, **arrays)
    return path


def test_npz_of_the_wrong_dataset_names_the_key(tmp_path):
    path = _synthetic_mnist_npz(tmp_path / "grey.npz")
    with pytest.raises(ConfigError, match=r"data\.npz_file.*\(28, 28, 1\).*cifar10"):
        load_splits("cifar10", "npz", "", validation_size=5, npz_file=str(path))


@pytest.mark.parametrize("changes, message", [
    ({"x_test": np.zeros((9, 28, 28), np.uint8)}, "9 images for 10 labels"),
    ({"x_train": np.zeros((40, 28, 28), np.float32)}, "must be uint8"),
    ({"y_train": np.full(40, 10, np.uint8)}, r"labels outside \[0, 10\)"),
])
def test_malformed_npz_names_the_key(tmp_path, changes, message):
    path = _synthetic_mnist_npz(tmp_path / "bad.npz", **changes)
    with pytest.raises(ConfigError, match=rf"data\.npz_file.*{message}"):
        load_splits("mnist", "npz", "", validation_size=5, npz_file=str(path))


def test_npz_without_a_split_names_what_it_holds(tmp_path):
    path = tmp_path / "train_only.npz"
    np.savez(path, x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.zeros(4, np.uint8))
    with pytest.raises(ConfigError, match=r"data\.npz_file.*y_test.*x_train"):
        load_splits("mnist", "npz", "", validation_size=1, npz_file=str(path))


def test_missing_npz_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.npz_file: no such file"):
        load_splits("mnist", "npz", "", validation_size=5, npz_file=str(tmp_path / "no.npz"))


def test_undecodable_jpeg_names_the_key(tmp_path):
    path = tmp_path / "broken.npz"
    junk = np.frombuffer(b"not a jpeg at all", np.uint8)
    np.savez(path, jpeg_train=junk, offsets_train=np.array([0, len(junk)], np.int64),
             y_train=np.zeros(1, np.uint8), jpeg_test=junk,
             offsets_test=np.array([0, len(junk)], np.int64), y_test=np.zeros(1, np.uint8))
    with pytest.raises(ConfigError, match=r"data\.npz_file.*image 0 is not a decodable JPEG"):
        load_splits("cifar10", "npz", "", validation_size=1, npz_file=str(path))


def test_run_logs_load_tensorboardx_without_torch(tmp_path):
    """tensorboardX imports PyTorch whenever it is installed (the bench extra installs
    it), which took 1.5-2 s of every run's start-up; the run logs load it without, and
    still write their TensorBoard events."""
    code = ("import pathlib, sys\n"
            "from jaxtickets.training.run_log import RunLog\n"
            f"log = RunLog(pathlib.Path({str(tmp_path)!r}))\n"
            "log.write({'step': 0, 'loss': 1.0})\n"
            "log.close()\n"
            "print('torch' in sys.modules, 'tensorboardX' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True"]
    assert any((tmp_path / "tensorboard").iterdir())
