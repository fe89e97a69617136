"""model.init and model.bn_init (models/initializers.py) and MobileNet-v1's two stems.

Sampling tolerances: for n i.i.d. Gaussian draws the sample std has a std of about
sigma / sqrt(2n) (uniform draws, lighter-tailed, vary less), a sample mean sigma /
sqrt(n) and a sample fraction sqrt(p(1-p)/n); every check allows Z of those.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, random_cifar_setup
from jaxtickets.config_schema import base_config, validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.models.initializers import (BN_INITIALIZERS, INITIALIZERS, bn_init_names,
                                            init_names, initialize_batchnorm,
                                            initialize_kernels, layer_key,
                                            standard_draw)
from jaxtickets.sparsity.masks import path_name
from jaxtickets.sparsity.small_dense import small_dense_model

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

Z = 5.0  # sampling standard errors allowed (each test's draws are fixed by its key)
KEY = jax.random.PRNGKey(7)
CIFAR, IMAGENET = (32, 32, 3), (224, 224, 3)

# Large layers, non-square so that fan_in and fan_out differ, with the std each
# initializer's definition gives, written out: dense (in, out), conv HWIO (receptive
# field 9), depthwise (3, 3, 1, C): fan_in 9, fan_out 9C (as PyTorch's (C, 1, 3, 3)).
LAYERS = {"dense": (1000, 600), "conv": (3, 3, 256, 128), "depthwise": (3, 3, 1, 2048)}
GLOROT = {"dense": math.sqrt(2 / 1600), "conv": math.sqrt(2 / (2304 + 1152)),
          "depthwise": math.sqrt(2 / (9 + 9 * 2048))}
KAIMING = {"dense": math.sqrt(2 / 1000), "conv": math.sqrt(2 / 2304),
           "depthwise": math.sqrt(2 / 9)}
EXPECTED_STD = {"glorot_normal": GLOROT, "kaiming_normal": KAIMING,
                "kaiming_uniform": KAIMING, "binary": KAIMING}


def _large_params() -> dict:
    """A params tree of the large layers, with a bias and a BN scale beside them."""
    tree = {name: {"kernel": np.zeros(shape, np.float32),
                   "bias": np.full(shape[-1], 0.3, np.float32)}
            for name, shape in LAYERS.items()}
    tree["bn"] = {"scale": np.full(7, 1.5, np.float32), "bias": np.full(7, -0.2, np.float32)}
    return tree


@functools.lru_cache(maxsize=None)
def _drawn(name: str) -> dict:
    """The large layers drawn by initializer `name` (once per name for every test)."""
    return initialize_kernels(name, _large_params(), KEY)


def test_registry_holds_the_five_initializers_and_default():
    assert sorted(INITIALIZERS) == ["binary", "glorot_normal", "kaiming_normal",
                                    "kaiming_uniform", "orthogonal"]
    assert init_names()[0] == "default"


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_each_initializer_has_its_defined_std_per_layer(name):
    params = _drawn(name)
    for layer, shape in LAYERS.items():
        w = np.asarray(params[layer]["kernel"], np.float64)
        n = w.size
        if name == "orthogonal":  # unit columns (or rows) of the (fan_in, out) matrix
            rows = math.prod(shape[:-1])
            std = 1 / math.sqrt(max(rows, shape[-1]))
        else:
            std = EXPECTED_STD[name][layer]
        assert abs(w.std() - std) <= Z * std / math.sqrt(2 * n), (name, layer, w.std(), std)
        assert abs(w.mean()) <= Z * std / math.sqrt(n), (name, layer, w.mean())


def test_kaiming_uniform_is_uniform_within_sqrt3_std():
    """Bounded by sqrt(3) std and reaching the bound: a normal of that std would cross
    it (P(|x| > 1.73 sigma) = 8%), a narrower uniform would not reach it."""
    params = _drawn("kaiming_uniform")
    for layer in LAYERS:
        w = np.asarray(params[layer]["kernel"])
        bound = math.sqrt(3) * KAIMING[layer]
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() >= bound * 0.999  # P(all n below) = 0.999^n, n >= 18,432


def test_orthogonal_kernels_are_orthonormal_matrices():
    params = _drawn("orthogonal")
    for layer, shape in LAYERS.items():
        w = np.asarray(params[layer]["kernel"], np.float64).reshape(-1, shape[-1])
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-4, err_msg=layer)
    wide = initialize_kernels("orthogonal", {"d": {"kernel": np.zeros((300, 500),
                                                                      np.float32)}}, KEY)
    w = np.asarray(wide["d"]["kernel"], np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(300), atol=1e-4)  # rows when fan_in < out


def test_binary_takes_exactly_plus_and_minus_the_kaiming_std():
    params = _drawn("binary")
    for layer in LAYERS:
        w = np.asarray(params[layer]["kernel"])
        values = np.unique(w)
        assert len(values) == 2, (layer, values[:5])
        np.testing.assert_allclose(values, [-KAIMING[layer], KAIMING[layer]], rtol=1e-6)
        positive = float(np.mean(w > 0))
        assert abs(positive - 0.5) <= Z * 0.5 / math.sqrt(w.size), (layer, positive)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_biases_and_batchnorm_are_left_as_they_were(name):
    params = _drawn(name)
    reference = _large_params()
    for layer in LAYERS:
        np.testing.assert_array_equal(params[layer]["bias"], reference[layer]["bias"])
    for leaf in ("scale", "bias"):
        np.testing.assert_array_equal(params["bn"][leaf], reference["bn"][leaf])


def _filled(name: str, classes: int, rng: np.random.Generator) -> dict:
    """A model's params with every leaf random (so 'unchanged' is not 'still zero')."""
    shapes = abstract_variables(create_model(name, classes), CIFAR)["params"]
    return jax.tree_util.tree_map(
        lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)


