"""CIFAR-10 through TFDS with a Conv net and on-device augmentation (tiny, real images)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import SHARED_DATA, load_config
from jaxtickets.experiment.driver import run_experiment
from jaxtickets.training.steps import InputSpec, augment

needs_cifar = pytest.mark.skipif(not (SHARED_DATA / "cifar10_jpeg.npz").exists(),
                                 reason="../shared/data/cifar10_jpeg.npz not present")


@pytest.fixture(scope="module")
def cifar_tfds_dir(tmp_path_factory):
    from jaxtickets.data.tfds_io import decode_shared_npz, import_to_tfds

    rng = np.random.default_rng(0)
    indices = {"train": np.sort(rng.choice(50_000, 700, replace=False)),
               "test": np.sort(rng.choice(10_000, 100, replace=False))}
    arrays = decode_shared_npz("cifar10", SHARED_DATA / "cifar10_jpeg.npz", indices=indices)
    data_dir = tmp_path_factory.mktemp("tfds")
    import_to_tfds("cifar10", arrays, data_dir)
    return data_dir


def _tiny_conv2(data_dir, train_size: int = 500, steps: str = "10st"):
    """configs/cifar10_conv.py:conv2,smoke cut to one level of `steps` steps on
    `train_size` of the module's CIFAR-10 images (batch 10)."""
    config = load_config("cifar10_conv", "conv2,smoke")
    config.data.data_dir = str(data_dir)
    config.data.validation_size, config.data.train_size = 100, train_size
    config.data.test_size = 100
    config.train.batch_size, config.train.duration = 10, steps
    config.train.eval_every = config.train.checkpoint_every = steps
    config.train.eval_batch_size = 100
    config.pruning.levels = 1
    return config


@needs_cifar
def test_conv2_imp_on_cifar10_from_tfds(cifar_tfds_dir, tmp_path):
    config = _tiny_conv2(cifar_tfds_dir)
    config.data.pad_crop, config.data.flip = 4, True
    results = run_experiment(config, tmp_path / "run")
    rows = results["rows"]
    assert [(r["level"], r["branch"]) for r in rows] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit")]
    # P2's Conv-2 schedule (conv 10%, dense 20%, output 10%): 80.10% after one level.
    assert round(100 * rows[1]["kernel_density"], 2) == 80.10
    assert rows[0]["remaining_weights"] == 4_300_992
    assert results["compilations"]["train"] == 1
    # The report's plots and tables for this config's run (issue: every config's smoke run).
    from jaxtickets import report

    assert report.main(["--workdir", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]) == 0
    for name in ("accuracy_vs_remaining.png", "early_stop_vs_remaining.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 5_000


@needs_cifar
def test_eigen_convolutions_change_only_the_rounding(cifar_tfds_dir, tmp_path):
    """runtime.cpu_convolutions through the whole driver: Eigen's and YNNPACK's
    convolutions give the same rows (densities exactly, metrics to float tolerance)."""
    rows = {}
    for lib in ("ynnpack", "eigen"):
        config = _tiny_conv2(cifar_tfds_dir, train_size=200, steps="5st")
        config.runtime.cpu_convolutions = lib
        rows[lib] = run_experiment(config, tmp_path / lib)["rows"]
    assert len(rows["eigen"]) == len(rows["ynnpack"]) == 3
    for a, b in zip(rows["ynnpack"], rows["eigen"]):
        assert (a["level"], a["branch"], a["remaining_weights"]) == (
            b["level"], b["branch"], b["remaining_weights"])
        for key in ("test_loss", "validation_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key


def test_augment_pads_crops_and_flips_within_the_image():
    images = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1) + 1
    spec = InputSpec((0.0,), (1.0,), pad_crop=1, flip=True)
    seen = set()
    for seed in range(40):
        out = np.asarray(augment(images, jax.random.PRNGKey(seed), spec))
        assert out.shape == images.shape and out.dtype == np.uint8
        for img, res in zip(images, out):
            # Every output pixel is a zero pad or a pixel of the (maybe flipped) image.
            assert set(res.ravel()) <= set(img.ravel()) | {0}
            seen.add(res.tobytes())
    assert len(seen) > 10  # many distinct crops/flips across draws
    plain = InputSpec((0.0,), (1.0,))
    np.testing.assert_array_equal(augment(images, jax.random.PRNGKey(0), plain), images)


@needs_cifar
def test_first_conv_layers_prunes_only_those_layers(cifar_tfds_dir, tmp_path):
    """P0's layerwise tickets: with first_conv_layers=1 only Conv-2's first conv is pruned
    (globally within that set); the second conv and the dense layers stay whole."""
    from jaxtickets import checkpoints
    from jaxtickets.errors import ConfigError
    from jaxtickets.experiment.driver import Experiment
    from jaxtickets.sparsity.masks import init_mask, layer_counts

    config = _tiny_conv2(cifar_tfds_dir)
    config.pruning.method, config.pruning.rate = "global", 0.2
    config.pruning.first_conv_layers = 1
    config.branches = ("ticket",)
    results = run_experiment(config, tmp_path / "run")
    exp = Experiment(config, tmp_path / "run")
    params = exp.init_weights(exp.evaluation, exp.key(0, 1))["params"]
    assert len(layer_counts(init_mask(params, exp.policy))) == 5  # 2 convs, 3 dense
    mask = checkpoints.load_tree(tmp_path / "run" / "replicate_0" / "level_01" / "mask",
                                 exp._full_mask(params, exp.evaluation))
    counts = layer_counts(mask)
    assert list(counts) == ["conv_0/kernel"]                     # the only prunable layer
    assert counts["conv_0/kernel"] == (round(0.8 * 1728), 1728)  # 3x3x3x64, 20% pruned
    row = next(r for r in results["rows"] if r["level"] == 1)
    assert row["prunable_weights"] == 1728 and row["remaining_weights"] == 1382
    config.pruning.first_conv_layers = 3  # Conv-2 has two conv layers
    with pytest.raises(ConfigError, match="first_conv_layers"):
        run_experiment(config, tmp_path / "other")
