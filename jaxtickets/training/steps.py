"""The jitted steps: a chunk of masked training steps under `lax.scan`, and evaluation.

Data live on the device and each step gathers its batch by index, so a call runs a
whole chunk of steps without returning to Python (runtime.steps_per_call; 1 means one
step per call, the fast choice for convolutional models on CPU, see train_chunk). The
number of steps actually taken is a traced argument: short chunks (before an
evaluation, the rewind point or the end) reuse the same compiled program. Streamed
datasets (data/pipeline.py) take one host-built batch per call instead (train_streamed).
Compilations are counted so tests and the driver can check that a whole multi-level
run compiles the train step once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxtickets.parallel import batch_sharded, replicated, state_shardings
from jaxtickets.sparsity.masks import apply_mask, masked_apply_updates
from jaxtickets.tasks.base import LabelsTask, Task, augment, cross_entropy, normalize  # noqa: F401
from jaxtickets.training.freezing import keep_frozen
from jaxtickets.training.state import TrainState
from jaxtickets.training.xla_cpu import compiler_options

PyTree = Any


COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How raw uint8 images become network input, the on-device augmentation, and the
    dtype the network computes in (its input and masked weights are cast to it)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad_crop: int = 0
    flip: bool = False
    compute_dtype: str = "float32"


def cast_for_compute(weights: PyTree, x: jax.Array, dtype: str) -> tuple[PyTree, jax.Array]:
    """Mixed precision at the model's boundary: the masked float32 weights and the input
    in `dtype`. The cast is after the mask, so pruned weights are exact zeros in bf16
    too, and its gradient casts back, so gradients and updates stay float32."""
    if dtype == "float32":
        return weights, x
    return (jax.tree_util.tree_map(lambda w: w.astype(dtype), weights), x.astype(dtype))


@dataclasses.dataclass
class CompiledSteps:
    """The train-chunk and eval functions for one (model, optimizer, data shape)."""

    train_chunk: Callable[..., tuple[TrainState, dict]]
    eval_batch: Callable[..., dict]
    # The same step and evaluation on batches streamed from the host (data/pipeline.py).
    train_streamed: Callable[..., tuple[TrainState, dict]]
    eval_streamed: Callable[..., dict]
    mesh: Mesh
    steps_per_call: int
    traces: dict[str, int]
    learning_rate: Optional[Callable[[int], Any]] = None  # for diagnostics only
    # Lanes (training/lanes.py): the same chunk and evaluation over states stacked on a
    # leading lane axis, each lane with its own batch indices; data shared.
    train_lanes: Optional[Callable[..., tuple[TrainState, dict]]] = None
    eval_lanes: Optional[Callable[..., dict]] = None


def apply_model(model: nn.Module, params, batch_stats, x, train: bool, rng):
    """(outputs, batch stats): BN statistics are updated in training, kept otherwise."""
    variables = {"params": params}
    if not batch_stats:
        return model.apply(variables, x, train=train, rngs={"dropout": rng}), batch_stats
    variables["batch_stats"] = batch_stats
    out, updates = model.apply(variables, x, train=train, rngs={"dropout": rng},
                               mutable=["batch_stats"] if train else [])
    return out, updates.get("batch_stats", batch_stats)


def make_steps(model: nn.Module, tx: optax.GradientTransformationExtraArgs,
               input_spec: InputSpec, mesh: Mesh, steps_per_call: int,
               task: Optional[Task] = None,
               learning_rate: Optional[Callable[[int], Any]] = None,
               fsdp: bool = False, cpu_convolutions: str = "ynnpack",
               frozen: Optional[PyTree] = None) -> CompiledSteps:
    """The compiled steps. `fsdp`: the train state stays sharded over the data axis
    (parallel.state_shardings) between steps; XLA gathers what each layer needs.
    `frozen`: a tree of bools, True for parameters that keep their values
    (training/freezing.py; `tx` then holds no state for them); None: all train.
    `cpu_convolutions`: the library of XLA:CPU's convolutions (training/xla_cpu.py)."""
    traces = {"train": 0, "eval": 0, "train_lanes": 0, "eval_lanes": 0}
    task = task or LabelsTask()
    rep = replicated(mesh)

    def laid_out(state: TrainState, metrics: dict):
        """The step's outputs in their resting layout: state sharded or replicated."""
        if not fsdp:
            return state, metrics
        state = jax.lax.with_sharding_constraint(state, state_shardings(state, mesh, True))
        return state, jax.lax.with_sharding_constraint(metrics, rep)

    def forward(params, batch_stats, mask, x, train, rng):
        """`mask` None: the params are already zero wherever pruned (the train state's
        invariant), so the forward pass uses them as they are."""
        weights = params if mask is None else apply_mask(params, mask)
        # In float32 both casts are no-ops that tracing drops: the same program as before.
        weights, x = cast_for_compute(weights, x, input_spec.compute_dtype)
        out, new_stats = apply_model(model, weights, batch_stats, x, train, rng)
        return out.astype(jnp.float32), new_stats  # losses and metrics in float32

    def one_step(state: TrainState, images, labels, batch_idx):
        raw = jax.lax.with_sharding_constraint(images[batch_idx], batch_sharded(mesh))
        return step_on(state, raw, labels[batch_idx])

    def step_on(state: TrainState, raw, batch_labels):
        """One step on a gathered (or streamed) uint8 batch and its labels."""
        rng = jax.random.fold_in(state.rng, state.step)
        aug_rng, dropout_rng = jax.random.split(rng)
        x, targets = task.train_inputs(raw, batch_labels, aug_rng, input_spec)
        # Without frozen non-zero values (P4's mask-0 actions), every pruned weight of the
        # state is exactly zero (fresh_state masks, masked_apply_updates keeps it), so
        # multiplying the mask in before the forward pass would change no value: it is
        # skipped, and the gradient is masked instead, which XLA fuses into the
        # optimizer's update. Kept weights, moments and losses come out bit for bit as
        # with the mask in the forward pass (tests/test_masked_optimizers.py), one pass
        # over the kernels cheaper (BENCHMARKS.md, target 1).
        params_hold_mask = state.value_mask is None
        forward_mask = None if params_hold_mask else state.visible_mask

        def loss_of(params):
            logits, new_stats = forward(params, state.batch_stats, forward_mask, x,
                                        True, dropout_rng)
            loss, correct, count = task.train_loss(logits, targets)
            return loss, (correct, count, new_stats)

        (loss, (correct, count, new_stats)), grads = jax.value_and_grad(
            loss_of, has_aux=True)(state.params)
        if params_hold_mask:
            grads = apply_mask(grads, state.mask)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, mask=state.mask)
        # Re-masking after the update is redundant with the masked optax update, but
        # dropping it changes how XLA fuses the update and so its float rounding, and
        # with it every documented number (BENCHMARKS.md, target 1); it stays.
        params = masked_apply_updates(state.params, updates, state.mask, state.value_mask)
        params = keep_frozen(state.params, params, frozen)
        metrics = {"loss": loss, "correct": correct.astype(jnp.int32),
                   "count": count.astype(jnp.int32)}
        return state.replace(step=state.step + 1, params=params, batch_stats=new_stats,
                             opt_state=opt_state), metrics

    def train_chunk(state: TrainState, images, labels, chunk_idx, num_active):
        traces["train"] += 1
        return laid_out(*chunk_of(state, images, labels, chunk_idx, num_active))

    def train_lanes(states: TrainState, images, labels, chunk_idx, num_active):
        """`chunk_of` vmapped over lanes: states [lanes, ...], chunk_idx [lanes, chunk,
        batch]; the data and the number of steps taken are shared."""
        traces["train_lanes"] += 1
        return jax.vmap(chunk_of, in_axes=(0, None, None, 0, None))(
            states, images, labels, chunk_idx, num_active)

    def chunk_of(state: TrainState, images, labels, chunk_idx, num_active):
        """Up to chunk_idx.shape[0] steps: the first `num_active` of them are taken."""
        if chunk_idx.shape[0] == 1:  # no loop: XLA:CPU runs convolutions inside a
            del num_active           # while loop (scan) about 13x slower than outside.
            state, metrics = one_step(state, images, labels, chunk_idx[0])
            return state, {"losses": metrics["loss"][None], "correct": metrics["correct"],
                           "count": metrics["count"]}

        def body(state, xs):
            i, batch_idx = xs
            zero = {"loss": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.int32),
                    "count": jnp.zeros((), jnp.int32)}
            return jax.lax.cond(i < num_active,
                                lambda s: one_step(s, images, labels, batch_idx),
                                lambda s: (s, zero), state)

        steps = jnp.arange(chunk_idx.shape[0])
        state, metrics = jax.lax.scan(body, state, (steps, chunk_idx))
        # Per-step losses go back to the host, which sums them in one fixed order whatever
        # the chunk length (runtime.steps_per_call must never change a logged number).
        return state, {"losses": metrics["loss"], "correct": metrics["correct"].sum(),
                       "count": metrics["count"].sum()}

    def eval_batch(params, batch_stats, mask, images, labels, idx, weights):
        raw = jax.lax.with_sharding_constraint(images[idx], batch_sharded(mesh))
        return eval_on(params, batch_stats, mask, raw, labels[idx], weights)

    def eval_lanes(params, batch_stats, mask, images, labels, idx, weights):
        """eval_batch vmapped over the lanes' (params, batch stats, mask): one call
        evaluates every lane on the same examples."""
        traces["eval_lanes"] += 1
        raw = jax.lax.with_sharding_constraint(images[idx], batch_sharded(mesh))
        return jax.vmap(evaluated, in_axes=(0, 0, 0, None, None, None))(
            params, batch_stats, mask, raw, labels[idx], weights)

    def eval_on(params, batch_stats, mask, raw, batch_labels, weights):
        traces["eval"] += 1
        return evaluated(params, batch_stats, mask, raw, batch_labels, weights)

    def evaluated(params, batch_stats, mask, raw, batch_labels, weights):
        x, targets = task.eval_inputs(raw, batch_labels, input_spec)
        logits, _ = forward(params, batch_stats, mask, x, False, jax.random.PRNGKey(0))
        losses, right = task.eval_metrics(logits, targets)
        return {"loss_sum": jnp.sum(losses * weights), "correct": jnp.sum(right * weights),
                "count": jnp.sum(weights)}

    def train_streamed(state: TrainState, raw, batch_labels):
        """One step on a batch the host pipeline delivered (already a global array)."""
        traces["train"] += 1
        state, metrics = step_on(state, raw, batch_labels)
        return laid_out(state, {"losses": metrics["loss"][None], "correct": metrics["correct"],
                                "count": metrics["count"]})

    # Replicated: every output pinned to all devices. FSDP: the layout comes from
    # laid_out's constraints (the state's tree is not known here).
    outs = {} if fsdp else {"out_shardings": (rep, rep)}
    options = {"compiler_options": compiler_options(mesh, cpu_convolutions) or None}
    return CompiledSteps(
        train_chunk=jax.jit(train_chunk, donate_argnums=(0,), **outs, **options),
        eval_batch=jax.jit(eval_batch, out_shardings=rep, **options),
        train_streamed=jax.jit(train_streamed, donate_argnums=(0,), **outs, **options),
        eval_streamed=jax.jit(eval_on, out_shardings=rep, **options),
        mesh=mesh, steps_per_call=steps_per_call, traces=traces,
        learning_rate=learning_rate,
        train_lanes=jax.jit(train_lanes, donate_argnums=(0,), **outs, **options),
        eval_lanes=jax.jit(eval_lanes, out_shardings=rep, **options))