@pytest.mark.parametrize("model, layers", [
    ("resnet20", {"stem_conv", "conv1", "shortcut_conv", "output"}),
    ("mobilenet_v1", {"stem_conv", "depthwise_0", "pointwise_12", "output"}),
    ("vgg11", {"conv_0", "output"})])
def test_every_kernel_is_redrawn_and_nothing_else(model, layers):
    """Shortcut, depthwise and output kernels included; biases and BN untouched."""
    before = _filled(model, 10, np.random.default_rng(0))
    after = initialize_kernels("kaiming_normal", before, KEY)
    redrawn = set()
    for (path, old), new in zip(jax.tree_util.tree_flatten_with_path(before)[0],
                                jax.tree_util.tree_leaves(after), strict=True):
        name = path_name(path)
        if name.endswith("/kernel"):
            assert not np.allclose(old, new), name
            redrawn.add(name.split("/")[-2])
        else:
            np.testing.assert_array_equal(old, new, err_msg=name)
    assert layers <= redrawn, layers - redrawn


def test_default_returns_the_params_themselves():
    params = _filled("resnet20", 10, np.random.default_rng(0))
    assert initialize_kernels("default", params, KEY) is params


def _kernels(tree: dict) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_name(p): np.asarray(v) for p, v in flat if path_name(p).endswith("/kernel")}


@pytest.mark.parametrize("a, b, shared", [
    # The driver's case: the evaluation model (10 classes) and a rotation source's (4
    # outputs) share every layer but `output`.
    (("resnet20", 10), ("resnet20", 4), 21),
    # ResNet-32's extra stage-1 blocks sit before stage 2 in the tree: keys drawn in
    # tree order would give stage 2 and 3 other values; keys from paths do not.
    (("resnet20", 10), ("resnet32", 10), 22)])
def test_shared_layers_get_the_same_values_from_the_same_key(a, b, shared):
    rng = np.random.default_rng(0)
    first = _kernels(initialize_kernels("glorot_normal", _filled(*a, rng), KEY))
    second = _kernels(initialize_kernels("glorot_normal", _filled(*b, rng), KEY))
    same = [name for name in first
            if name in second and first[name].shape == second[name].shape]
    assert len(same) == shared
    for name in same:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    other = _kernels(initialize_kernels("glorot_normal", _filled(*a, rng),
                                        jax.random.PRNGKey(8)))
    assert not any(np.allclose(first[name], other[name]) for name in first)


