"""The paper-scale configs against their papers: prunable sets, training-set sizes,
augmentation, control durations, trial and reinit counts, and level ranges. Each test
reads a shipped config and checks one setting a paper fixes, without training (the
configs' runs take GPU-days)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_config
from jaxtickets.config_schema import validate
from jaxtickets.config_values import inherited
from jaxtickets.sparsity.level_densities import kernel_counts, remaining_fractions
from jaxtickets.sparsity.masks import PrunablePolicy

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


# ---- 1. the prunable set: P0 and P1 prune ResNets' 1x1 downsampling convolutions --------

# Hand counts of kernel weights (k x k x in x out, no biases).
# ResNet-18, CIFAR stem: stem 3x3x3x64 = 1,728; stage 1: 4 x 3x3x64x64 = 147,456;
# stage 2: 3x3x64x128 + 3 x 3x3x128x128 = 516,096; stage 3: 3x3x128x256 + 3 x
# 3x3x256x256 = 2,064,384; stage 4: 3x3x256x512 + 3 x 3x3x512x512 = 8,257,536.
RESNET18_CONVS = 1_728 + 147_456 + 516_096 + 2_064_384 + 8_257_536
RESNET18_SHORTCUTS = 64 * 128 + 128 * 256 + 256 * 512  # 172,032
# ResNet-50 (bottlenecks 1x1 in->w, 3x3 w->w, 1x1 w->4w): stem 7x7x3x64 = 9,408;
# stage 1 (w 64): 57,344 + 2 x 69,632; stage 2 (w 128): 245,760 + 3 x 278,528;
# stage 3 (w 256): 983,040 + 5 x 1,114,112; stage 4 (w 512): 3,932,160 + 2 x 4,456,448.
RESNET50_CONVS = (9_408 + 57_344 + 2 * 69_632 + 245_760 + 3 * 278_528 + 983_040
                  + 5 * 1_114_112 + 3_932_160 + 2 * 4_456_448)
RESNET50_SHORTCUTS = 64 * 256 + 256 * 512 + 512 * 1024 + 1024 * 2048  # 2,768,896
RESNET20_CONVS = 267_696  # P2 App. I.3; its 2,560 shortcut weights stay unpruned


def _prunable_weights(config) -> int:
    policy = PrunablePolicy(**config.pruning.prune.to_dict())
    return sum(n for kind, n in kernel_counts(config) if policy.allows(kind))


@pytest.mark.parametrize("name, arg, expected", [
    ("cifar10_p0", "resnet18", RESNET18_CONVS + RESNET18_SHORTCUTS),
    ("imagenet_rotnet", None, RESNET50_CONVS + RESNET50_SHORTCUTS),
    ("imagenet_limited", None, RESNET50_CONVS + RESNET50_SHORTCUTS),
    ("p1_cross_dataset", "imagenet2012,resnet50", RESNET50_CONVS + RESNET50_SHORTCUTS),
    ("p1_cross_dataset", "cifar10,resnet50", RESNET50_CONVS + RESNET50_SHORTCUTS),
    ("p2_deep_cifar", "resnet20", RESNET20_CONVS),
])
def test_prunable_set_matches_the_papers_hand_count(name, arg, expected):
    """P0 leaves only the output layer and BatchNorm unpruned and P1 pools every layer
    but the output, so their ResNets prune the 1x1 shortcuts; P2's ResNet-20 does not."""
    config = load_config(name, arg)
    assert _prunable_weights(config) == expected


# ---- 2. the training set: no validation split where the paper has none ------------------

@pytest.mark.parametrize("name, arg", [
    ("cifar10_p0", "resnet18"), ("imagenet_rotnet", None), ("imagenet_limited", None),
    ("p1_transfer", "halves"), ("p1_cross_dataset", "cifar10"),
    ("p1_cross_dataset", "imagenet2012"), ("p3_resnet20", "0.1,wr"),
    ("p3_cifar", "mobilenet_v1,cifar10"), ("p3_imagenet", "wr")])
def test_configs_of_papers_without_a_validation_split_train_on_every_image(name, arg):
    config = load_config(name, arg)
    validate(config)
    assert config.data.validation_size == 0


