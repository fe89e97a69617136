"""The public library, jaxtickets.lottery, on linen and NNX parameter trees.

Masked training runs on real MNIST digits (the embedded subset) through a user-style
jitted loop (linen: jax.jit + optax.apply_updates; NNX: nnx.Optimizer + nnx.jit);
pruning is checked against the closed form of the counts and against the experiment
driver's own functions; imp, per-layer rate patterns, the prunable predicate, Orbax
storage and the one error for a mask that does not fit.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxtickets import lottery
from jaxtickets.data.datasets import load_splits
from jaxtickets.sparsity import criteria
from jaxtickets.sparsity.pruning import num_to_prune, prune_global, prune_layerwise

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

BATCH = 60
STEPS = 200
WEIGHT_DECAY = 5e-3
OPTIMIZERS = {
    "adamw": lambda: optax.adamw(1e-3, weight_decay=WEIGHT_DECAY),
    "momentum": lambda: optax.chain(optax.add_decayed_weights(WEIGHT_DECAY),
                                    optax.sgd(0.05, momentum=0.9)),
}
# The leaves each tree has: prunable kernels and the rest.
LINEN_KERNELS = ["conv_0/kernel", "conv_1/kernel", "dense_0/kernel", "output/kernel"]
NNX_KERNELS = ["conv1/kernel", "conv2/kernel", "layers/0/kernel", "layers/1/kernel"]


# ---- two small CNN+MLPs on MNIST-sized inputs -------------------------------------------
class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3), strides=2, name="conv_0")(x))
        x = nn.relu(nn.Conv(8, (3, 3), strides=2, name="conv_1")(x))
        x = nn.relu(nn.Dense(32, name="dense_0")(x.reshape(x.shape[0], -1)))
        return nn.Dense(10, name="output")(x)


class NNXNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 4, (3, 3), strides=2, rngs=rngs)
        self.norm = nnx.LayerNorm(4, rngs=rngs)
        self.conv2 = nnx.Conv(4, 8, (3, 3), strides=2, rngs=rngs)
        self.layers = nnx.List([nnx.Linear(7 * 7 * 8, 32, rngs=rngs),
                                nnx.Linear(32, 10, rngs=rngs)])

    def __call__(self, x):
        x = nnx.relu(self.norm(self.conv1(x)))
        x = nnx.relu(self.conv2(x)).reshape(x.shape[0], -1)
        return self.layers[1](nnx.relu(self.layers[0](x)))


def _host(tree):
    return jax.tree_util.tree_map(np.array, tree)


def linen_params():
    """The linen params' structure and shapes (zeros; eager init is slow on a busy CPU)."""
    shapes = jax.eval_shape(LinenNet().init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes["params"])


