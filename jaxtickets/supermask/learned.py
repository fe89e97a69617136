"""P4's learned supermask (Sec. 5.1, S3): train only a mask on the frozen init.

Each prunable kernel gets real-valued logits m of its shape. The forward pass uses
w_init * Bern(sigmoid(m)); the backward pass treats the sample as sigmoid(m), the
straight-through estimator (P4 leaves it unspecified: docs/choices.md#supermask-gradient).
Weights, biases and unprunable layers never change, so a result is a binary mask
plus the seed of the init. The logits' common initial value sets the pruning level;
evaluation samples the mask too, averaging over `eval_samples` draws.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jaxtickets.parallel import batch_sharded, make_mesh, replicated
from jaxtickets.training.batches import BatchOrder, DeviceSplit, device_indices, eval_chunks
from jaxtickets.training.loop import early_stop, summarize
from jaxtickets.training.steps import apply_model, cast_for_compute

if TYPE_CHECKING:
    from jaxtickets.experiment.setup import Setup

PyTree = Any
TRAIN_STREAM, EVAL_STREAM = 0, 1  # independent key streams for training and evaluation


@dataclasses.dataclass(frozen=True)
class SupermaskRecipe:
    """P4: SGD momentum 0.9; LR 100/100/50/20 for 2000/2000/1000/800 steps (FC/Conv2/4/6)."""

    logit_init: float
    steps: int
    learning_rate: float
    momentum: float = 0.9
    batch_size: int = 128
    eval_every: int = 100
    eval_samples: int = 10


def _is_none(x: Any) -> bool:
    return x is None


def init_logits(mask: PyTree, value: float) -> PyTree:
    """One float32 logit per prunable entry, all `value`; None where `mask` is None."""
    return jax.tree_util.tree_map(
        lambda m: None if m is None else jnp.full(np.shape(m), value, jnp.float32),
        mask, is_leaf=_is_none)


def _gate(logits: jnp.ndarray, keep: jnp.ndarray, uniform: jnp.ndarray) -> jnp.ndarray:
    prob = jax.nn.sigmoid(logits)
    sample = (uniform.reshape(logits.shape) < prob).astype(logits.dtype)  # Bern(prob)
    # sample + (p - sg(p)) is exactly the 0/1 sample forward (x - x == 0), with the
    # gradient of p backward; sigmoid + sg(sample - sigmoid) could round away from 1.
    return jnp.where(keep, sample + (prob - jax.lax.stop_gradient(prob)), 0.0)


def learned_mask_sample(logits: PyTree, mask: PyTree, key: jax.Array) -> PyTree:
    """A 0/1 float gate per prunable leaf, Bern(sigmoid(m)) with the straight-through
    gradient of sigmoid(m); 0 (no gradient) where `mask` is False; None elsewhere."""
    flat_mask, treedef = jax.tree_util.tree_flatten(mask, is_leaf=_is_none)
    flat_logits = treedef.flatten_up_to(logits)
    sizes = [0 if m is None else int(np.size(m)) for m in flat_mask]
    # One draw for all layers: a random op per layer multiplies the compile time.
    uniform = jax.random.uniform(key, (sum(sizes),))
    offsets = np.cumsum([0] + sizes)
    gates = [None if m is None else _gate(l, m, uniform[o:o + n])
             for l, m, o, n in zip(flat_logits, flat_mask, offsets, sizes)]
    return treedef.unflatten(gates)


def gated_params(params: PyTree, gates: PyTree) -> PyTree:
    """w_init * gate on prunable kernels (exactly w_init or +-0); others unchanged."""
    return jax.tree_util.tree_map(
        lambda w, g: w if g is None else w * g.astype(w.dtype), params, gates)


def _kept_and_expected(logits: PyTree, mask: PyTree, gates: PyTree):
    """(number of kept entries, sum of keep probabilities) over the prunable set."""
    probs = jax.tree_util.tree_map(lambda l, m: jnp.where(m, jax.nn.sigmoid(l), 0.0),
                                   logits, mask)
    return (sum(jnp.sum(g != 0, dtype=jnp.int32) for g in jax.tree_util.tree_leaves(gates)),
            sum(jnp.sum(p) for p in jax.tree_util.tree_leaves(probs)))


class _Functions(NamedTuple):
    train_chunk: Callable[..., tuple]
    draw: Callable[..., tuple]
    eval_batch: Callable[..., dict]


@functools.lru_cache(maxsize=8)
def _functions(model, task, spec, mesh: Mesh) -> _Functions:
    """Compiled once per (model, task, input, mesh): the optimizer's hyperparameters
    are traced arguments, so every logit init and recipe reuses the same programs."""

    def one_step(carry, frozen, images, labels, batch_idx, key, hyper):
        logits, opt_state, stats, step = carry
        params, mask = frozen
        mask_key, aug_key, drop_key = jax.random.split(jax.random.fold_in(key, step), 3)
        raw = jax.lax.with_sharding_constraint(images[batch_idx], batch_sharded(mesh))
        x, targets = task.train_inputs(raw, labels[batch_idx], aug_key, spec)

        def loss_of(logits):
            gates = learned_mask_sample(logits, mask, mask_key)
            weights, x_in = cast_for_compute(gated_params(params, gates), x,
                                             spec.compute_dtype)
            out, new_stats = apply_model(model, weights, stats, x_in, True, drop_key)
            loss, correct, count = task.train_loss(out.astype(jnp.float32), targets)
            return loss, (correct, count, new_stats)

        (loss, (correct, count, stats)), grads = jax.value_and_grad(
            loss_of, has_aux=True)(logits)
        tx = optax.sgd(hyper[0], momentum=hyper[1])
        updates, opt_state = tx.update(grads, opt_state, logits)
        logits = optax.apply_updates(logits, updates)
        return (logits, opt_state, stats, step + 1), (
            loss, correct.astype(jnp.int32), count.astype(jnp.int32))

    def train_chunk(carry, frozen, images, labels, chunk_idx, num_active, key, hyper):
        if chunk_idx.shape[0] == 1:  # no scan: XLA:CPU runs convolutions slowly in loops
            carry, (loss, correct, count) = one_step(carry, frozen, images, labels,
                                                     chunk_idx[0], key, hyper)
            return carry, (loss[None], correct, count)

        def body(carry, xs):
            i, batch_idx = xs
            zero = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
                    jnp.zeros((), jnp.int32))
            return jax.lax.cond(i < num_active,
                                lambda c: one_step(c, frozen, images, labels, batch_idx, key,
                                                  hyper),
                                lambda c: (c, zero), carry)

        carry, (losses, correct, count) = jax.lax.scan(
            body, carry, (jnp.arange(chunk_idx.shape[0]), chunk_idx))
        return carry, (losses, correct.sum(), count.sum())

    def draw(logits, mask, params, key):
        gates = learned_mask_sample(logits, mask, key)
        return (gated_params(params, gates),) + _kept_and_expected(logits, mask, gates)

    def eval_batch(params, stats, images, labels, idx, weights):
        raw = jax.lax.with_sharding_constraint(images[idx], batch_sharded(mesh))
        x, targets = task.eval_inputs(raw, labels[idx], spec)
        computed, x = cast_for_compute(params, x, spec.compute_dtype)
        out, _ = apply_model(model, computed, stats, x, False, jax.random.PRNGKey(0))
        losses, right = task.eval_metrics(out.astype(jnp.float32), targets)
        return {"loss_sum": jnp.sum(losses * weights), "correct": jnp.sum(right * weights)}

    rep = replicated(mesh)
    return _Functions(jax.jit(train_chunk, out_shardings=rep),
                      jax.jit(draw, out_shardings=rep), jax.jit(eval_batch, out_shardings=rep))


def _split_metrics(fns: _Functions, params, stats, split: DeviceSplit, batch: int,
                   mesh: Mesh) -> tuple[float, float]:
    """(mean loss, accuracy) over every example of `split` exactly once."""
    loss_sum = correct = 0.0
    for idx, weights in eval_chunks(split.size, batch):
        out = fns.eval_batch(params, stats, split.images, split.labels,
                             device_indices(idx, mesh, 0), device_indices(weights, mesh, 0))
        loss_sum += float(out["loss_sum"])
        correct += float(out["correct"])
    return loss_sum / split.size, correct / split.size


def _evaluate(fns, logits, frozen, stats, data, batch, mesh, key, samples, total) -> dict:
    """Validation/test metrics and density, each averaged over `samples` mask draws.
    Without a validation split (data.validation_size = 0) the validation metrics are
    None, and early stopping takes the last evaluation (training/loop.early_stop)."""
    params, mask = frozen
    splits = [name for name in ("validation", "test") if data[name].size]
    sums = dict.fromkeys(("validation_loss", "validation_accuracy", "test_loss",
                          "test_accuracy", "density"), 0.0)
    for s in range(samples):
        effective, kept, expected = fns.draw(logits, mask, params, jax.random.fold_in(key, s))
        for name in splits:
            loss, acc = _split_metrics(fns, effective, stats, data[name], batch, mesh)
            sums[f"{name}_loss"] += loss
            sums[f"{name}_accuracy"] += acc
        sums["density"] += int(kept) / total
    record = {k: v / samples for k, v in sums.items()}
    if "validation" not in splits:
        record["validation_loss"] = record["validation_accuracy"] = None
    record["expected_density"] = float(expected) / total
    return record


def _mesh_and_data(setup: Setup, batch_size: int) -> tuple[Mesh, dict, int]:
    """setup's mesh and data when the mesh divides the batch; else a mesh that does,
    with the splits copied onto it."""
    data = {"train": setup.train, "validation": setup.validation, "test": setup.test}
    if batch_size % setup.mesh.size == 0:
        return setup.mesh, data, setup.eval_batch
    mesh = make_mesh(batch_size)
    rep = replicated(mesh)
    moved = {k: DeviceSplit(jax.device_put(s.images, rep), jax.device_put(s.labels, rep),
                            s.size) for k, s in data.items()}
    return mesh, moved, -(-setup.eval_batch // mesh.size) * mesh.size


def train_supermask(setup: Setup, variables: dict, mask: PyTree, recipe: SupermaskRecipe,
                    seed: int) -> tuple[dict, list[dict]]:
    """Learns a supermask on the frozen `variables` over the prunable set `mask` (False
    entries stay pruned). Returns (summary, history); the inputs are never modified."""
    started = time.time()
    if recipe.batch_size > setup.train.size:
        raise ValueError(f"supermask.batch_size: {recipe.batch_size} exceeds the "
                         f"{setup.train.size} training images")
    mesh, data, eval_batch = _mesh_and_data(setup, recipe.batch_size)
    rep = replicated(mesh)
    fns = _functions(setup.model, setup.task, setup.input_spec, mesh)
    hyper = jnp.asarray([recipe.learning_rate, recipe.momentum], jnp.float32)
    frozen = (jax.device_put(variables["params"], rep), jax.device_put(mask, rep))
    logits = init_logits(mask, recipe.logit_init)
    opt_state = optax.sgd(recipe.learning_rate, momentum=recipe.momentum).init(logits)
    carry = jax.device_put((logits, opt_state, variables.get("batch_stats") or {},
                            jnp.zeros((), jnp.int32)), rep)
    total = sum(int(np.size(m)) for m in jax.tree_util.tree_leaves(mask))
    base = jax.random.PRNGKey(seed)
    train_key, eval_key = (jax.random.fold_in(base, s) for s in (TRAIN_STREAM, EVAL_STREAM))
    order = BatchOrder(data["train"].size, recipe.batch_size, seed)
    conv = any(np.ndim(m) > 2 for m in jax.tree_util.tree_leaves(mask))
    chunk = 1 if conv and jax.default_backend() == "cpu" else max(
        1, min(recipe.eval_every, recipe.steps))
    history, step = [], 0
    for stop in sorted(set(range(recipe.eval_every, recipe.steps, recipe.eval_every))
                       | {recipe.steps}):
        losses, correct, count = [], 0, 0
        while step < stop:
            n = min(chunk, stop - step)
            idx = device_indices(order.indices(step, n, chunk), mesh, 1)
            carry, (chunk_losses, c, k) = fns.train_chunk(
                carry, frozen, data["train"].images, data["train"].labels, idx,
                jnp.asarray(n, jnp.int32), train_key, hyper)
            losses.extend(float(v) for v in np.asarray(chunk_losses)[:n])
            correct, count, step = correct + int(c), count + int(k), step + n
        train_loss = sum(losses) / len(losses) if losses else None
        if train_loss is not None and not math.isfinite(train_loss):
            raise FloatingPointError(f"learned supermask diverged before step {step}; "
                                     "lower supermask.learning_rate")
        record = _evaluate(fns, carry[0], frozen, carry[2], data, eval_batch, mesh,
                           jax.random.fold_in(eval_key, step), recipe.eval_samples, total)
        history.append({"step": step, "train_loss": train_loss,
                        "train_accuracy": correct / count if count else None, **record})
    return _summary(history, recipe, time.time() - started), history


def _summary(history: list[dict], recipe: SupermaskRecipe, wall: float) -> dict:
    """The run summary of the training loop plus the learned masks' densities."""
    best, last = early_stop(history), history[-1]
    return {
        **summarize(history, wall),
        "start_step": 0,
        "train_steps": recipe.steps,
        "density": last["density"],
        "early_stop_density": best["density"],
        "expected_density": last["expected_density"],
        "logit_init": float(recipe.logit_init),
    }
