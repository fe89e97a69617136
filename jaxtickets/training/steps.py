"""The jitted steps: a chunk of masked training steps under `lax.scan`, and evaluation.

Data live on the device and each step gathers its batch by index, so a call runs a
whole chunk of steps without returning to Python (runtime.steps_per_call; 1 means one
step per call, the fast choice for convolutional models on CPU, see train_chunk). The number of steps actually
taken is a traced argument: short chunks (before an evaluation, the rewind point or
the end) reuse the same compiled program. Compilations are counted so tests and the
driver can check that a whole multi-level run compiles the train step once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxtickets.parallel import batch_sharded, replicated
from jaxtickets.sparsity.masks import apply_mask
from jaxtickets.training.state import TrainState

PyTree = Any


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How raw uint8 images become network input, and the on-device augmentation."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad_crop: int = 0
    flip: bool = False


def normalize(images: jnp.ndarray, spec: InputSpec) -> jnp.ndarray:
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(spec.mean)) / jnp.asarray(spec.std)


def augment(images: jnp.ndarray, rng: jax.Array, spec: InputSpec) -> jnp.ndarray:
    """Random pad-and-crop and horizontal flip, one draw per image (uint8 in, uint8 out)."""
    n, h, w, c = images.shape
    crop_rng, flip_rng = jax.random.split(rng)
    if spec.pad_crop:
        p = spec.pad_crop
        padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        offsets = jax.random.randint(crop_rng, (n, 2), 0, 2 * p + 1)
        images = jax.vmap(lambda img, o: jax.lax.dynamic_slice(
            img, (o[0], o[1], 0), (h, w, c)))(padded, offsets)
    if spec.flip:
        flips = jax.random.bernoulli(flip_rng, 0.5, (n, 1, 1, 1))
        images = jnp.where(flips, images[:, :, ::-1, :], images)
    return images


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


@dataclasses.dataclass
class CompiledSteps:
    """The train-chunk and eval functions for one (model, optimizer, data shape)."""

    train_chunk: Callable[..., tuple[TrainState, dict]]
    eval_batch: Callable[..., dict]
    mesh: Mesh
    steps_per_call: int
    traces: dict[str, int]
    learning_rate: Optional[Callable[[int], Any]] = None  # for diagnostics only


def make_steps(model: nn.Module, tx: optax.GradientTransformationExtraArgs,
               input_spec: InputSpec, mesh: Mesh, steps_per_call: int,
               loss_fn: Callable = cross_entropy,
               learning_rate: Optional[Callable[[int], Any]] = None) -> CompiledSteps:
    traces = {"train": 0, "eval": 0}

    def forward(params, batch_stats, mask, x, train, rng):
        variables = {"params": apply_mask(params, mask)}
        if batch_stats:
            variables["batch_stats"] = batch_stats
            logits, updates = model.apply(variables, x, train=train, rngs={"dropout": rng},
                                          mutable=["batch_stats"] if train else [])
            return logits, updates.get("batch_stats", batch_stats)
        return model.apply(variables, x, train=train, rngs={"dropout": rng}), batch_stats

    def one_step(state: TrainState, images, labels, batch_idx):
        rng = jax.random.fold_in(state.rng, state.step)
        aug_rng, dropout_rng = jax.random.split(rng)
        raw = jax.lax.with_sharding_constraint(images[batch_idx], batch_sharded(mesh))
        x = normalize(augment(raw, aug_rng, input_spec), input_spec)
        y = labels[batch_idx]

        def loss_of(params):
            logits, new_stats = forward(params, state.batch_stats, state.mask, x, True,
                                        dropout_rng)
            return loss_fn(logits, y).mean(), (logits, new_stats)

        (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_of, has_aux=True)(
            state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, mask=state.mask)
        params = apply_mask(optax.apply_updates(state.params, updates), state.mask)
        metrics = {"loss": loss, "correct": jnp.sum(jnp.argmax(logits, -1) == y)}
        return state.replace(step=state.step + 1, params=params, batch_stats=new_stats,
                             opt_state=opt_state), metrics

    def train_chunk(state: TrainState, images, labels, chunk_idx, num_active):
        traces["train"] += 1
        if chunk_idx.shape[0] == 1:  # no loop: XLA:CPU runs convolutions inside a
            del num_active           # while loop (scan) about 13x slower than outside.
            state, metrics = one_step(state, images, labels, chunk_idx[0])
            return state, {"losses": metrics["loss"][None], "correct": metrics["correct"]}

        def body(state, xs):
            i, batch_idx = xs
            zero = {"loss": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.int32)}
            return jax.lax.cond(i < num_active,
                                lambda s: one_step(s, images, labels, batch_idx),
                                lambda s: (s, zero), state)

        steps = jnp.arange(chunk_idx.shape[0])
        state, metrics = jax.lax.scan(body, state, (steps, chunk_idx))
        # Per-step losses go back to the host, which sums them in one fixed order whatever
        # the chunk length (runtime.steps_per_call must never change a logged number).
        return state, {"losses": metrics["loss"], "correct": metrics["correct"].sum()}

    def eval_batch(params, batch_stats, mask, images, labels, idx, weights):
        traces["eval"] += 1
        raw = jax.lax.with_sharding_constraint(images[idx], batch_sharded(mesh))
        logits, _ = forward(params, batch_stats, mask, normalize(raw, input_spec), False,
                            jax.random.PRNGKey(0))
        y = labels[idx]
        losses = loss_fn(logits, y)
        return {"loss_sum": jnp.sum(losses * weights),
                "correct": jnp.sum((jnp.argmax(logits, -1) == y) * weights),
                "count": jnp.sum(weights)}

    rep = replicated(mesh)
    return CompiledSteps(
        train_chunk=jax.jit(train_chunk, donate_argnums=(0,), out_shardings=(rep, rep)),
        eval_batch=jax.jit(eval_batch, out_shardings=rep),
        mesh=mesh, steps_per_call=steps_per_call, traces=traces,
        learning_rate=learning_rate)