def test_p0_cifar_trains_on_50000_images_and_its_10_percent_source_on_5000(monkeypatch):
    """Through the experiment's own data path on the real CIFAR-10 labels (the pixels are
    not needed to count images, so decoding is replaced by blank images)."""
    from conftest import SHARED_DATA, SHARED_FILES, needs_cifar  # noqa: F401
    path = SHARED_DATA / SHARED_FILES["cifar10"]
    if not path.exists():
        pytest.skip("../shared/data/cifar10_jpeg.npz absent")
    from jaxtickets.data import npz_files
    from jaxtickets.experiment.sources import load_evaluation_data, source_splits

    monkeypatch.setattr(npz_files, "decode_jpegs",
                        lambda buffer, offsets, keep, *a, **k: np.zeros(
                            (len(keep), 32, 32, 3), np.uint8))
    config = load_config("cifar10_p0", "resnet18,labels,samples10")
    config.data.source, config.data.npz_file = "npz", str(path)
    splits, full = load_evaluation_data(config, None)
    assert len(splits.train) == 50_000 and len(splits.validation) == 0
    subset, summary = source_splits(config, "samples10", splits, full, None)
    assert len(subset.train) == summary["train_images"] == 5_000
    assert np.bincount(subset.train.labels, minlength=10).tolist() == [500] * 10
    # Rewind and subset budget in full-data units: 1 epoch and 160 epochs of 50,000.
    assert config.pruning.rewind == "50000ex"
    assert config.generation.samples10.duration == f"{160 * 50_000}ex"


# ---- 3. colour jitter on streamed images only where P0 uses it ---------------------------

def _jitters(config, source: str) -> bool:
    s = config.generation[source]
    return bool(inherited(s.color_jitter, config.data.color_jitter))


@pytest.mark.parametrize("name, arg, jittered", [
    ("imagenet_rotnet", None, set()),
    ("imagenet_rotnet", "alexnet", set()),
    ("imagenet_limited", "samples30,samples10,samples1,classes30,classes10,classes1,"
     "semisup,places365,cifar10,labels", {"samples1", "classes1"}),
    ("p3_imagenet", None, set()),
])
def test_only_p0s_one_percent_sources_colour_jitter_streamed_images(name, arg, jittered):
    """P0 App. A: colour augmentation for the 1% subsets (and Exemplar, whose task jitters
    on the device); crops and flips for every other ImageNet-scale run."""
    config = load_config(name, arg)
    assert config.data.color_jitter is False
    assert {s for s in config.generation.keys() if _jitters(config, s)} == jittered


# ---- 6. P3's RR and SDT train from scratch for the full T ----------------------------------

@pytest.mark.parametrize("name, arg", [
    ("p3_resnet20", "0.1,wr"), ("p3_cifar", "resnet18,cifar100,0.1,wr"),
    ("p3_imagenet", "wr")])
def test_p3_weight_rewinding_controls_train_from_scratch(name, arg):
    """P3 App. B: RR is theta'_0 * m trained T and SDT is trained T, while the rewound
    ticket trains T - t (the driver's side: tests/test_control_draws.py)."""
    config = load_config(name, arg)
    assert config.pruning.rewind not in ("0st", "0ep")
    scratch = set(config.pruning.controls_from_scratch)
    controls = {b for s in config.generation.values() for b in s.branches if b != "ticket"}
    assert controls == {"random_reinit", "small_dense"} <= scratch


# ---- 7. trials and random reinits per level ------------------------------------------------

@pytest.mark.parametrize("name, arg", [
    ("mnist_lenet", None), ("cifar10_conv", "conv2"), ("cifar10_conv", "conv4"),
    ("cifar10_conv", "conv6"), ("p2_deep_cifar", "vgg19"), ("p2_deep_cifar", "resnet20"),
    ("mnist_p2_controls", "fig4c")])
def test_p2_configs_run_five_trials_with_three_reinits(name, arg):
    """P2 Figs. 4-5: five trials, each ticket randomly reinitialized three times (15
    dashed-line runs per point); mnist_p2_controls keeps its CPU-scale 2 trials."""
    config = load_config(name, arg)
    validate(config)
    assert "random_reinit" in config.branches
    assert config.pruning.control_draws == 3
    assert config.num_replicates == (2 if name == "mnist_p2_controls" else 5)


# ---- 8. level ranges reach the last density each figure plots -----------------------------

def _percent(fraction: float) -> float:
    return round(100 * fraction, 1)


