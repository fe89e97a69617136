"""Shared fixtures: the smoke config and one uninterrupted smoke run reused by many tests."""

from __future__ import annotations

import atexit
import importlib.util
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# JAX's persistent compilation cache (runtime.compilation_cache 'auto', the default) in
# a directory of this session's own, never the user's ~/.cache: every run of the
# session, in this process or in a subprocess (which inherits the environment), shares
# it, and it goes away with the session. A cache given to JAX itself would win over
# the tests' own settings (tests/test_compilation_cache.py), so it is dropped.
SESSION_CACHE = tempfile.mkdtemp(prefix="jaxtickets-test-cache-")
os.environ["JAXTICKETS_CACHE_DIR"] = SESSION_CACHE
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
atexit.register(shutil.rmtree, SESSION_CACHE, ignore_errors=True)


def load_config(name: str, arg: str | None = None):
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


SHARED_FILES = {"mnist": "mnist.npz", "cifar10": "cifar10_jpeg.npz"}
HAVE_CIFAR = (SHARED_DATA / SHARED_FILES["cifar10"]).exists()
# Real CIFAR-10 comes from ../shared/data (beside the clone in CI); without it, skip.
needs_cifar = pytest.mark.skipif(not HAVE_CIFAR, reason="../shared/data/cifar10_jpeg.npz absent")


def shared_to_tfds(name: str, data_dir: pathlib.Path, n_train: int | None = None,
                   n_test: int | None = None) -> str:
    """Imports ../shared/data's copy of `name` (a fixed random n_train / n_test of its
    images, or all) into a TFDS data dir, through the real decoding and import code;
    returns the dir. The files are sorted by class: their first images are all class 0."""
    from jaxtickets.data.tfds_io import decode_shared_npz, import_to_tfds

    indices = None
    if n_train is not None:
        with np.load(SHARED_DATA / SHARED_FILES[name]) as npz:
            sizes = {split: len(npz[f"y_{split}"]) for split in ("train", "test")}
        rng = np.random.default_rng(0)
        indices = {split: np.sort(rng.choice(sizes[split], n, replace=False))
                   for split, n in (("train", n_train), ("test", n_test))}
    import_to_tfds(name, decode_shared_npz(name, SHARED_DATA / SHARED_FILES[name],
                                           indices=indices), data_dir)
    return str(data_dir)


def jpeg_layout(jpegs: list, split: str) -> dict[str, np.ndarray]:
    """`jpegs` (bytes or uint8 arrays) as ../shared/data's CIFAR-10 layout for `split`:
    one flat buffer and the offsets of each image in it."""
    parts = [np.frombuffer(j, np.uint8) if isinstance(j, bytes) else j for j in jpegs]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    return {f"jpeg_{split}": np.concatenate(parts), f"offsets_{split}": offsets}


def free_port() -> int:
    """A TCP port nobody listens on now: a jax.distributed coordinator for a test."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _jpeg(rng: np.random.Generator) -> bytes:
    """A JPEG of random size with structure (gradients, a block) and noise."""
    import io

    from PIL import Image

    h, w = (int(v) for v in rng.integers(40, 90, 2))
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([255 * x / w, 255 * y / h, np.full((h, w), rng.integers(0, 256))], -1)
    image[h // 4: h // 2, w // 4: w // 2] = rng.integers(0, 256, 3)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_jpeg_imagenet(data_dir: pathlib.Path, n_train: int, n_val: int,
                       classes: int = 1000, name: str = "imagenet2012",
                       cycle: np.ndarray | None = None) -> str:
    """A small imagenet2012 (or places365_small) in TFDS format (real JPEG files) under
    `data_dir`, with random labels, or labels cycling through `cycle`: for the
    pipeline's mechanics, not for accuracy."""
    from jaxtickets.data.tfds_io import import_jpegs_to_tfds

    rng = np.random.default_rng(0)

    def labels(n):
        return rng.integers(0, classes, n) if cycle is None else np.resize(cycle, n)

    splits = {split: ([_jpeg(rng) for _ in range(n)], labels(n))
              for split, n in (("train", n_train), ("validation", n_val))}
    import_jpegs_to_tfds(name, splits, data_dir)
    return str(data_dir)


def random_cifar_setup(config, n_train: int = 128, n_held_out: int = 8):
    """The config's evaluation Setup built as the driver builds it, on random CIFAR-shaped
    images (uint8) and labels: for tests of what the Setup derives from a config."""
    from jaxtickets.data.datasets import Split, Splits
    from jaxtickets.experiment import sources

    rng = np.random.default_rng(0)

    def split(n):
        return Split(rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
                     rng.integers(0, 10, n).astype(np.int32))

    return sources.evaluation_setup(config, Splits("cifar10", split(n_train),
                                                   split(n_held_out), split(n_held_out), 10))


def smoke_config(**overrides):
    """configs/mnist_lenet.py:smoke with dotted-key overrides ('pruning.rewind'='100st')."""
    config = load_config("mnist_lenet", "smoke")
    config.runtime.plot = True
    return with_overrides(config, **overrides)


def with_overrides(config, **overrides):
    """`config` with dotted-key overrides written with '__' ('pruning__rewind'='100st')."""
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def run_cli(workdir: pathlib.Path, *flags: str, env: dict | None = None,
            config: str = "configs/mnist_lenet.py:smoke") -> subprocess.CompletedProcess:
    """Runs the real command line in a fresh process (its own JAX, its own devices)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "jaxtickets.main", f"--config={config}",
         f"--workdir={workdir}", *flags],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


def kill_at(workdir: pathlib.Path, marker: str, *flags: str, poll: float = 0.05) -> None:
    """Runs the smoke config's command line and SIGKILLs it as soon as `marker` (a path
    in the workdir, e.g. a step checkpoint) exists; fails if it never appears."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxtickets.main", "--config=configs/mnist_lenet.py:smoke",
         f"--workdir={workdir}", *flags], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (workdir / marker).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(poll)
    assert (workdir / marker).exists(), f"the run never wrote {marker}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def comparable_rows(results: dict) -> list[dict]:
    """Rows without wall-clock time, the only field that may differ between equal runs."""
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in results["rows"]]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One uninterrupted smoke run (3 levels, ticket and random reinit) in this process."""
    from jaxtickets.experiment.driver import run_experiment

    workdir = tmp_path_factory.mktemp("smoke") / "run"
    results = run_experiment(smoke_config(), workdir)
    return workdir, results