def nnx_params():
    """The NNX parameter state's structure and shapes (an nnx.State of nnx.Param; zeros)."""
    shapes = nnx.state(nnx.eval_shape(lambda: NNXNet(nnx.Rngs(0))), nnx.Param)
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def _he_init(tree, seed: int = 0):
    """Initial weights by numpy (JAX's jitted initializers take seconds to compile):
    kernels N(0, 2 / fan_in), biases 0, normalization scales 1."""
    rng = np.random.default_rng(seed)

    def init(path, x):
        name = lottery._path_str(path)
        if name.endswith("kernel"):
            fan_in = int(np.prod(x.shape[:-1]))
            return (rng.standard_normal(x.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        return np.full(x.shape, 1.0 if name.endswith("scale") else 0.0, np.float32)

    return jax.tree_util.tree_map_with_path(init, tree)


def _initialized(kind: str):
    """Real initial weights: linen params, or NNX (graphdef, parameter state)."""
    if kind == "linen":
        return _he_init(linen_params())
    graphdef, state = nnx.split(nnx.eval_shape(lambda: NNXNet(nnx.Rngs(0))))
    return graphdef, _he_init(state)


TREES = {"linen": linen_params, "nnx": nnx_params}


def named(tree) -> dict[str, np.ndarray]:
    """{path string: host array} of every non-None leaf."""
    names, leaves, _ = lottery._flatten(tree)
    return {n: np.array(x) for n, x in zip(names, leaves) if x is not None}


def random_like(params, seed: int):
    """Gaussian weights of params' structure (what training might leave)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: rng.standard_normal(np.shape(x)).astype(np.float32), params)


def remaining_after(total: int, rate: float, levels: int) -> list[int]:
    """Remaining weights of a group after 0..levels rounds of exact pruning."""
    out = [total]
    for _ in range(levels):
        out.append(out[-1] - math.floor(rate * out[-1] + 0.5))
    return out


# ---- masks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", TREES)
def test_ones_mask_default_takes_kernels_only(kind):
    params = TREES[kind]()
    mask = lottery.ones_mask(params)
    assert jax.tree_util.tree_structure(mask, is_leaf=lambda x: x is None) == \
        jax.tree_util.tree_structure(params)
    kept = named(mask)
    assert sorted(kept) == sorted(LINEN_KERNELS if kind == "linen" else NNX_KERNELS)
    assert all(m.dtype == np.bool_ and m.all() for m in kept.values())
    assert lottery.density(mask) == 1.0
    c = lottery.counts(mask)
    assert c.kept == c.total == lottery.remaining(mask) == sum(m.size for m in kept.values())


def test_prunable_predicate_sees_path_strings():
    seen = []

    def prunable(path, leaf):
        seen.append(path)
        return path.endswith("kernel") and not path.startswith("layers/1")

    mask = lottery.ones_mask(nnx_params(), prunable)
    assert sorted(named(mask)) == ["conv1/kernel", "conv2/kernel", "layers/0/kernel"]
    assert "norm/scale" in seen and "layers/1/bias" in seen
    assert not any("value" in p for p in seen)  # NNX's Variable.value is not in the name
    with pytest.raises(ValueError, match="no leaf of the params is prunable"):
        lottery.ones_mask(linen_params(), lambda path, leaf: False)


def test_apply_mask_and_rewind_zero_exactly():
    params = random_like(linen_params(), 1)
    params["dense_0"]["kernel"][0, :] = -0.0
    mask = lottery.prune(params, lottery.ones_mask(params), 0.5)
    for fn in (lottery.apply_mask, lottery.rewind):
        out = named(fn(params, mask))
        for name, m in named(mask).items():
            assert np.all(out[name][~m].view(np.uint32) == 0), name  # +0.0, never -0.0
            np.testing.assert_array_equal(out[name][m], named(params)[name][m])
        np.testing.assert_array_equal(out["output/bias"], params["output"]["bias"])


# ---- pruning: closed-form counts ---------------------------------------------------------
@pytest.mark.parametrize("kind", TREES)
def test_layerwise_counts_are_exact_at_every_level(kind):
    params = TREES[kind]()
    mask = lottery.ones_mask(params)
    totals = {n: m.size for n, m in named(mask).items()}
    for level in range(1, 7):
        before = lottery.counts(mask).layers
        mask = lottery.prune(random_like(params, level), mask, 0.2, seed=level)
        after = lottery.counts(mask).layers
        for name, (kept, total) in after.items():
            assert kept == before[name][0] - num_to_prune(0.2, before[name][0]), name
            assert kept == remaining_after(totals[name], 0.2, level)[-1], name
            assert total == totals[name]


@pytest.mark.parametrize("kind", TREES)
def test_global_counts_are_exact_and_follow_the_threshold(kind):
    params = TREES[kind]()
    mask = lottery.ones_mask(params)
    total = lottery.counts(mask).total
    for level in range(1, 7):
        weights = random_like(params, 100 + level)
        alive = named(mask)
        new = lottery.prune(weights, mask, 0.2, scope="global", seed=level)
        assert lottery.remaining(new) == remaining_after(total, 0.2, level)[-1]
        # The global rule per layer: the alive weights at or below the k-th smallest
        # alive magnitude over all layers go (Gaussian weights: no ties).
        w = named(weights)
        scores = np.concatenate([np.abs(w[n][alive[n]]) for n in alive])
        k = num_to_prune(0.2, scores.size)
        threshold = np.partition(scores, k - 1)[k - 1]
        for name, kept in named(new).items():
            expected = alive[name] & (np.abs(w[name]) > threshold)
            np.testing.assert_array_equal(kept, expected, err_msg=name)
        mask = new
    assert lottery.density(mask) == pytest.approx(0.8 ** 6, abs=1e-4)


def test_pruned_weights_stay_pruned_and_lowest_go():
    params = random_like(linen_params(), 5)
    mask = lottery.prune(params, lottery.ones_mask(params), 0.3)
    # Give the pruned weights huge values: they must still stay pruned.
    big = jax.tree_util.tree_map(lambda p, m: p if m is None else np.where(m, p, 1e6),
                                 params, mask, is_leaf=lambda x: x is None)
    new = lottery.prune(big, mask, 0.3, seed=1)
    for name, m in named(new).items():
        old = named(mask)[name]
        assert not np.any(m & ~old), name
        w = np.abs(named(params)[name])
        assert w[old & ~m].max() <= w[m].min(), name  # magnitude: the lowest alive went


# ---- pruning: the driver's masks ---------------------------------------------------------
DRIVER_RATES = {"conv": 0.15, "dense": 0.2, "output": 0.1}


@pytest.mark.parametrize("criterion", ["large_final", "movement", "large_init_large_final",
                                       "magnitude_increase", "random",
                                       "large_final_same_sign"])
@pytest.mark.parametrize("scope", lottery.SCOPES)
def test_masks_equal_the_drivers(criterion, scope):
    params = linen_params()
    init = random_like(params, 7)
    ours = theirs = lottery.ones_mask(params)
    for level in range(1, 4):
        weights = random_like(params, 10 * level)
        if scope == "global":
            ours = lottery.prune(weights, ours, 0.2, scope="global", criterion=criterion,
                                 init=init, seed=level)
            theirs = prune_global(weights, theirs, 0.2, level, criterion, init)
        else:
            ours = lottery.prune(weights, ours, 0.2, criterion=criterion, init=init,
                                 rates={"conv_*": 0.15, "output": 0.1}, seed=level)
            theirs = prune_layerwise(weights, theirs, DRIVER_RATES, level, criterion, init)
        a, b = named(ours), named(theirs)
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{level} {name}")


def test_nnx_state_and_its_pure_dict_prune_alike():
    state = random_like(nnx_params(), 3)
    pure = nnx.as_pure(state).to_pure_dict()
    for scope in lottery.SCOPES:
        a = lottery.prune(state, lottery.ones_mask(state), 0.3, scope=scope, seed=4)
        b = lottery.prune(pure, lottery.ones_mask(pure), 0.3, scope=scope, seed=4)
        assert isinstance(a, nnx.State)
        for name, m in named(b).items():
            np.testing.assert_array_equal(named(a)[name], m, err_msg=name)


def test_every_criterion_runs_and_init_criteria_need_init():
    params = random_like(linen_params(), 0)
    mask = lottery.ones_mask(params)
    for name in criteria.CRITERIA.names():
        if name in criteria.NEEDS_INIT:
            with pytest.raises(ValueError, match=f"criterion '{name}'.*init="):
                lottery.prune(params, mask, 0.2, criterion=name)
        new = lottery.prune(params, mask, 0.2, criterion=name, init=random_like(params, 1))
        assert lottery.remaining(new) == lottery.remaining(
            lottery.prune(params, mask, 0.2))
    with pytest.raises(ValueError, match="unknown criterion 'biggest'.*large_final"):
        lottery.prune(params, mask, 0.2, criterion="biggest")
    with pytest.raises(ValueError, match="unknown scope"):
        lottery.prune(params, mask, 0.2, scope="per_layer")
    for bad in (1.0, -0.1, "0.2"):
        with pytest.raises(ValueError, match="rate"):
            lottery.prune(params, mask, bad)


def test_rates_patterns():
    params = random_like(linen_params(), 2)
    mask = lottery.ones_mask(params)
    total = {n: m.size for n, m in named(mask).items()}
    # Module path or leaf path, globs across '/', first match in order wins.
    new = lottery.prune(params, mask, 0.2, rates={"output": 0.1, "conv_*/kernel": 0.5,
                                                  "conv_1": 0.0, "*": 0.3})
    kept = lottery.counts(new).layers
    assert kept["output/kernel"][0] == total["output/kernel"] - num_to_prune(
        0.1, total["output/kernel"])
    for name in ("conv_0/kernel", "conv_1/kernel"):  # conv_*/kernel came first
        assert kept[name][0] == total[name] - num_to_prune(0.5, total[name])
    assert kept["dense_0/kernel"][0] == total["dense_0/kernel"] - num_to_prune(
        0.3, total["dense_0/kernel"])
    with pytest.raises(ValueError, match="pattern 'Dense_\\*' matches no prunable layer"):
        lottery.prune(params, mask, 0.2, rates={"Dense_*": 0.1})
    with pytest.raises(ValueError, match="scope='layerwise' only"):
        lottery.prune(params, mask, 0.2, scope="global", rates={"output": 0.1})
    with pytest.raises(ValueError, match=r"rates\['output'\]"):
        lottery.prune(params, mask, 0.2, rates={"output": 1.5})


# ---- the masked optimizer, trained on MNIST ----------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    splits = load_splits("mnist", "embedded", "", validation_size=0, train_size=3000)
    return (splits.train.images.astype(np.float32) / 255.0, splits.train.labels)


def _batches(mnist, seed: int = 3):
    images, labels = mnist
    order = np.random.default_rng(seed)
    for _ in range(STEPS):
        idx = order.integers(0, len(labels), BATCH)
        yield images[idx], labels[idx]


def _train_linen(mnist, tx_name: str):
    params0 = _initialized("linen")
    mask = lottery.prune(params0, lottery.ones_mask(params0), 0.5, seed=1)
    params = lottery.apply_mask(params0, mask)
    tx = lottery.masked(OPTIMIZERS[tx_name](), mask)
    opt_state = tx.init(params)
    model = LinenNet()

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    losses = []
    for x, y in _batches(mnist):
        params, opt_state, value = step(params, opt_state, x, y)
        losses.append(float(value))
    return params0, mask, params, losses


def _train_nnx(mnist, tx_name: str):
    graphdef, state = _initialized("nnx")
    model = nnx.merge(graphdef, state)
    params0 = _host(nnx.state(model, nnx.Param))  # a copy: the model's own ones change
    mask = lottery.prune(params0, lottery.ones_mask(params0), 0.5, seed=1)
    nnx.update(model, lottery.apply_mask(params0, mask))
    optimizer = nnx.Optimizer(model, lottery.masked(OPTIMIZERS[tx_name](), mask),
                              wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    losses = [float(step(model, optimizer, x, y)) for x, y in _batches(mnist)]
    return params0, mask, nnx.state(model, nnx.Param), losses


@pytest.fixture(scope="module", params=[(k, o) for k in TREES for o in OPTIMIZERS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def trained(request, mnist):
    kind, tx_name = request.param
    fn = _train_linen if kind == "linen" else _train_nnx
    return (kind, tx_name) + fn(mnist, tx_name)


def test_masked_training_keeps_pruned_weights_exactly_zero(trained):
    kind, tx_name, params0, mask, params, losses = trained
    final, start, keep = named(params), named(params0), named(mask)
    assert sorted(keep) == sorted(LINEN_KERNELS if kind == "linen" else NNX_KERNELS)
    for name, m in keep.items():
        assert np.count_nonzero(m) == m.size - num_to_prune(0.5, m.size), name
        assert np.all(final[name][~m].view(np.uint32) == 0), f"{kind} {tx_name} {name}"
        moved = np.mean(final[name][m] != start[name][m])
        assert moved > 0.9, f"{kind} {tx_name}: only {moved:.1%} of {name} moved"
    others = [n for n in final if n not in keep]
    assert others  # biases (and the NNX LayerNorm's scale and bias)
    for name in others:
        assert np.mean(final[name] != start[name]) > 0.5, f"{kind} {tx_name} {name}"
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20]), losses[::20]


def test_masked_zeroes_an_unmasked_start_and_negative_zeros():
    """Given the params, one update leaves pruned weights at +0.0 even when they were
    not zero (or were -0.0) before: the update of a pruned weight is its negation."""
    params = random_like(linen_params(), 4)
    mask = lottery.prune(params, lottery.ones_mask(params), 0.5)
    params["conv_0"]["kernel"][~mask["conv_0"]["kernel"]] = -0.0
    tx = lottery.masked(optax.adamw(1e-2, weight_decay=0.1), mask)
    grads = random_like(params, 5)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = named(optax.apply_updates(params, updates))
    for name, m in named(mask).items():
        assert np.all(new[name][~m].view(np.uint32) == 0), name
        assert np.all(new[name][m] != named(params)[name][m]), name
    # Without params, the updates of pruned weights are +0.0.
    sgd = lottery.masked(optax.sgd(0.1), mask)
    updates, _ = sgd.update(grads, sgd.init(params))
    for name, m in named(mask).items():
        assert np.all(named(updates)[name][~m].view(np.uint32) == 0), name


# ---- imp -------------------------------------------------------------------------------
def _fake_train(calls, snapshot_too: bool):
    """A 'training' that perturbs the weights (pruned ones stay zero) and records calls."""
    def train(params, mask):
        calls.append((params, mask))
        level = len(calls)
        noisy = jax.tree_util.tree_map(
            lambda p, n: p + 0.1 * n, params, random_like(params, 1000 + level))
        out = lottery.apply_mask(noisy, mask)
        return (out, random_like(params, 7)) if snapshot_too else out
    return train


@pytest.mark.parametrize("scope", lottery.SCOPES)
@pytest.mark.parametrize("kind", TREES)
def test_imp_reaches_the_closed_form_densities(kind, scope):
    init = random_like(TREES[kind](), 0)
    calls = []
    # The output layer at half the rate, as P2 prunes it (layer-wise only).
    rates = None if scope == "global" else {"linen": {"output": 0.1},
                                            "nnx": {"layers/1": 0.1}}[kind]
    result = lottery.imp(init, _fake_train(calls, False), levels=4, rate=0.2, scope=scope,
                         rates=rates)
    assert [r.level for r in result] == [0, 1, 2, 3, 4] and len(calls) == 5
    totals = {n: m.size for n, m in named(lottery.ones_mask(init)).items()}
    for r in result:
        layers = lottery.counts(r.mask).layers
        if scope == "global":
            assert lottery.remaining(r.mask) == remaining_after(
                sum(totals.values()), 0.2, r.level)[-1]
        else:
            for name, (kept, _) in layers.items():
                rate = 0.1 if name.startswith(("output", "layers/1")) else 0.2
                assert kept == remaining_after(totals[name], rate, r.level)[-1], name
        assert r.density == lottery.density(r.mask)
        # Each level trained from init_params under its mask (rewind=None).
        start = named(r.start)
        for name, value in named(lottery.apply_mask(init, r.mask)).items():
            np.testing.assert_array_equal(start[name], value)
        assert calls[r.level][1] is r.mask
    assert result[4].density == pytest.approx(0.8 ** 4, abs=0.02)


def test_imp_rewinds_to_the_dense_runs_snapshot():
    init = random_like(linen_params(), 0)
    calls = []
    result = lottery.imp(init, _fake_train(calls, True), levels=2, rate=0.2,
                         rewind="snapshot", criterion="magnitude_increase", seed=3)
    snapshot = random_like(init, 7)
    for r in result[1:]:
        for name, value in named(lottery.rewind(snapshot, r.mask)).items():
            np.testing.assert_array_equal(named(r.start)[name], value)
    # Level 2's mask: level 1's trained weights pruned, scored against the snapshot.
    expected = lottery.prune(result[1].params, result[1].mask, 0.2,
                             criterion="magnitude_increase", init=snapshot, seed=5)
    for name, m in named(expected).items():
        np.testing.assert_array_equal(named(result[2].mask)[name], m)
    with pytest.raises(ValueError, match="train must return the pair"):
        lottery.imp(init, _fake_train([], False), levels=1, rate=0.2, rewind="snapshot")
    with pytest.raises(ValueError, match="returns the trained params alone"):
        lottery.imp(init, _fake_train([], True), levels=1, rate=0.2)
    with pytest.raises(ValueError, match="unknown rewind"):
        lottery.imp(init, _fake_train([], False), levels=1, rate=0.2, rewind=100)


# ---- storage ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", TREES)
def test_save_and_load_round_trip_bitwise(kind, tmp_path):
    params = random_like(TREES[kind](), 0)
    mask = lottery.prune(params, lottery.ones_mask(params), 0.37, scope="global")
    lottery.save_mask(tmp_path / "mask", mask)
    back = lottery.load_mask(tmp_path / "mask", like=params)
    assert jax.tree_util.tree_structure(back, is_leaf=lambda x: x is None) == \
        jax.tree_util.tree_structure(mask, is_leaf=lambda x: x is None)
    for name, m in named(mask).items():
        got = named(back)[name]
        assert got.dtype == np.bool_ and got.tobytes() == m.tobytes(), name
    # Replaced atomically by a later save.
    smaller = lottery.prune(params, mask, 0.5)
    lottery.save_mask(tmp_path / "mask", smaller)
    assert lottery.remaining(lottery.load_mask(tmp_path / "mask", params)) == \
        lottery.remaining(smaller)
    # A mask for other params, or none at all.
    other = TREES["nnx" if kind == "linen" else "linen"]()
    with pytest.raises(ValueError, match="load_mask: the stored mask does not fit `like` at"):
        lottery.load_mask(tmp_path / "mask", like=other)
    with pytest.raises(FileNotFoundError, match="no finished mask"):
        lottery.load_mask(tmp_path / "nothing", like=params)


# ---- one clear error for a mask that does not fit ----------------------------------------
def test_mismatched_masks_name_the_first_differing_path():
    params = random_like(linen_params(), 0)
    mask = lottery.ones_mask(params)
    other = lottery.ones_mask(random_like(nnx_params(), 0))
    shrunk = jax.tree_util.tree_map(lambda m: m, mask, is_leaf=lambda x: x is None)
    shrunk["dense_0"]["kernel"] = np.ones((3, 3), bool)
    floats = jax.tree_util.tree_map(lambda m: m, mask, is_leaf=lambda x: x is None)
    floats["output"]["kernel"] = np.ones(params["output"]["kernel"].shape, np.float32)
    calls = {
        "apply_mask": lambda m: lottery.apply_mask(params, m),
        "rewind": lambda m: lottery.rewind(params, m),
        "prune": lambda m: lottery.prune(params, m, 0.2),
        "masked(...).init": lambda m: lottery.masked(optax.sgd(0.1), m).init(params),
    }
    for where, call in calls.items():
        with pytest.raises(ValueError, match=rf"{re.escape(where)}: the mask does not fit "
                                             r"the (params|snapshot) at 'conv_0/bias'"):
            call(other)
        with pytest.raises(ValueError, match=rf"at 'dense_0/kernel': shape \(3, 3\) in the "
                                             r"mask, \(392, 32\)"):
            call(shrunk)
        with pytest.raises(ValueError, match="at 'output/kernel' has dtype float32"):
            call(floats)
    good = lottery.masked(optax.sgd(0.1), mask)
    state = good.init(params)
    with pytest.raises(ValueError, match=r"masked\(\.\.\.\)\.update: the mask does not fit "
                                         "the updates at 'conv1/bias'"):
        good.update(random_like(nnx_params(), 1), state)
    with pytest.raises(ValueError, match="`init` does not fit the params at"):
        lottery.prune(params, mask, 0.2, criterion="movement", init=nnx_params())


def test_a_mask_fits_by_names_across_container_types():
    """A dict mask fits FrozenDict params and an NNX mask the pure state nnx.Optimizer
    hands to `update`; results keep the params' own structure."""
    from flax.core import freeze

    params = random_like(linen_params(), 0)
    mask = lottery.prune(params, lottery.ones_mask(params), 0.5)
    frozen = lottery.apply_mask(freeze(params), mask)
    assert type(frozen).__name__ == "FrozenDict"
    state = random_like(nnx_params(), 0)
    nnx_mask = lottery.ones_mask(state)
    pure = lottery.apply_mask(nnx.as_pure(state), nnx_mask)
    assert named(pure).keys() == named(state).keys()


def test_the_module_imports_without_flax_or_orbax():
    code = ("import sys, jaxtickets.lottery; print(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('flax', 'orbax', 'tensorflow_datasets', 'grain', "
            "'tensorflow')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout
