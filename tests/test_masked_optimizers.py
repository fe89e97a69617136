"""Masked training through the real jitted path: pruned weights stay exactly zero.

LeNet-300-100 trains on real MNIST digits (the embedded subset) with every optimizer,
with weight decay and momentum where they apply, under a random 50% mask.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jaxtickets import parallel
from jaxtickets.data.datasets import NORMALIZATION, load_splits
from jaxtickets.models import create_model
from jaxtickets.sparsity import masks
from jaxtickets.training import batches, state as state_lib, steps as steps_lib
from jaxtickets.training.optimizers import OPTIMIZERS, build_optimizer
from jaxtickets.training.schedules import build_schedule

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

BATCH = 60
STEPS = 200
STEPS_PER_CALL = 50
WEIGHT_DECAY = 5e-4
LEARNING_RATES = {"sgd": 0.1, "momentum": 0.02, "adam": 1e-3, "adamw": 1e-3}


# ---- helpers ----------------------------------------------------------------------------
def _random_half_mask(params, seed: int):
    """Exactly half of each kernel kept, chosen by a seeded permutation; biases unpruned."""
    rng = np.random.default_rng(seed)

    def half(m):
        if m is None:
            return None
        keep = np.zeros(m.size, bool)
        keep[rng.permutation(m.size)[: m.size // 2]] = True
        return keep.reshape(m.shape)

    full = masks.init_mask(params, masks.PrunablePolicy())
    return jax.tree_util.tree_map(half, full, is_leaf=lambda x: x is None)


def _host(tree):
    return jax.tree_util.tree_map(lambda x: np.array(x, copy=True), tree)


def _evaluate(compiled, state, split) -> float:
    """Mean loss over a whole split through the jitted eval step."""
    total = 0.0
    for idx, weights in batches.eval_chunks(split.size, 500):
        out = compiled.eval_batch(state.params, state.batch_stats, state.mask, split.images,
                                  split.labels, batches.device_indices(idx, compiled.mesh, 0),
                                  batches.device_indices(weights, compiled.mesh, 0))
        total += float(out["loss_sum"])
    return total / split.size


def _train(compiled, state, train, order: batches.BatchOrder, num_steps: int):
    """Runs `num_steps` steps in chunks exactly as the training loop does."""
    step, chunk_losses = 0, []
    while step < num_steps:
        count = min(num_steps - step, compiled.steps_per_call)
        idx = order.indices(step, count, compiled.steps_per_call)
        state, out = compiled.train_chunk(state, train.images, train.labels,
                                          batches.device_indices(idx, compiled.mesh, 1),
                                          np.int32(count))
        chunk_losses.append(float(np.asarray(out["losses"])[:count].mean()))
        step += count
    return state, chunk_losses


def _leaves_with_names(tree) -> dict:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {masks.path_name(p): np.asarray(x) for p, x in flat}


def _compiled_and_state(name: str, mesh, init_params, mask, value_mask=None):
    """The compiled steps of optimizer `name` (with weight decay) and a fresh replicated
    state from the initial params under `mask` (and `value_mask`, when given)."""
    model, params0 = init_params
    tx = build_optimizer(name, build_schedule("constant", LEARNING_RATES[name], STEPS),
                         weight_decay=WEIGHT_DECAY, momentum=0.9)
    mean, std = NORMALIZATION["mnist"]
    compiled = steps_lib.make_steps(model, tx, steps_lib.InputSpec(mean, std), mesh,
                                    STEPS_PER_CALL)
    state = state_lib.fresh_state(params0, {}, mask, tx, 0, jax.random.PRNGKey(1),
                                  value_mask=value_mask)
    return compiled, jax.device_put(state, parallel.replicated(mesh))


# ---- training through the real jitted path ----------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    splits = load_splits("mnist", "embedded", "", validation_size=1000, train_size=3000)
    mesh = parallel.make_mesh(BATCH)
    return (mesh, batches.put_split(splits.train.images, splits.train.labels, mesh),
            batches.put_split(splits.validation.images, splits.validation.labels, mesh))


@pytest.fixture(scope="module")
def init_params():
    model = create_model("lenet300_100", 10)
    variables = model.init(jax.random.PRNGKey(0), np.zeros((1, 28, 28, 1), np.float32))
    return model, _host(variables["params"])


@pytest.fixture(scope="module", params=OPTIMIZERS)
def trained(request, mnist, init_params):
    """(initial params, mask, final state, val loss before/after, per-chunk train losses)."""
    name = request.param
    mesh, train, validation = mnist
    params0 = init_params[1]
    mask = _random_half_mask(params0, seed=7)
    compiled, state = _compiled_and_state(name, mesh, init_params, mask)
    before = _evaluate(compiled, state, validation)
    order = batches.BatchOrder(train.size, BATCH, seed=3)
    state, chunk_losses = _train(compiled, state, train, order, STEPS)
    after = _evaluate(compiled, state, validation)
    return {"name": name, "params0": params0, "mask": _host(mask), "state": state,
            "before": before, "after": after, "chunks": chunk_losses,
            "traces": dict(compiled.traces)}


def test_pruned_weights_are_exactly_zero(trained):
    params = _leaves_with_names(trained["state"].params)
    for name, keep in masks.to_flat_dict(trained["mask"]).items():
        pruned = params[name][~keep]
        assert pruned.size == keep.size // 2 + keep.size % 2
        # Bitwise +0.0: no -0.0, no tiny leftovers from momentum or weight decay.
        assert np.all(pruned.view(np.uint32) == 0), f"{trained['name']}: {name}"


def test_unpruned_weights_and_biases_moved(trained):
    params = _leaves_with_names(trained["state"].params)
    params0 = _leaves_with_names(trained["params0"])
    mask = masks.to_flat_dict(trained["mask"])
    for name, value in params.items():
        if name in mask:
            moved = np.mean(value[mask[name]] != params0[name][mask[name]])
            assert moved > 0.9, f"{trained['name']}: only {moved:.1%} of {name} moved"
        else:  # biases start at zero; units that never activate may keep them
            moved = np.mean(value != params0[name])
            assert moved > 0.5, f"{trained['name']}: only {moved:.1%} of {name} moved"


def test_mask_in_state_unchanged(trained):
    stored = masks.to_flat_dict(trained["state"].mask)
    original = masks.to_flat_dict(trained["mask"])
    assert stored.keys() == original.keys()
    for name in original:
        assert np.array_equal(np.asarray(stored[name]), original[name]), name
    assert masks.density(trained["state"].mask) == pytest.approx(0.5, abs=1e-5)


def test_loss_decreased(trained):
    assert trained["after"] < 0.5 * trained["before"], trained
    assert trained["chunks"][-1] < trained["chunks"][0], trained["chunks"]
    assert int(trained["state"].step) == STEPS
    assert trained["traces"]["train"] == 1  # 4 chunks, one compilation


def test_skipping_the_forward_mask_changes_no_bit(trained, mnist, init_params):
    """The step leaves the mask out of the forward pass when the params already hold it
    (no frozen values). Forcing the masked forward pass (a value mask equal to the mask)
    must give the same losses, weights and optimizer moments, bit for bit."""
    name = trained["name"]
    mesh, train, _ = mnist
    mask = trained["mask"]
    compiled, state = _compiled_and_state(name, mesh, init_params, mask, value_mask=mask)
    order = batches.BatchOrder(train.size, BATCH, seed=3)
    state, chunk_losses = _train(compiled, state, train, order, STEPS)
    assert chunk_losses == trained["chunks"]
    for ours, forced in zip(jax.tree_util.tree_leaves((trained["state"].params,
                                                       trained["state"].opt_state)),
                            jax.tree_util.tree_leaves((state.params, state.opt_state))):
        assert np.array_equal(np.atleast_1d(ours).view(np.uint8),
                              np.atleast_1d(forced).view(np.uint8)), name


# ---- coupled (Adam) vs decoupled (AdamW) weight decay, no training machinery ------------
def _reference_adam(params, grads_seq, lr, wd, coupled: bool, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch's Adam (L2 added to the gradient) or AdamW-as-in-optax (decay added to the
    Adam direction, both scaled by lr), in float64 numpy."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t, grads in enumerate(grads_seq, start=1):
        for k in p:
            g = grads[k] + wd * p[k] if coupled else grads[k].astype(np.float64)
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            direction = (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
            p[k] = p[k] - lr * (direction if coupled else direction + wd * p[k])
    return p


def _run_optax(name, params, grads_seq, lr, wd, mask):
    tx = build_optimizer(name, optax.constant_schedule(lr), weight_decay=wd)
    opt_state = tx.init(params)
    for grads in grads_seq:
        updates, opt_state = tx.update(grads, opt_state, params, mask=mask)
        params = optax.apply_updates(params, updates)
    return {k: np.asarray(v) for k, v in params.items()}


@pytest.mark.parametrize("num_steps", [1, 3])
def test_adam_weight_decay_is_coupled_l2_and_adamw_decoupled(num_steps):
    rng = np.random.default_rng(0)
    params = {"w": np.array([1.0, -2.0, 0.5, 3.0], np.float32),
              "b": np.array([0.25, -0.75], np.float32)}
    # Small gradients against a large decay, so that L2 flips the sign of some of them.
    grads_seq = [{k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32)
                  for k, v in params.items()} for _ in range(num_steps)]
    grads_seq[0]["w"][:2] = [-0.004, 0.004]
    lr, wd = 0.01, 0.01
    mask = {"w": None, "b": None}
    results = {}
    for name, coupled in (("adam", True), ("adamw", False)):
        got = _run_optax(name, params, grads_seq, lr, wd, mask)
        want = _reference_adam(params, grads_seq, lr, wd, coupled)
        for k in params:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{name} {k}")
        results[name] = got
    # The two rules differ clearly: coupled L2 turned w[0]'s step around.
    assert results["adam"]["w"][0] < params["w"][0] < results["adamw"]["w"][0]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_of_masked_entries_is_zero(name):
    params = {"w": np.array([1.0, -2.0, 0.5], np.float32), "b": np.ones(2, np.float32)}
    grads = {"w": np.array([0.3, 0.3, 0.3], np.float32), "b": np.ones(2, np.float32)}
    mask = {"w": np.array([True, False, True]), "b": None}
    tx = build_optimizer(name, optax.constant_schedule(0.1), weight_decay=0.1)
    updates, _ = tx.update(grads, tx.init(params), params, mask=mask)
    assert np.asarray(updates["w"])[1] == 0.0
    assert np.all(np.asarray(updates["w"])[[0, 2]] != 0.0)
    assert np.all(np.asarray(updates["b"]) != 0.0)
    with pytest.raises(ValueError, match="mask"):
        tx.update(grads, tx.init(params), params)