def test_unknown_initializer_is_a_config_error_naming_model_init():
    config = base_config()
    config.model.init = "xavier_uniform"
    with pytest.raises(ConfigError, match=r"model\.init.*glorot_normal"):
        validate(config)
    with pytest.raises(ConfigError, match=r"model\.init"):
        initialize_kernels("xavier_uniform", {}, KEY)
    config.model.init = "orthogonal"
    validate(config)


def test_p2_resnet20_starts_from_gaussian_glorot_kernels():
    """configs/p2_deep_cifar.py:resnet20 as given, its evaluation Setup built from the
    config as the driver builds it (random images) and its initial variables drawn by
    the driver: every kernel (convs, shortcuts, output) has std sqrt(2/(fan_in +
    fan_out)). He fan_out, the model's own default, gives sqrt(2) times that on the
    3x3 convs of equal widths."""
    config = load_config("p2_deep_cifar", "resnet20")
    setup = random_cifar_setup(config)
    variables = Experiment.init_weights(setup, KEY)
    checked = 0
    for path, w in jax.tree_util.tree_flatten_with_path(variables["params"])[0]:
        if not path_name(path).endswith("kernel"):
            continue
        shape = w.shape
        receptive = math.prod(shape[:-2])
        std = math.sqrt(2 / (receptive * (shape[-2] + shape[-1])))
        got = float(np.std(np.asarray(w, np.float64)))
        assert abs(got - std) <= Z * std / math.sqrt(2 * w.size), (path_name(path), got, std)
        checked += 1
    assert checked == 22  # 19 convs, 2 shortcuts, output


def _final_map(model, image_shape) -> tuple[int, ...]:
    """The shape of the last block's output (before global pooling), traced only."""
    x = jnp.zeros((1, *image_shape), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(KEY, x, train=False,
                                                  capture_intermediates=True))
    return tuple(variables["intermediates"]["pointwise_bn_12"]["__call__"][0].shape)


def test_mobilenet_v1_is_the_cifar_variant_with_a_2x2_final_map():
    model = create_model("mobilenet_v1", 10)
    assert _final_map(model, CIFAR) == (1, 2, 2, 1024)
    assert _final_map(create_model("mobilenet_v1_imagenet", 10), CIFAR) == (1, 1, 1, 1024)
    assert _final_map(create_model("mobilenet_v1_imagenet", 1000), IMAGENET) == (1, 7, 7,
                                                                                   1024)


def test_small_dense_mobilenet_keeps_the_cifar_stem():
    model = create_model("mobilenet_v1", 10)
    small, _ = small_dense_model(model, 500_000, CIFAR)
    assert small.widths != model.widths
    assert _final_map(small, CIFAR)[1:3] == (2, 2)


# ---- model.bn_init: BatchNorm scale and bias ------------------------------------------
# U(a, b) has mean (a+b)/2 and std (b-a)/sqrt(12); its kurtosis is 9/5, so a sample
# std of n draws has a std of about sigma * sqrt((9/5 - 1) / (4n)) = sigma / sqrt(5n).
BN_SIZE = 100_000
BN_UNIFORM = {"uniform": (0.0, 1.0), "positive_negative": (-1.0, 1.0)}


def _bn_tree(size: int = BN_SIZE) -> tuple[dict, dict]:
    """(params, batch_stats): a large BatchNorm layer `bn`, a dense layer, and a
    LayerNorm `ln` that has scale and bias like BN but no batch_stats; every value
    is off the defaults so that 'unchanged' cannot be 'reset to the default'."""
    rng = np.random.default_rng(1)
    params = {"bn": {"scale": np.full(size, 1.5, np.float32),
                     "bias": np.full(size, -0.2, np.float32)},
              "dense": {"kernel": rng.standard_normal((64, 32)).astype(np.float32),
                        "bias": np.full(32, 0.3, np.float32)},
              "ln": {"scale": np.full(32, 2.5, np.float32),
                     "bias": np.full(32, 0.7, np.float32)}}
    stats = {"bn": {"mean": np.full(size, 0.4, np.float32),
                    "var": np.full(size, 3.0, np.float32)}}
    return params, stats


@functools.lru_cache(maxsize=None)
def _bn_drawn(name: str) -> dict:
    params, stats = _bn_tree()
    return initialize_batchnorm(name, params, stats, KEY)


