"""RotNet (Gidaris et al. 2018; P0 Sec. 4.1): predict which multiple of 90 degrees an
image was rotated by. Rotations are done on the device inside the jitted step.

`all_rotations=False` draws one rotation per image per step (an epoch costs what a
labels epoch costs, docs/choices.md#rotnet-batches); True puts all four rotations of every image in
the batch (Gidaris et al.). Evaluation always scores all four rotations of each image.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxtickets.tasks.base import LabelsTask, augment, cross_entropy, normalize

NUM_ROTATIONS = 4


def rotate(images: jnp.ndarray, quarter_turns: jnp.ndarray) -> jnp.ndarray:
    """Rotates each NHWC image counter-clockwise by its own number of quarter turns."""
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"rotation needs square images, got {images.shape[1:3]}")
    stacked = jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)])
    return jnp.take_along_axis(stacked, quarter_turns[None, :, None, None, None] % 4,
                               axis=0)[0]


def all_rotations(images: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """[4N] images (rotation-major: all of rotation 0, then 90, ...) and their labels."""
    n = images.shape[0]
    rotated = jnp.concatenate([jnp.rot90(images, k, axes=(1, 2))
                               for k in range(NUM_ROTATIONS)])
    return rotated, jnp.repeat(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), n)


def rotation_batch(raw, rng, spec, everything: bool):
    """Augmented, rotated, normalized images and their rotation labels."""
    aug_rng, rot_rng = jax.random.split(rng)
    images = augment(raw, aug_rng, spec)
    if everything:
        rotated, labels = all_rotations(images)
    else:
        labels = jax.random.randint(rot_rng, (raw.shape[0],), 0, NUM_ROTATIONS)
        rotated = rotate(images, labels)
    return normalize(rotated, spec), labels


def per_image_rotation_metrics(logits, labels, n):
    """Loss and accuracy of each image, averaged over its four rotations."""
    losses = cross_entropy(logits, labels).reshape(NUM_ROTATIONS, n)
    right = (jnp.argmax(logits, -1) == labels).astype(jnp.float32).reshape(NUM_ROTATIONS, n)
    return losses.mean(0), right.mean(0)


@dataclasses.dataclass(frozen=True)
class RotNetTask(LabelsTask):
    """Labels' cross-entropy on rotation labels; only inputs, head and evaluation differ."""

    name: str = "rotnet"
    all_rotations: bool = False

    def outputs(self, num_classes: int) -> int:
        return NUM_ROTATIONS

    def train_inputs(self, raw, labels, rng, spec):
        return rotation_batch(raw, rng, spec, self.all_rotations)

    def eval_inputs(self, raw, labels, spec):
        rotated, rot_labels = all_rotations(raw)
        return normalize(rotated, spec), rot_labels

    def eval_metrics(self, logits, targets):
        return per_image_rotation_metrics(logits, targets, targets.shape[0] // NUM_ROTATIONS)
