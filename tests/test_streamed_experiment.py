"""Experiments on a streamed dataset (imagenet2012 format, JPEG files made here): the
driver trains from the host pipeline, prunes, resumes, and refuses what it cannot do."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from conftest import comparable_rows, make_jpeg_imagenet, with_overrides
from jaxtickets import checkpoints
from jaxtickets.config_schema import base_config, validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment, run_experiment
from jaxtickets.experiment.presets import add_source
from jaxtickets.sparsity import masks


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory):
    return make_jpeg_imagenet(tmp_path_factory.mktemp("tfds"), 45, 13)


def streamed_config(data_dir: str, **overrides):
    config = base_config()
    config.model.name = "lenet300_100"
    config.data.dataset = "imagenet2012"
    config.data.data_dir = data_dir
    config.data.validation_size = 5  # 40 training records: 5 steps of 8 per epoch
    config.data.image_size = 16
    config.train.batch_size = 8
    config.train.duration = "12st"
    config.train.eval_every = "4st"
    config.train.checkpoint_every = "4st"
    config.train.eval_batch_size = 8
    config.train.learning_rate = 1e-3
    config.pruning.levels = 1
    config.branches = ("ticket", "random_ticket")
    config.runtime.steps_per_call = 1
    config.runtime.reader_threads = 2
    config.runtime.plot = False
    return with_overrides(config, **overrides)


@pytest.fixture(scope="module")
def streamed_run(jpeg_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("streamed") / "run"
    return workdir, run_experiment(streamed_config(jpeg_dir), workdir)


def test_imp_runs_on_streamed_batches(streamed_run, jpeg_dir):
    workdir, results = streamed_run
    assert [(r["level"], r["branch"]) for r in results["rows"]] == [
        (0, "ticket"), (1, "ticket"), (1, "random_ticket")]
    # LeNet on 16x16x3 crops with ImageNet's 1000 outputs; 20% (output 10%) pruned at 1.
    dense = 768 * 300 + 300 * 100 + 100 * 1000
    assert results["rows"][0]["remaining_weights"] == dense
    assert results["rows"][1]["remaining_weights"] == dense - (
        round(0.2 * 768 * 300) + round(0.2 * 300 * 100) + round(0.1 * 100 * 1000))
    assert results["compilations"]["train"] == 1  # one compiled streamed step
    history = checkpoints.read_json(workdir / "replicate_0/level_01/ticket/metrics.json")[
        "history"]
    assert [h["step"] for h in history] == [4, 8, 12]
    # The evaluation covered the 13 test records and the 5 held-out ones exactly.
    for h in history:
        assert round(h["test_accuracy"] * 13) == pytest.approx(h["test_accuracy"] * 13)
        assert round(h["validation_accuracy"] * 5) == pytest.approx(
            h["validation_accuracy"] * 5)
    exp = Experiment(streamed_config(jpeg_dir), workdir)
    like = exp.init_weights(exp.evaluation, exp.key(0, 1))
    final = checkpoints.load_tree(workdir / "replicate_0/level_01/ticket/final", like)
    mask = checkpoints.load_tree(workdir / "replicate_0/level_01/mask",
                                 masks.init_mask(like["params"], exp.policy))
    flat = {masks.path_name(p): np.asarray(w)
            for p, w in jax.tree_util.tree_flatten_with_path(final["params"])[0]}
    for name, keep in masks.to_flat_dict(mask).items():
        assert np.all(flat[name][~np.asarray(keep, bool)].view(np.uint32) == 0), name


def test_streamed_run_is_deterministic_and_resumes_exactly(streamed_run, jpeg_dir, tmp_path):
    _, uninterrupted = streamed_run
    again = run_experiment(streamed_config(jpeg_dir), tmp_path / "again")
    assert comparable_rows(again) == comparable_rows(uninterrupted)
    # Interrupted after level 1's step-4 checkpoint: drop what came after it, rerun.
    workdir = tmp_path / "again"
    ticket = workdir / "replicate_0" / "level_01" / "ticket"
    for name in ("metrics.json", "final"):
        path = ticket / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    steps = checkpoints.StepCheckpoints(ticket / "steps")
    for step in steps._manager.all_steps():
        if step > 4:
            steps._manager.delete(step)
    steps.close()
    (workdir / "results.json").unlink()
    resumed = run_experiment(streamed_config(jpeg_dir), workdir)
    assert comparable_rows(resumed) == comparable_rows(uninterrupted)
    log = [json.loads(line)["step"] for line in (ticket / "log.jsonl").read_text().splitlines()]
    assert log == [4, 8, 12]


def test_a_rotnet_source_generates_on_streamed_images(jpeg_dir, tmp_path):
    config = streamed_config(jpeg_dir, branches=("ticket",))
    add_source(config, "rotnet", task="rotnet")
    results = run_experiment(config, tmp_path / "rotnet")
    assert {(r["level"], r["branch"]) for r in results["rows"]} == {(0, "ticket"),
                                                                    (1, "ticket")}
    assert all(r["source"].startswith("rotnet:imagenet2012") for r in results["rows"])


@pytest.mark.parametrize("key, value", [
    ("data__train_size", 10), ("data__test_size", 5), ("data__image_size", 4),
    ("branches", ("ticket", "learned_supermask")), ("runtime__reader_threads", -1)])
def test_streamed_dataset_refuses_what_it_cannot_do(key, value, jpeg_dir):
    config = streamed_config(jpeg_dir, **{key: value})
    if key == "branches":
        config.supermask.logit_inits = (0,)
    with pytest.raises(ConfigError, match=key.replace("__", ".").split(".")[-1]):
        validate(config)


@pytest.mark.parametrize("model", [
    "lenet300_100",  # fast, in the default suite
    pytest.param("resnet50", marks=pytest.mark.slow)])  # the config's own model
def test_imagenet_rotnet_config_smoke_runs_on_the_jpeg_dataset(model, jpeg_dir, tmp_path):
    """configs/imagenet_rotnet.py (P0 Table 4 on ImageNet: labels, RotNet and Exemplar
    sources) end to end on the small JPEG dataset."""
    from conftest import load_config

    from jaxtickets.experiment.dry_run import dry_run

    config = load_config("imagenet_rotnet", "smoke")
    config.data.data_dir = jpeg_dir
    config.model.name = model
    planned = dry_run(config, tmp_path / "p0", calibrate=False, out=lambda text: None)
    assert not (tmp_path / "p0").exists()
    results = run_experiment(config, tmp_path / "p0")
    # --dry_run priced exactly what ran: steps and dense-equivalent FLOPs.
    assert planned["steps"] == sum(s["train_steps"] for s in results["stages"])
    assert planned["flops"] == sum(s["train_flops_dense"] for s in results["stages"])
    assert {(r["source_name"], r["level"], r["branch"]) for r in results["rows"]} == {
        ("labels", 0, "ticket"), ("labels", 1, "ticket"), ("labels", 1, "random_ticket"),
        ("rotnet", 0, "ticket"), ("rotnet", 1, "ticket"),
        ("exemplar", 0, "ticket"), ("exemplar", 1, "ticket")}
    assert all(r["evaluation"] == "labels:imagenet2012" for r in results["rows"])