def test_bn_registry_holds_openlths_four_and_default():
    assert sorted(BN_INITIALIZERS) == ["fixed", "ones", "positive_negative", "uniform"]
    assert bn_init_names()[0] == "default"


@pytest.mark.parametrize("name", sorted(BN_UNIFORM))
def test_bn_uniform_scales_have_their_mean_std_and_support(name):
    low, high = BN_UNIFORM[name]
    scale = np.asarray(_bn_drawn(name)["bn"]["scale"], np.float64)
    n = scale.size
    mean, std = (low + high) / 2, (high - low) / math.sqrt(12)
    assert abs(scale.mean() - mean) <= Z * std / math.sqrt(n), (name, scale.mean())
    assert abs(scale.std() - std) <= Z * std / math.sqrt(5 * n), (name, scale.std(), std)
    assert low <= scale.min() and scale.max() <= high, (name, scale.min(), scale.max())
    # The whole interval is covered: P(no draw within 0.001 of an end) = 0.9995^n.
    width = high - low
    assert scale.min() <= low + 1e-3 * width and scale.max() >= high - 1e-3 * width
    np.testing.assert_array_equal(_bn_drawn(name)["bn"]["bias"], np.zeros(n, np.float32))


@pytest.mark.parametrize("name, bias", [("fixed", 0.0), ("ones", 1.0)])
def test_bn_fixed_and_ones_are_exact(name, bias):
    drawn = _bn_drawn(name)["bn"]
    np.testing.assert_array_equal(drawn["scale"], np.ones(BN_SIZE, np.float32))
    np.testing.assert_array_equal(drawn["bias"], np.full(BN_SIZE, bias, np.float32))
    assert drawn["scale"].dtype == np.float32 and drawn["bias"].dtype == np.float32


@pytest.mark.parametrize("name", sorted(BN_INITIALIZERS))
def test_bn_init_changes_only_batchnorm_leaves(name):
    """Kernels, dense biases and LayerNorm's scale and bias (no batch_stats) keep their
    values bit for bit, and the running statistics are not touched."""
    params, stats = _bn_tree(1000)
    before = jax.tree_util.tree_map(np.copy, (params, stats))
    after = initialize_batchnorm(name, params, stats, KEY)
    for layer in ("dense", "ln"):
        for leaf in after[layer]:
            np.testing.assert_array_equal(after[layer][leaf], before[0][layer][leaf],
                                          err_msg=f"{layer}/{leaf}")
    jax.tree_util.tree_map(np.testing.assert_array_equal, (params, stats), before)
    assert not np.array_equal(after["bn"]["scale"], before[0]["bn"]["scale"])
    assert not np.array_equal(after["bn"]["bias"], before[0]["bn"]["bias"])


def test_resnet20_has_every_batchnorm_scale_redrawn_and_nothing_else():
    """21 BN layers (stem, two per block, two projection shortcuts); convs, the output
    layer and the running statistics unchanged."""
    rng = np.random.default_rng(0)
    before = _filled("resnet20", 10, rng)
    shapes = abstract_variables(create_model("resnet20", 10), CIFAR)["batch_stats"]
    stats = jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(s.dtype),
                                   shapes)
    stats_before = jax.tree_util.tree_map(np.copy, stats)
    after = initialize_batchnorm("positive_negative", before, stats, KEY)
    bn_layers = {path_name(p).rsplit("/", 1)[0]
                 for p, _ in jax.tree_util.tree_flatten_with_path(stats)[0]}
    redrawn = set()
    for (path, old), new in zip(jax.tree_util.tree_flatten_with_path(before)[0],
                                jax.tree_util.tree_leaves(after), strict=True):
        name = path_name(path)
        layer, leaf = name.rsplit("/", 1)
        if layer in bn_layers:
            assert leaf in ("scale", "bias"), name
            if leaf == "scale":
                assert not np.allclose(old, new) and np.abs(new).max() <= 1, name
                assert len(np.unique(new)) == new.size, name  # drawn, not constant
                redrawn.add(layer)
            else:
                np.testing.assert_array_equal(new, np.zeros_like(old), err_msg=name)
        else:
            np.testing.assert_array_equal(old, new, err_msg=name)
    assert len(redrawn) == 21 and redrawn == bn_layers
    jax.tree_util.tree_map(np.testing.assert_array_equal, stats, stats_before)


