"""S4L semi-supervision (Zhai et al. 2019; P0 Sec. 4.3): label cross-entropy on the
labelled images plus RotNet on all images, summed 1:1 (docs/choices.md#semisup).

Unlabelled training images carry the label -1 (data/selections.mark_unlabelled); their
label never enters the loss. One head holds both outputs: the class logits, then the
four rotation logits.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxtickets.tasks.base import Task, augment, cross_entropy, normalize
from jaxtickets.tasks.rotnet import (NUM_ROTATIONS, all_rotations,
                                     per_image_rotation_metrics, rotation_batch)


def labelled_cross_entropy(class_logits: jnp.ndarray, labels: jnp.ndarray):
    """Mean cross-entropy over the labelled images (label >= 0), correct count, count."""
    labelled = labels >= 0
    safe = jnp.where(labelled, labels, 0)
    losses = jnp.where(labelled, cross_entropy(class_logits, safe), 0.0)
    count = jnp.sum(labelled)
    correct = jnp.sum((jnp.argmax(class_logits, -1) == safe) & labelled)
    return losses.sum() / jnp.maximum(count, 1), correct, count


@dataclasses.dataclass(frozen=True)
class SemiSupervisedTask(Task):
    name: str = "semisup"
    all_rotations: bool = False

    def outputs(self, num_classes: int) -> int:
        return num_classes + NUM_ROTATIONS

    def train_inputs(self, raw, labels, rng, spec):
        plain_rng, rot_rng = jax.random.split(rng)
        plain = normalize(augment(raw, plain_rng, spec), spec)
        rotated, rot_labels = rotation_batch(raw, rot_rng, spec, self.all_rotations)
        return jnp.concatenate([plain, rotated]), (labels, rot_labels)

    def train_loss(self, logits, targets):
        labels, rot_labels = targets
        n = labels.shape[0]
        class_loss, correct, count = labelled_cross_entropy(
            logits[:n, :-NUM_ROTATIONS], labels)
        rot_loss = cross_entropy(logits[n:, -NUM_ROTATIONS:], rot_labels).mean()
        return class_loss + rot_loss, correct, count

    def eval_inputs(self, raw, labels, spec):
        rotated, rot_labels = all_rotations(raw)  # rotation 0 first: the plain images
        return normalize(rotated, spec), (labels, rot_labels)

    def eval_metrics(self, logits, targets):
        labels, rot_labels = targets
        n = labels.shape[0]
        class_logits = logits[:n, :-NUM_ROTATIONS]
        rot_loss, _ = per_image_rotation_metrics(logits[:, -NUM_ROTATIONS:], rot_labels, n)
        return (cross_entropy(class_logits, labels) + rot_loss,
                (jnp.argmax(class_logits, -1) == labels).astype(jnp.float32))
