"""The paper-scale ImageNet and Places365 configs (P0 Tables 4-8 and Fig. 7, P1 Figs.
3-4, P3 on ImageNet) end to end at smoke size, on imagenet2012- and places365_small-
format JPEG files and real CIFAR-10 images made here. LeNet stands in for the configs'
ResNet-50 to keep them short (the slow suite runs ResNet-50 in test_streamed_experiment)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import HAVE_CIFAR, load_config, make_jpeg_imagenet, needs_cifar, shared_to_tfds
from jaxtickets.config_schema import validate
from jaxtickets.data.selections import chosen_classes
from jaxtickets.experiment.driver import run_experiment
from jaxtickets.experiment.sources import CLASS_STREAM, _seed

N_TRAIN, N_VAL = 60, 12
# Labels cycle through the classes of the 1% subset: the 10% and 30% subsets are the same
# draw's first 100 and 300 classes, so every class subset holds every training image.
ONE_PERCENT = chosen_classes(1000, 0.01, _seed(0, CLASS_STREAM))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfds")
    make_jpeg_imagenet(path, N_TRAIN, N_VAL, cycle=ONE_PERCENT)
    make_jpeg_imagenet(path, 30, 8, classes=365, name="places365_small")
    if HAVE_CIFAR:
        shared_to_tfds("cifar10", path, 200, 60)
    return str(path)


def on_jpegs(config, data_dir, image_size=16, model="lenet300_100"):
    config.model.name = model
    config.data.data_dir = data_dir
    config.data.image_size = image_size
    config.runtime.plot = False
    validate(config)
    return config


@needs_cifar
def test_imagenet_limited_smoke_runs_every_source(data_dir, tmp_path):
    """P0 Tables 6-8: 30/10/1% of the images and of the classes, S4L, Places365 and
    CIFAR-10 sources, evaluated on ImageNet labels (32-pixel crops, CIFAR-10's size)."""
    config = on_jpegs(load_config("imagenet_limited", "smoke"), data_dir, image_size=32)
    results = run_experiment(config, tmp_path / "run")
    sources = results["sources"]
    train = N_TRAIN - config.data.validation_size
    assert set(sources) == {"samples30", "samples10", "samples1", "classes30", "classes10",
                            "classes1", "semisup", "places365", "cifar10"}
    for name, classes in (("classes30", 300), ("classes10", 100), ("classes1", 10)):
        assert (sources[name]["classes"], sources[name]["train_images"]) == (classes, train)
    assert sources["samples1"]["train_images"] == ONE_PERCENT.size  # one image per class
    assert sources["samples30"]["classes"] == 1000
    assert sources["semisup"]["labelled_images"] == ONE_PERCENT.size
    assert sources["semisup"]["train_images"] == train
    assert (sources["places365"]["dataset"], sources["places365"]["classes"]) == (
        "places365_small", 365)
    assert (sources["cifar10"]["dataset"], sources["cifar10"]["classes"]) == ("cifar10", 10)
    rows = results["rows"]
    assert {r["source_name"] for r in rows} == set(sources)
    assert {r["evaluation"] for r in rows} == {"labels:imagenet2012"}
    assert all(np.isfinite(r["test_accuracy"]) for r in rows)


def test_imagenet_limited_fig7_rewinds_10_percent_at_four_criteria():
    config = load_config("imagenet_limited", "fig7")
    rewinds = {n: config.generation[n].rewind or config.pruning.rewind
               for n in config.generation.keys()}
    assert rewinds == {"samples10": "3840000ex", "samples10_rw3ep": "3ep",
                       "samples10_rw3pct": "3.3%", "samples10_rw2500st": "2500st"}
    assert {config.generation[n].sample_fraction for n in rewinds} == {0.1}


def test_imagenet_rotnet_alexnet_takes_table_5s_recipes():
    config = load_config("imagenet_rotnet", "alexnet")
    assert (config.model.name, config.model.dropout, config.train.batch_size,
            config.train.learning_rate, config.train.decay_at) == (
        "alexnet", 0.5, 4096, 0.4, ("30ep", "60ep"))
    rotnet, exemplar = config.generation.rotnet, config.generation.exemplar
    assert (rotnet.batch_size, rotnet.learning_rate, rotnet.warmup, rotnet.weight_decay) == (
        8192, 0.5, "2ep", 1e-5)
    assert (exemplar.duration, exemplar.learning_rate, exemplar.decay_at) == (
        "30ep", 0.1, ("20ep",))


def test_p1_large_target_smoke_takes_imagenet_and_places365_tickets(data_dir, tmp_path):
    config = on_jpegs(load_config("p1_cross_dataset", "imagenet2012,smoke"), data_dir)
    results = run_experiment(config, tmp_path / "run")
    rows = results["rows"]
    assert {r["source_name"] for r in rows} == {"imagenet2012", "places365_small"}
    assert {r["evaluation"] for r in rows} == {"labels:imagenet2012"}
    assert {r["branch"] for r in rows if r["source_name"] == "imagenet2012"} == {
        "ticket", "random_ticket"}


def test_p3_imagenet_smoke_trains_imp_omp_and_their_controls(data_dir, tmp_path):
    # P3 prunes convolutions only: Conv-2 stands in for ResNet-50.
    config = on_jpegs(load_config("p3_imagenet", "wr,smoke"), data_dir, model="conv2")
    config.train.learning_rate = 0.01  # ResNet-50's 1.024 diverges without BN
    results = run_experiment(config, tmp_path / "run")
    got = {(r["source_name"], r["level"], r["branch"]) for r in results["rows"]}
    for source in ("imp", "omp"):
        assert {(source, 1, b) for b in ("ticket", "random_reinit", "small_dense")} <= got
    assert results["rewind"]["step"] == 2


@pytest.mark.slow
@needs_cifar
def test_imagenet_limited_on_resnet50_transfers_a_32_pixel_cifar10_ticket(data_dir, tmp_path):
    """The config's own ResNet-50: CIFAR-10 trains at 32 x 32 and hands its mask to the
    64-pixel ImageNet evaluation (global pooling), beside a class subset and S4L."""
    config = load_config("imagenet_limited", "cifar10,classes1,semisup,smoke")
    config.data.data_dir = data_dir
    config.data.image_size = 64
    config.runtime.plot = False
    results = run_experiment(config, tmp_path / "run")
    rows = results["rows"]
    assert {r["source_name"] for r in rows} == {"cifar10", "classes1", "semisup"}
    assert len({r["prunable_weights"] for r in rows if r["level"] == 1}) == 1
    assert all(np.isfinite(r["test_accuracy"]) for r in rows)