def _bn_scales(model: str, classes: int, key: jax.Array) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    variables = abstract_variables(create_model(model, classes), CIFAR)
    params = jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(s.dtype),
                                    variables["params"])
    drawn = initialize_batchnorm("uniform", params, variables["batch_stats"], key)
    flat = jax.tree_util.tree_flatten_with_path(drawn)[0]
    return {path_name(p): np.asarray(v) for p, v in flat
            if path_name(p).endswith("/scale")}


def test_bn_scales_depend_on_key_path_and_shape_only():
    """ResNet-20 and ResNet-32 share 21 BN layers by path and shape (ResNet-32's extra
    stage-1 blocks sit between them in the tree): the same values from the same key.
    Distinct layers of one shape differ, another key gives other values, and the
    scales are not the kernel initializers' draws for that path (their own salt)."""
    first = _bn_scales("resnet20", 10, KEY)
    second = _bn_scales("resnet32", 10, KEY)
    shared = [n for n in first if n in second and first[n].shape == second[n].shape]
    assert len(shared) == 21
    for name in shared:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    values = [v.tobytes() for v in first.values()]
    assert len(set(values)) == len(values)  # no two layers alike (7 share shape (16,))
    other = _bn_scales("resnet20", 10, jax.random.PRNGKey(8))
    assert not any(np.allclose(first[n], other[n]) for n in first)
    for name, scale in first.items():
        kernel_salt = standard_draw(layer_key(KEY, name), scale.shape, "uniform")
        assert not np.allclose(scale, (kernel_salt + 1) / 2, atol=1e-6), name


def test_bn_default_returns_the_params_themselves():
    params, stats = _bn_tree(10)
    assert initialize_batchnorm("default", params, stats, KEY) is params


def test_bn_init_config_errors_name_the_key():
    config = base_config()
    config.model.bn_init = "oneone"
    with pytest.raises(ConfigError, match=r"model\.bn_init.*'oneone'.*positive_negative"):
        validate(config)
    with pytest.raises(ConfigError, match=r"model\.bn_init.*uniform"):
        initialize_batchnorm("oneone", {}, {}, KEY)
    config.model.bn_init = "uniform"  # base_config's model: lenet300_100, no BatchNorm
    with pytest.raises(ConfigError, match=r"model\.bn_init.*lenet300_100.*no BatchNorm"):
        validate(config)
    params, stats = _bn_tree(10)
    with pytest.raises(ConfigError, match=r"model\.bn_init.*no BatchNorm"):
        initialize_batchnorm("uniform", params, {}, KEY)
    config.model.bn_init = "default"
    validate(config)


def test_driver_start_weights_of_a_resnet20_run_have_uniform_bn_scales():
    """configs/p3_resnet20.py:smoke with model.bn_init='uniform', validated and its
    evaluation Setup built as the driver builds it (random images): the driver's
    initial variables have every BN scale drawn from U(0, 1) and zero BN biases, and
    everything else as under 'default' from the same key."""
    config = load_config("p3_resnet20", "smoke")
    config.model.bn_init = "uniform"
    validate(config)
    setup = random_cifar_setup(config)
    assert setup.bn_init == "uniform"
    drawn = Experiment.init_weights(setup, KEY)
    setup.bn_init = "default"
    plain = Experiment.init_weights(setup, KEY)
    flat = jax.tree_util.tree_flatten_with_path(drawn["params"])[0]
    scales = 0
    for (path, new), old in zip(flat, jax.tree_util.tree_leaves(plain["params"]),
                                strict=True):
        name = path_name(path)
        if "bn" in name.split("/")[-2] and name.endswith("/scale"):
            new = np.asarray(new)
            assert new.std() > 0.1 and 0 <= new.min() and new.max() <= 1, name
            np.testing.assert_array_equal(old, np.ones_like(old), err_msg=name)
            scales += 1
        elif "bn" in name.split("/")[-2]:
            np.testing.assert_array_equal(new, np.zeros_like(new), err_msg=name)
        else:
            np.testing.assert_array_equal(new, old, err_msg=name)
    assert scales == 21
    jax.tree_util.tree_map(np.testing.assert_array_equal, drawn["batch_stats"],
                           plain["batch_stats"])
