"""Paper-scale CIFAR configs on real CIFAR-10 images: configs/p2_deep_cifar.py (P2
Sec. 4: VGG-19 and P2's ResNet-20; the recipe's iteration counts and P2's prunable set)
and configs/p3_cifar.py (P3's network-size study)."""

from __future__ import annotations

import pytest

from conftest import load_config, needs_cifar, shared_to_tfds
from jaxtickets.experiment.driver import Experiment, convert_durations, run_experiment

RESNET20_CONVS = 267_696  # P2 App. I.3: pruned; the 2,560 shortcut and 640 FC weights are not


@pytest.mark.parametrize("arg, total, warmup", [
    ("vgg19", 112_480, "0st"), ("vgg19,warmup", 112_480, "10000st"),
    ("resnet20,0.01", 30_000, "0st"), ("resnet20,warmup", 30_000, "20000st")])
def test_recipes_give_p2s_iterations(arg, total, warmup):
    config = load_config("p2_deep_cifar", arg)
    schedule, _, _ = convert_durations(config, 50_000 - config.data.validation_size)
    assert (schedule.total, config.train.warmup) == (total, warmup)


@needs_cifar
def test_resnet20_smoke_prunes_p2s_convolutions_against_reinit(tmp_path):
    config = load_config("p2_deep_cifar", "resnet20,warmup,smoke")
    config.data.data_dir = shared_to_tfds("cifar10", tmp_path / "tfds", 400, 100)
    config.runtime.plot = False
    rows = run_experiment(config, tmp_path / "run")["rows"]
    assert {(r["level"], r["branch"]) for r in rows} == {
        (0, "ticket"), (1, "ticket"), (1, "random_reinit")}
    assert {r["prunable_weights"] for r in rows} == {RESNET20_CONVS}
    assert {r["remaining_weights"] for r in rows if r["level"] == 1} == {
        RESNET20_CONVS - round(0.2 * RESNET20_CONVS)}


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    return shared_to_tfds("cifar10", tmp_path_factory.mktemp("tfds"), 1500, 500)


@needs_cifar
@pytest.mark.parametrize("model", ["resnet20", "resnet32", "mobilenet_v1", "resnet18",
                                   "vgg16"])
def test_p3_cifar_builds_imp_and_omp_with_controls_for_every_network(model, cifar_dir,
                                                                      tmp_path):
    config = load_config("p3_cifar", f"{model},cifar10,0.1,wr")
    config.data.data_dir = cifar_dir
    config.data.validation_size = 500
    exp = Experiment(config, tmp_path / "run")
    assert [(s.name, s.trajectory.schedule, s.branches) for s in exp.sources] == [
        ("imp", "iterative", ["ticket", "random_reinit", "small_dense"]),
        ("omp", "one_shot", ["ticket", "random_reinit", "small_dense"])]
    per_epoch = 1000 // 64
    assert (exp.schedule.total, exp.schedule.rewind) == (160 * per_epoch, 8 * per_epoch)
    assert config.train.warmup == ("75ep" if model == "vgg16" else "0st")


@pytest.mark.slow
@needs_cifar
def test_p3_cifar_mobilenet_smoke_runs_the_controls(cifar_dir, tmp_path):
    config = load_config("p3_cifar", "mobilenet_v1,cifar10,0.1,wr,smoke")
    config.data.data_dir = cifar_dir
    config.runtime.plot = False
    rows = run_experiment(config, tmp_path / "run")["rows"]
    got = {(r["source_name"], r["level"], r["branch"]) for r in rows}
    for source in ("imp", "omp"):
        assert {(source, 2, b) for b in ("ticket", "random_reinit", "small_dense")} <= got
