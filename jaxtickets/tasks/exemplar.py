"""Exemplar (Dosovitskiy et al. 2016) as a triplet margin loss (P0 Sec. 4.1, App. A).

Every image is its own class: two strong augmentations of one image are the anchor and
the positive, the positive view of another image of the batch is the negative. The
head is an embedding (EMBEDDING_DIM outputs, L2-normalized here, docs/choices.md#exemplar-head), and
the extra augmentation is colour jitter plus small random rotations (P0 App. A).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

from jaxtickets.tasks.base import Task, augment, normalize

EMBEDDING_DIM = 128
MARGIN = 1.0              # PyTorch's TripletMarginLoss default (P0 does not say)
MAX_ROTATION_DEGREES = 20.0
MIN_CROP_PADDING = 2      # random translations even where the dataset uses no crop
EVAL_VIEW_SEED = 0


def small_rotation(images: jnp.ndarray, angles: jnp.ndarray) -> jnp.ndarray:
    """Rotates float NHWC images about their centres by `angles` (radians), bilinear,
    zero outside the image."""
    n, h, w, c = images.shape
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0

    def one(image, angle):
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        src_y = cos * (yy - cy) - sin * (xx - cx) + cy
        src_x = sin * (yy - cy) + cos * (xx - cx) + cx
        return jnp.stack([map_coordinates(image[..., ch], [src_y, src_x], order=1,
                                          mode="constant", cval=0.0) for ch in range(c)], -1)

    return jax.vmap(one)(images, angles)


def colour_jitter(x: jnp.ndarray, rng: jax.Array) -> jnp.ndarray:
    """Brightness and contrast (and saturation for colour images) in [0.6, 1.4], per image;
    x holds values in [0, 1]."""
    n, _, _, c = x.shape
    b_rng, c_rng, s_rng = jax.random.split(rng, 3)
    factor = lambda key: jax.random.uniform(key, (n, 1, 1, 1), minval=0.6, maxval=1.4)  # noqa: E731
    x = x * factor(b_rng)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * factor(c_rng) + mean
    if c == 3:
        gray = x.mean(axis=3, keepdims=True)
        x = gray + (x - gray) * factor(s_rng)
    return jnp.clip(x, 0.0, 1.0)


def strong_view(raw: jnp.ndarray, rng: jax.Array, spec) -> jnp.ndarray:
    """One Exemplar view: crop/flip, colour jitter, small rotation, then normalization."""
    crop_rng, colour_rng, rot_rng = jax.random.split(rng, 3)
    crop_spec = dataclasses.replace(spec, pad_crop=max(spec.pad_crop, MIN_CROP_PADDING))
    x = augment(raw, crop_rng, crop_spec).astype(jnp.float32) / 255.0
    x = colour_jitter(x, colour_rng)
    limit = math.radians(MAX_ROTATION_DEGREES)
    x = small_rotation(x, jax.random.uniform(rot_rng, (raw.shape[0],), minval=-limit,
                                             maxval=limit))
    return (x - jnp.asarray(spec.mean)) / jnp.asarray(spec.std)


def triplet_terms(embeddings: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-image triplet loss and whether the positive is nearer than the negative.

    `embeddings` stacks the anchors [N] then the positives [N]; the negative of image i
    is the positive view of image i-1 (another image of the batch)."""
    e = embeddings / (jnp.linalg.norm(embeddings, axis=-1, keepdims=True) + 1e-12)
    n = e.shape[0] // 2
    anchor, positive = e[:n], e[n:]
    negative = jnp.roll(positive, 1, axis=0)
    d_pos = jnp.linalg.norm(anchor - positive + 1e-6, axis=-1)
    d_neg = jnp.linalg.norm(anchor - negative + 1e-6, axis=-1)
    return jax.nn.relu(d_pos - d_neg + MARGIN), (d_pos < d_neg).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class ExemplarTask(Task):
    name: str = "exemplar"

    def outputs(self, num_classes: int) -> int:
        return EMBEDDING_DIM

    def train_inputs(self, raw, labels, rng, spec):
        a_rng, p_rng = jax.random.split(rng)
        views = jnp.concatenate([strong_view(raw, a_rng, spec), strong_view(raw, p_rng, spec)])
        return views, jnp.zeros((raw.shape[0],), jnp.int32)  # labels are never read

    def train_loss(self, logits, targets):
        losses, right = triplet_terms(logits)
        return losses.mean(), right.sum(), jnp.asarray(right.shape[0])

    def eval_inputs(self, raw, labels, spec):
        view = strong_view(raw, jax.random.PRNGKey(EVAL_VIEW_SEED), spec)
        return jnp.concatenate([normalize(raw, spec), view]), labels

    def eval_metrics(self, logits, targets):
        return triplet_terms(logits)