def test_lenet_levels_match_every_x_tick_of_p2_figure_4():
    """Fig. 4's ticks (percent of weights remaining) every third level, to 0.3%."""
    fractions = remaining_fractions(load_config("mnist_lenet"))
    assert [_percent(f) for f in fractions[::3]] == [
        100.0, 51.3, 26.3, 13.5, 7.0, 3.6, 1.9, 1.0, 0.5, 0.3]
    assert len(fractions) == 28  # levels 0..27: the last tick is the last level


@pytest.mark.parametrize("arg, last_tick, every", [
    ("vgg19", 0.1, 4), ("resnet20", 5.5, 2)])
def test_deep_cifar_levels_end_at_the_last_tick_of_p2_figures_7_and_8(arg, last_tick, every):
    """Figs. 7-8's ticks count the unpruned weights too (ResNet-20: 41.7% after 4 levels)."""
    fractions = remaining_fractions(load_config("p2_deep_cifar", arg))
    assert _percent(fractions[-1]) == last_tick
    assert (len(fractions) - 1) % every == 0  # the last level is a tick, not one before
    if arg == "resnet20":
        assert [_percent(f) for f in fractions[::2]] == [
            100.0, 64.4, 41.7, 27.1, 17.8, 11.8, 8.0, 5.5]


@pytest.mark.parametrize("arg", ["conv2", "conv4", "conv6"])
def test_conv_levels_reach_p2_figure_5s_last_point_of_one_percent(arg):
    fractions = remaining_fractions(load_config("cifar10_conv", arg))
    assert _percent(fractions[-1]) <= 1.0 < _percent(fractions[-2])
    if arg == "conv2":  # Conv-2's levels fall on Fig. 5's ticks every third level
        assert [_percent(f) for f in fractions[::3]] == [
            100.0, 51.4, 26.5, 13.7, 7.1, 3.7, 1.9, 1.0]


def test_one_shot_sweep_is_p2_figure_4c():
    config = load_config("mnist_p2_controls", "fig4c")
    validate(config)
    assert [_percent(f) for f in remaining_fractions(config, one_shot=True)] == [
        100.0, 87.5, 75.0, 62.6, 50.1, 37.6, 25.1, 12.7]


def test_level_densities_equal_the_pruners_counts():
    """remaining_fractions predicts what the pruner does: LeNet pruned layer-wise for 3
    levels and ResNet-20 globally for 2, on random weights, keep those counts."""
    import jax

    from jaxtickets.models import abstract_variables, create_model
    from jaxtickets.sparsity import masks as masks_lib
    from jaxtickets.sparsity.pruning import prune_global, prune_layerwise

    for name, arg, levels in (("mnist_lenet", None, 3), ("p2_deep_cifar", "resnet20", 2)):
        config = load_config(name, arg)
        config.pruning.levels = levels
        predicted = remaining_fractions(config)
        shapes = abstract_variables(create_model(config.model.name, 10),
                                    (28, 28, 1) if name == "mnist_lenet" else (32, 32, 3))
        rng = np.random.default_rng(0)
        params = jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(np.float32),
                                        shapes["params"])
        policy = PrunablePolicy(**config.pruning.prune.to_dict())
        mask = masks_lib.init_mask(params, policy)
        total = sum(n for _, n in kernel_counts(config))
        fixed = total - masks_lib.remaining_and_total(mask)[1]
        for level in range(1, levels + 1):
            p = config.pruning
            mask = (prune_global(params, mask, p.rate, level) if p.method == "global" else
                    prune_layerwise(params, mask, p.rates.to_dict(), level))
            kept = masks_lib.remaining_and_total(mask)[0]
            assert (kept + fixed) / total == predicted[level]


# ---- 9. P0's CIFAR-10 baselines ----------------------------------------------------------

@pytest.mark.parametrize("model", ["resnet18", "vgg19"])
def test_p0_cifar_has_tables_2_3_baselines_and_app_g_reinits(model):
    """Tables 2-3: 'Random' (P1's random ticket) and 'Random - adjusted' beside the labels
    tickets; App. G: the labels and RotNet masks also randomly reinitialized."""
    config = load_config("cifar10_p0", model)
    validate(config)
    branches = {name: set(inherited(config.generation[name].branches, config.branches))
                for name in config.generation.keys()}
    assert {"ticket", "random_ticket", "random_adjusted", "random_reinit"} <= branches["labels"]
    assert "random_reinit" in branches["rotnet"]
