"""The task interface and supervised label classification.

Train side: `train_inputs` turns a gathered uint8 batch into network input and
targets (augmentation included), `train_loss` gives the scalar loss and the numbers of
correct and counted predictions. Evaluation side: `eval_inputs`/`eval_metrics` give a
loss and a correctness per *image* (tasks that expand an image into several inputs
average over them), so padding weights and early stopping work for every task alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

Targets = Any


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def normalize(images: jnp.ndarray, spec) -> jnp.ndarray:
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(spec.mean)) / jnp.asarray(spec.std)


def augment(images: jnp.ndarray, rng: jax.Array, spec) -> jnp.ndarray:
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


@dataclasses.dataclass(frozen=True)
class Task:
    """Base class; subclasses override every method."""

    name: str = "task"

    def outputs(self, num_classes: int) -> int:
        raise NotImplementedError

    def train_inputs(self, raw, labels, rng, spec) -> tuple[jnp.ndarray, Targets]:
        raise NotImplementedError

    def train_loss(self, logits, targets) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """(mean loss, number correct, number counted)."""
        raise NotImplementedError

    def eval_inputs(self, raw, labels, spec) -> tuple[jnp.ndarray, Targets]:
        raise NotImplementedError

    def eval_metrics(self, logits, targets) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Per-image loss and per-image correctness (in [0, 1])."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class LabelsTask(Task):
    """Cross-entropy on the class labels (P2's task, and P0's evaluation task)."""

    name: str = "labels"

    def outputs(self, num_classes: int) -> int:
        return num_classes

    def train_inputs(self, raw, labels, rng, spec):
        return normalize(augment(raw, rng, spec), spec), labels

    def train_loss(self, logits, targets):
        correct = jnp.sum(jnp.argmax(logits, -1) == targets)
        return cross_entropy(logits, targets).mean(), correct, jnp.asarray(targets.shape[0])

    def eval_inputs(self, raw, labels, spec):
        return normalize(raw, spec), labels

    def eval_metrics(self, logits, targets):
        return (cross_entropy(logits, targets),
                (jnp.argmax(logits, -1) == targets).astype(jnp.float32))
