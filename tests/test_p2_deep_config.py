"""configs/p2_deep_cifar.py (P2 Sec. 4: VGG-19 and P2's ResNet-20 on CIFAR-10) at smoke
size on real CIFAR-10 images: the recipe's iteration counts and P2's prunable set."""

from __future__ import annotations

import pytest

from conftest import load_config, shared_to_tfds
from jaxtickets.experiment.driver import convert_durations, run_experiment

RESNET20_CONVS = 267_696  # P2 App. I.3: pruned; the 2,560 shortcut and 640 FC weights are not


@pytest.mark.parametrize("arg, total, warmup", [
    ("vgg19", 112_480, "0st"), ("vgg19,warmup", 112_480, "10000st"),
    ("resnet20,0.01", 30_000, "0st"), ("resnet20,warmup", 30_000, "20000st")])
def test_recipes_give_p2s_iterations(arg, total, warmup):
    config = load_config("p2_deep_cifar", arg)
    schedule, _, _ = convert_durations(config, 50_000 - config.data.validation_size)
    assert (schedule.total, config.train.warmup) == (total, warmup)


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
