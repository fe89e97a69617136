"""data.validation_size = 0: no images held out (P0, P1 and P3 train on every training
image). The training split is the whole training set (in memory, from .npz, streamed),
the validation split is empty, runs evaluate the test split only, and early stopping
takes the last evaluation; every summary says which rule chose (`early_stop_basis`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_jpeg_imagenet, smoke_config
from jaxtickets import checkpoints
from jaxtickets.analysis import aggregate
from jaxtickets.config_schema import validate
from jaxtickets.data.datasets import _embedded_mnist, load_splits
from jaxtickets.errors import ConfigError
from jaxtickets.experiment import results as results_lib
from jaxtickets.experiment.driver import run_experiment
from jaxtickets.training.loop import early_stop, summarize

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


# ---- the splits ---------------------------------------------------------------------------

def test_embedded_training_split_is_every_training_image_and_validation_is_empty():
    raw = _embedded_mnist()["train"]
    splits = load_splits("mnist", "embedded", "", validation_size=0)
    assert len(splits.train) == len(raw) == 12_000
    assert len(splits.validation) == 0
    assert splits.validation.images.shape == (0, 28, 28, 1)
    # All of them, in the stored order: nothing dropped, duplicated or shuffled.
    np.testing.assert_array_equal(splits.train.labels, raw.labels)
    np.testing.assert_array_equal(splits.train.images, raw.images)
    # A held-out split takes its images from the same training set, as before.
    held = load_splits("mnist", "embedded", "", validation_size=100)
    assert (len(held.train), len(held.validation)) == (12_000 - 100, 100)


def test_npz_training_split_is_every_training_image(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 40).astype(np.uint8),
              "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 10).astype(np.uint8)}
    path = tmp_path / "mnist_small.npz"
    np.savez(path, **arrays)
    splits = load_splits("mnist", "npz", "", validation_size=0, npz_file=str(path))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (40, 0, 10)
    np.testing.assert_array_equal(splits.train.images[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(splits.train.labels, arrays["y_train"])
    # train_size still takes a seeded subset, now of the whole training set.
    subset = load_splits("mnist", "npz", "", validation_size=0, train_size=25,
                         npz_file=str(path))
    assert len(subset.train) == 25 and len(subset.validation) == 0


def test_streamed_training_split_yields_every_training_record(tmp_path):
    from jaxtickets import parallel
    from jaxtickets.data import augment, tfds_io
    from jaxtickets.data.pipeline import load_streamed_splits

    data_dir = make_jpeg_imagenet(tmp_path / "tfds", 13, 3)
    splits = load_streamed_splits("imagenet2012", data_dir, 0, 0,
                                  augment.ImageRecipe(size=16), threads=2)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (13, 0, 3)
    assert splits.validation.size == 0
    sharding = parallel.batch_sharded(parallel.make_mesh(8))
    batches = [tuple(np.asarray(a) for a in b)
               for b in splits.train.eval_batches(sharding, 8)]
    weights = np.concatenate([w for _, _, w in batches])
    labels = np.concatenate([lab for _, lab, _ in batches])[weights == 1]
    records = tfds_io.open_data_source("imagenet2012", "train", data_dir)
    # Every record once, in record order (13 = 8 + 5 and three weight-0 pads).
    assert weights.sum() == 13
    assert labels.tolist() == [int(records[i]["label"]) for i in range(13)]
    assert list(splits.validation.eval_batches(sharding, 8)) == []


# ---- the config ---------------------------------------------------------------------------

def test_config_accepts_zero_and_still_rejects_negatives():
    validate(smoke_config(data__validation_size=0))
    with pytest.raises(ConfigError, match="data.validation_size"):
        validate(smoke_config(data__validation_size=-1))


# ---- early stopping -----------------------------------------------------------------------

def _record(step, validation_loss, test_accuracy):
    return {"step": step, "train_loss": 0.1, "train_accuracy": 0.9,
            "validation_loss": validation_loss,
            "validation_accuracy": None if validation_loss is None else 0.5,
            "test_loss": 0.2, "test_accuracy": test_accuracy}


def test_early_stop_is_the_minimum_validation_loss_or_else_the_last_evaluation():
    with_validation = [_record(10, 0.5, 0.7), _record(20, 0.3, 0.8), _record(30, 0.4, 0.9)]
    assert early_stop(with_validation)["step"] == 20
    summary = summarize(with_validation, 1.0)
    assert summary["early_stop_basis"] == "validation_loss"
    assert (summary["early_stop_step"], summary["early_stop_test_accuracy"]) == (20, 0.8)
    without = [_record(10, None, 0.7), _record(20, None, 0.8), _record(30, None, 0.6)]
    assert early_stop(without)["step"] == 30  # not the best test accuracy (step 20)
    summary = summarize(without, 1.0)
    assert summary["early_stop_basis"] == "last_evaluation"
    assert (summary["early_stop_step"], summary["early_stop_test_accuracy"]) == (30, 0.6)
    assert summary["early_stop_validation_loss"] is None
    assert summary["validation_loss"] is None and summary["validation_accuracy"] is None


# ---- experiments end to end ---------------------------------------------------------------

def _tiny(validation_size: int, branches: tuple = ("ticket",)):
    config = smoke_config(data__validation_size=validation_size, data__train_size=0,
                          pruning__levels=1, branches=branches,
                          train__duration="60st", train__eval_every="20st",
                          train__checkpoint_every="60st")
    config.runtime.plot = False
    if "learned_supermask" in branches:  # its keys, read only when it runs
        config.supermask.logit_inits = (1,)
        config.supermask.steps = 20
        config.supermask.eval_every = 10
        config.supermask.eval_samples = 1
    return config


@pytest.fixture(scope="module")
def no_validation_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("no_validation") / "run"
    config = _tiny(0, ("ticket", "random_reinit", "supermask_init", "learned_supermask"))
    return workdir, run_experiment(config, workdir)


def _history(workdir, row) -> list[dict]:
    path = workdir / f"replicate_0/level_{row['level']:02d}/{row['branch']}/metrics.json"
    return checkpoints.read_json(path)["history"]


def test_experiment_without_validation_stops_at_the_last_evaluation(no_validation_run):
    workdir, results = no_validation_run
    rows = results["rows"]
    assert {(r["level"], r["branch"]) for r in rows} == {
        (0, "ticket"), (0, "supermask_init"), (0, "learned_supermask_1"),
        (1, "ticket"), (1, "random_reinit"), (1, "supermask_init")}
    for row in rows:
        assert row["early_stop_basis"] == "last_evaluation", row["branch"]
        assert row["early_stop_test_accuracy"] == row["test_accuracy"]
        assert row["validation_loss"] is None and row["early_stop_validation_loss"] is None
        assert 0.0 <= row["test_accuracy"] <= 1.0
    trained = [r for r in rows if r["branch"] in ("ticket", "random_reinit")]
    for row in trained:
        history = _history(workdir, row)
        assert [h["step"] for h in history] == [20, 40, 60]
        assert row["early_stop_step"] == history[-1]["step"] == 60
        assert all(h["validation_loss"] is None for h in history)
        assert row["examples_seen"] == 60 * 60
    # Training really ran on the whole training set: the dense run learned digits.
    assert rows[0]["test_accuracy"] > 0.5
    learned = next(r for r in rows if r["branch"] == "learned_supermask_1")
    assert learned["early_stop_step"] == 20  # the supermask's last evaluation
    untrained = next(r for r in rows if r["branch"] == "supermask_init")
    assert untrained["early_stop_step"] == 0 and untrained["train_steps"] == 0
    # The live log has no validation values either, and the table says how it stopped.
    log = [json.loads(line) for line in
           (workdir / "replicate_0/level_01/ticket/log.jsonl").read_text().splitlines()]
    assert [e["validation_loss"] for e in log] == [None, None, None]
    assert "early stop: the last evaluation" in results_lib.format_table(rows)


def test_report_says_the_basis_and_refuses_validation_metrics(no_validation_run, tmp_path):
    from jaxtickets.report import make_report

    workdir, _ = no_validation_run
    paths = make_report([str(workdir)], tmp_path / "report", branches=["ticket"])
    assert "Early stop: last evaluation" in paths["table.md"].read_text()
    with pytest.raises(aggregate.ResultsError, match="validation_size = 0"):
        make_report([str(workdir)], tmp_path / "other", metric="validation_loss")


def test_experiment_with_validation_stops_at_the_minimum_validation_loss(tmp_path):
    # A learning rate high enough for the validation loss to rise again before the end
    # (level 0: its minimum at step 50 of 60), so the minimum and the last evaluation
    # differ and the rule that chose is visible in the rows.
    config = _tiny(100)
    config.train.learning_rate, config.train.eval_every = 0.03, "10st"
    results = run_experiment(config, tmp_path / "run")
    rows = results["rows"]
    assert rows and "early stop:" not in results_lib.format_table(rows)
    stopped_early = 0
    for row in rows:
        assert row["early_stop_basis"] == "validation_loss"
        history = _history(tmp_path / "run", row)
        best = min(history, key=lambda h: (h["validation_loss"], h["step"]))
        assert row["early_stop_step"] == best["step"]
        assert row["early_stop_validation_loss"] == best["validation_loss"]
        assert row["early_stop_test_accuracy"] == best["test_accuracy"]
        assert row["validation_loss"] == history[-1]["validation_loss"] is not None
        stopped_early += row["early_stop_step"] < history[-1]["step"]
    assert stopped_early >= 1
