"""Ticket sources end to end: generation on one task/data/optimizer, evaluation on
labels, random baselines, resumption, cross-dataset transfer and config errors."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA, comparable_rows, load_config, shared_to_tfds, smoke_config
from jaxtickets import checkpoints
from jaxtickets.config_schema import add_source, validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment, run_experiment
from jaxtickets.sparsity.masks import init_mask, layer_counts, PrunablePolicy


def _sources_config():
    config = smoke_config(pruning__levels=1, pruning__method="global",
                          pruning__evaluate_levels=(1,), branches=("ticket",),
                          train__duration="120st", train__eval_every="60st",
                          train__checkpoint_every="60st", pruning__rewind="20st")
    config.pruning.prune.output = False
    add_source(config, "labels",
               branches=("ticket", "random_ticket", "random_ticket_local", "random_reinit"))
    add_source(config, "rotnet", task="rotnet")
    add_source(config, "sgd", optimizer="momentum", learning_rate=0.05, rewind="1200ex")
    return config


@pytest.fixture(scope="module")
def sources_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sources") / "run"
    config = _sources_config()
    return config, workdir, run_experiment(config, workdir)


def test_rows_name_source_and_evaluation(sources_run):
    _, _, results = sources_run
    rows = {(r["source_name"], r["branch"]): r for r in results["rows"]}
    assert set(rows) == {("labels", "ticket"), ("labels", "random_ticket"),
                         ("labels", "random_ticket_local"), ("labels", "random_reinit"),
                         ("rotnet", "ticket"), ("sgd", "ticket")}
    assert rows[("rotnet", "ticket")]["source"] == "rotnet:mnist"
    assert rows[("sgd", "ticket")]["source"] == "labels:mnist/momentum"
    assert all(r["evaluation"] == "labels:mnist" for r in results["rows"])
    # Both runs' metrics: the rotnet generation run scores rotations, not labels.
    gen = rows[("rotnet", "ticket")]["generation"]
    assert gen["evaluation"] == "rotnet:mnist" and gen["train_steps"] == 120
    assert gen["level"] == 0  # the dense run found the level-1 mask
    assert "generation" not in rows[("labels", "ticket")]  # generation == evaluation
    # The same prunable count everywhere (the rotnet head is replaced, never pruned).
    assert len({r["remaining_weights"] for r in results["rows"]}) == 1
    src = results["sources"]
    assert src["labels"]["is_evaluation"] and not src["rotnet"]["is_evaluation"]
    # The rewind point in the source's own units: 1,200 examples at batch 60 = 20 steps.
    assert src["sgd"]["rewind"]["steps"] == 20 and src["sgd"]["rewind"]["examples"] == 1200
    assert src["rotnet"]["task"] == "rotnet"


def test_transferred_ticket_uses_the_generation_mask_and_a_fresh_head(sources_run):
    config, workdir, _ = sources_run
    exp = Experiment(config, workdir)
    rotnet = next(s for s in exp.sources if s.name == "rotnet")
    like = exp.init_weights(rotnet.setup, exp.key(0, 1))
    ldir = workdir / "source_rotnet" / "replicate_0" / "level_01"
    mask = checkpoints.load_tree(ldir / "mask", init_mask(like["params"], exp.policy))
    gen_final = checkpoints.load_tree(ldir.parent / "level_00" / "generation" / "final", like)
    eval_like = exp.init_weights(exp.evaluation, exp.key(0, 1))
    ticket = checkpoints.load_tree(ldir / "ticket" / "final", eval_like)
    assert gen_final["params"]["output"]["kernel"].shape == (100, 4)
    assert ticket["params"]["output"]["kernel"].shape == (100, 10)
    for layer in ("hidden_0", "hidden_1"):
        kept = mask[layer]["kernel"]
        assert np.all(ticket["params"][layer]["kernel"][~kept] == 0.0)
        assert np.any(ticket["params"][layer]["kernel"][kept] != 0.0)
    # The last level's generation run is never trained: only its mask is needed.
    assert not (ldir / "generation").exists()


def test_random_baseline_masks_keep_their_counts(sources_run):
    config, workdir, _ = sources_run
    exp = Experiment(config, workdir)
    like = init_mask(exp.init_weights(exp.evaluation, exp.key(0, 1))["params"],
                     PrunablePolicy(output=False))
    ldir = workdir / "source_labels" / "replicate_0" / "level_01"
    ticket = layer_counts(checkpoints.load_tree(ldir / "mask", like))
    global_ = layer_counts(checkpoints.load_tree(ldir / "random_ticket" / "mask", like))
    local = layer_counts(checkpoints.load_tree(ldir / "random_ticket_local" / "mask", like))
    assert sum(k for k, _ in global_.values()) == sum(k for k, _ in ticket.values())
    assert global_ != ticket  # global pruning removes more from hidden_0 than uniform
    assert local == ticket


def test_rerun_skips_every_stage_and_reproduces_the_rows(sources_run, capsys):
    config, workdir, results = sources_run
    again = run_experiment(config, workdir)
    assert comparable_rows(again) == comparable_rows(results)
    assert "step" not in capsys.readouterr().out.replace("rewind", "")


@pytest.mark.parametrize("change,message", [
    ({"task": "jigsaw"}, "generation.bad.task"),
    ({"sample_fraction": 0.0}, "generation.bad.sample_fraction"),
    ({"class_fraction": 1.5}, "generation.bad.class_fraction"),
    ({"half": "c"}, "generation.bad.half"),
    ({"dataset": "cifar10"}, "generation.bad.dataset"),  # embedded data holds only MNIST
    ({"optimizer": "lamb"}, "generation.bad.optimizer"),
    ({"rewind": "3 epochs"}, "generation.bad.rewind"),
    ({"evaluate_levels": (9,)}, "generation.bad.evaluate_levels"),
    ({"branches": ("random_ticket",)}, "generation.bad.branches"),
])
def test_bad_source_settings_are_named(change, message):
    config = _sources_config()
    add_source(config, "bad", **change)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_unknown_source_key_and_impossible_subset_are_named(tmp_path):
    config = _sources_config()
    with pytest.raises(ConfigError, match="generation.x.colour"):
        add_source(config, "x", colour=1)
    config.generation.rotnet.unknown = 3
    with pytest.raises(ConfigError, match="generation.rotnet.unknown"):
        validate(config)
    config = _sources_config()
    add_source(config, "tiny", sample_fraction=0.01)  # 30 images for a batch of 60
    with pytest.raises(ConfigError, match="generation.tiny.batch_size"):
        Experiment(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not (SHARED_DATA / "cifar10_jpeg.npz").exists(),
                    reason="../shared/data not present")
def test_cross_dataset_ticket_from_cifar10_evaluated_on_mnist(tmp_path):
    """CIFAR-10 images become 28x28 gray for the MNIST LeNet (P1 Sec. 4.2)."""
    for name, n in (("mnist", 400), ("cifar10", 300)):
        shared_to_tfds(name, tmp_path / "tfds", n, 100)
    config = _sources_config()
    config.data.source, config.data.data_dir = "tfds", str(tmp_path / "tfds")
    config.data.validation_size, config.data.train_size, config.data.test_size = 100, 0, 0
    config.generation = type(config.generation)()
    add_source(config, "cifar", dataset="cifar10", branches=("ticket", "random_ticket"))
    results = run_experiment(config, tmp_path / "run")
    row = next(r for r in results["rows"] if r["branch"] == "ticket")
    assert row["source"] == "labels:cifar10" and row["evaluation"] == "labels:mnist"
    assert results["sources"]["cifar"]["train_images"] == 200  # 300 minus 100 validation
    # Seeds 0-5: the MNIST ticket 0.84-0.88, its CIFAR-10 source network 0.21-0.26 (chance
    # 0.1; a one-class subset would give 1.0 on both), so above 0.7 and in (0.15, 0.45).
    assert row["test_accuracy"] > 0.7
    assert 0.15 < row["generation"]["test_accuracy"] < 0.45


def test_cpu_scale_source_configs_validate():
    for name in ("mnist_sources", "cifar10_sources"):
        for arg in (None, "smoke"):
            config = load_config(name, arg)
            validate(config)
            assert {"labels", "rotnet", "exemplar", "semisup", "shuffled_labels",
                    "samples10", "classes50"} == set(config.generation.keys())
            assert "random_ticket" in config.generation.labels.branches


def test_halves_source_is_disjoint_from_the_evaluation_half(tmp_path):
    """P1 Sec. 4.1: a CIFAR-10a ticket evaluated on CIFAR-10b (here MNIST halves)."""
    config = _sources_config()
    config.data.half = "b"
    config.generation = type(config.generation)()
    add_source(config, "b", half="b")
    add_source(config, "a", half="a")
    exp = Experiment(config, tmp_path / "run")
    sources = {s.name: s for s in exp.sources}
    assert sources["b"].is_evaluation and not sources["a"].is_evaluation
    assert sources["a"].description == "labels:mnista"
    a, b = sources["a"].setup.splits.train, exp.evaluation.splits.train
    assert len(a) + len(b) == 3000  # the smoke config's 3,000 training images
    key = lambda split: {img.tobytes() for img in split.images}  # noqa: E731
    assert not key(a) & key(b)
    np.testing.assert_array_equal(np.bincount(a.labels) - np.bincount(b.labels) >= 0, True)


def test_p1_and_p0_paper_scale_configs_validate_and_convert():
    from jaxtickets.experiment.setup import convert_recipe, source_recipe

    for name, args in (("p1_transfer", ("halves", "sgd_to_adam", "adam_to_sgd,smoke")),
                       ("cifar10_p0", ("resnet18", "vgg19,exemplar", "vgg19,smoke"))):
        for arg in args:
            config = load_config(name, arg)
            validate(config)
            for source in config.generation.keys():
                s = config.generation[source]
                images = (50_000 - config.data.validation_size if not config.data.train_size
                          else config.data.train_size)
                images = int(images * s.sample_fraction / (2 if s.half else 1))
                convert_recipe(source_recipe(config, source), images, f"generation.{source}")
    sgd = load_config("p1_transfer", "sgd_to_adam")
    assert sgd.train.optimizer == "adam" and sgd.generation.transfer.optimizer == "momentum"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "cifar10_jpeg.npz").exists(),
                    reason="../shared/data not present")
@pytest.mark.parametrize("name,arg", [("cifar10_p0", "resnet18,labels,rotnet,smoke"),
                                      ("p1_transfer", "sgd_to_adam,smoke"),
                                      ("p1_transfer", "halves,smoke")])
def test_paper_scale_configs_run_their_smoke_version(name, arg, tmp_path):
    """The paper-scale configs' own code path (models, sources, recipes) on 300 real
    CIFAR-10 images; the full runs need an accelerator."""
    config = load_config(name, arg)
    config.data.data_dir = shared_to_tfds("cifar10", tmp_path / "tfds", 300, 100)
    results = run_experiment(config, tmp_path / "run")
    assert {"ticket", "random_ticket"} <= {r["branch"] for r in results["rows"]}
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in results["rows"])
