"""The in-memory TFDS datasets beyond MNIST and CIFAR-10, read under tfds.testing.mock_data
(these machines hold no copy of them), and one experiment on a mocked CIFAR-100."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import smoke_config
from jaxtickets.data.datasets import IMAGE_SHAPES, NUM_CLASSES, load_splits
from jaxtickets.experiment.driver import run_experiment


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar100", "svhn_cropped"])
def test_dataset_loads_with_its_shape_and_classes(name, tmp_path):
    with tfds.testing.mock_data(num_examples=30):
        splits = load_splits(name, "tfds", str(tmp_path), validation_size=5)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (25, 5, 30)
    assert splits.train.images.shape[1:] == IMAGE_SHAPES[name]
    assert splits.train.images.dtype == np.uint8 and splits.num_classes == NUM_CLASSES[name]
    assert ((splits.train.labels >= 0) & (splits.train.labels < NUM_CLASSES[name])).all()


def test_an_experiment_runs_on_cifar100_with_its_100_outputs(tmp_path):
    config = smoke_config(data__dataset="cifar100", data__source="tfds",
                          data__data_dir=str(tmp_path / "tfds"), data__validation_size=20,
                          data__train_size=0, data__test_size=0, train__duration="20st",
                          train__eval_every="10st", train__checkpoint_every="10st",
                          train__batch_size=10, pruning__levels=1, branches=("ticket",))
    with tfds.testing.mock_data(num_examples=120):
        results = run_experiment(config, tmp_path / "run")
    rows = results["rows"]
    assert [r["level"] for r in rows] == [0, 1]
    # LeNet-300-100 on 32x32x3 inputs: 3072*300 + 300*100 + 100*100 kernel weights.
    assert rows[0]["remaining_weights"] == 3072 * 300 + 300 * 100 + 100 * 100
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)


def test_p1_cross_dataset_config_transfers_tickets_from_every_source(tmp_path):
    """configs/p1_cross_dataset.py's smoke run under mock_data: four source datasets
    (grey 28x28 and RGB 32x32, 10 and 100 classes) evaluated on CIFAR-100. LeNet stands
    in for VGG-19 to keep it short; the images are random, so only the mechanics count."""
    from conftest import load_config

    config = load_config("p1_cross_dataset", "cifar100,small,smoke")
    config.model.name = "lenet300_100"
    config.data.data_dir = str(tmp_path / "tfds")
    with tfds.testing.mock_data(num_examples=320):
        results = run_experiment(config, tmp_path / "run")
    rows = results["rows"]
    assert {r["source_name"] for r in rows} == {"fashion_mnist", "svhn_cropped", "cifar10",
                                                "cifar100"}
    assert all(r["evaluation"] == "labels:cifar100" for r in rows)
    assert {r["branch"] for r in rows if r["source_name"] == "cifar100"} == {
        "ticket", "random_ticket"}
    # Every ticket keeps the same prunable set: the target's LeNet on 32x32x3 inputs.
    assert len({r["prunable_weights"] for r in rows}) == 1
