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
                          train__batch_size=10, pruning__levels=1, branches="ticket")
    with tfds.testing.mock_data(num_examples=120):
        results = run_experiment(config, tmp_path / "run")
    rows = results["rows"]
    assert [r["level"] for r in rows] == [0, 1]
    # LeNet-300-100 on 32x32x3 inputs: 3072*300 + 300*100 + 100*100 kernel weights.
    assert rows[0]["remaining_weights"] == 3072 * 300 + 300 * 100 + 100 * 100
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
