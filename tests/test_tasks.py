"""Each generation task's batch transform and loss (issue 3, must-show 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtickets.errors import ConfigError
from jaxtickets.tasks import create_task
from jaxtickets.tasks.exemplar import EMBEDDING_DIM, MARGIN, small_rotation, triplet_terms
from jaxtickets.tasks.rotnet import NUM_ROTATIONS, all_rotations, rotate
from jaxtickets.tasks.semisup import labelled_cross_entropy
from jaxtickets.training.steps import InputSpec

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

SPEC = InputSpec((0.0,), (1.0,))


def _images(n=6, size=8, seed=0):
    """Distinct, asymmetric uint8 images (no rotation of one equals another)."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 1), dtype=np.uint8)


def test_rotated_batch_carries_the_right_labels():
    raw = _images()
    task = create_task("rotnet")
    x, labels = task.train_inputs(jnp.asarray(raw), jnp.zeros(6, jnp.int32),
                                  jax.random.PRNGKey(3), SPEC)
    x, labels = np.asarray(x), np.asarray(labels)
    assert x.shape == raw.shape and set(labels) <= set(range(NUM_ROTATIONS))
    assert len(set(labels.tolist())) > 1  # the draw varies over the batch
    for i in range(6):
        expected = np.rot90(raw[i], labels[i], axes=(0, 1)).astype(np.float32) / 255.0
        np.testing.assert_allclose(x[i], expected, atol=1e-6)
        for other in set(range(4)) - {labels[i]}:
            assert not np.allclose(x[i], np.rot90(raw[i], other, axes=(0, 1)) / 255.0)


def test_all_rotations_are_rotation_major_with_labels():
    raw = _images(3)
    rotated, labels = all_rotations(jnp.asarray(raw))
    assert rotated.shape[0] == 12
    np.testing.assert_array_equal(np.asarray(labels), np.repeat(np.arange(4), 3))
    for k in range(4):
        np.testing.assert_array_equal(np.asarray(rotated[3 * k:3 * k + 3]),
                                      np.rot90(raw, k, axes=(1, 2)))
    np.testing.assert_array_equal(np.asarray(rotate(jnp.asarray(raw), jnp.array([1, 2, 3]))),
                                  np.stack([np.rot90(raw[i], i + 1) for i in range(3)]))


def test_rotnet_all_mode_and_eval_score_every_rotation_per_image():
    task = create_task("rotnet", rotations="all")
    raw = jnp.asarray(_images(2))
    x, labels = task.train_inputs(raw, jnp.zeros(2, jnp.int32), jax.random.PRNGKey(0), SPEC)
    assert x.shape[0] == 8 and np.bincount(np.asarray(labels)).tolist() == [2, 2, 2, 2]
    x, targets = task.eval_inputs(raw, jnp.zeros(2, jnp.int32), SPEC)
    perfect = jax.nn.one_hot(targets, 4) * 50.0
    loss, right = task.eval_metrics(perfect, targets)
    assert loss.shape == (2,) and np.allclose(np.asarray(right), 1.0)
    wrong = jax.nn.one_hot((targets + 1) % 4, 4) * 50.0
    assert np.allclose(np.asarray(task.eval_metrics(wrong, targets)[1]), 0.0)
    assert create_task("rotnet").outputs(10) == 4


def test_exemplar_positive_is_a_view_of_the_same_image():
    """Anchor i and positive i come from image i alone: with one non-blank image in the
    batch (blank images stay exactly zero under every augmentation), exactly its anchor
    and its positive are non-zero; and they are two different augmentations of it."""
    task = create_task("exemplar")
    picture = _images(1, size=12)[0]
    for i in (0, 3, 5):
        raw = np.zeros((6, 12, 12, 1), np.uint8)
        raw[i] = picture
        views, _ = task.train_inputs(jnp.asarray(raw), jnp.zeros(6, jnp.int32),
                                     jax.random.PRNGKey(i), SPEC)
        nonzero = np.flatnonzero(np.abs(np.asarray(views)).reshape(12, -1).sum(1) > 0)
        assert nonzero.tolist() == [i, 6 + i]
        assert not np.allclose(np.asarray(views[i]), np.asarray(views[6 + i]))
    # Rotation by zero degrees is the identity (bilinear sampling at the pixel centres).
    img = _images(2).astype(np.float32) / 255.0
    np.testing.assert_allclose(np.asarray(small_rotation(jnp.asarray(img), jnp.zeros(2))),
                               img, atol=1e-5)
    assert task.outputs(10) == EMBEDDING_DIM


def test_triplet_loss_values():
    anchor = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    # positives equal to the anchors; the negative of image 0 is positive 1 (orthogonal)
    losses, right = triplet_terms(jnp.concatenate([anchor, anchor]))
    np.testing.assert_allclose(np.asarray(losses), max(0.0, MARGIN - np.sqrt(2)), atol=1e-5)
    assert np.asarray(right).tolist() == [1.0, 1.0]
    # positives swapped: the "negative" is now the anchor's own image
    losses, right = triplet_terms(jnp.concatenate([anchor, anchor[::-1]]))
    np.testing.assert_allclose(np.asarray(losses), np.sqrt(2) + MARGIN, atol=1e-5)
    assert np.asarray(right).tolist() == [0.0, 0.0]


def test_semisup_ignores_the_labels_of_unlabelled_images():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(6, 10)), jnp.float32)
    labels = jnp.array([3, -1, 5, -1, -1, 0])
    loss, correct, count = labelled_cross_entropy(logits, labels)
    assert int(count) == 3
    expected = -np.mean([jax.nn.log_softmax(logits[i])[int(labels[i])] for i in (0, 2, 5)])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # The class logits of unlabelled images get no gradient at all.
    grad = jax.grad(lambda z: labelled_cross_entropy(z, labels)[0])(logits)
    assert np.all(np.asarray(grad)[[1, 3, 4]] == 0.0)
    assert np.any(np.asarray(grad)[[0, 2, 5]] != 0.0)


def test_semisup_sums_labelled_cross_entropy_and_rotation_loss():
    task = create_task("semisup")
    assert task.outputs(10) == 14
    raw = jnp.asarray(_images(4))
    labels = jnp.array([1, -1, 2, -1])
    x, targets = task.train_inputs(raw, labels, jax.random.PRNGKey(0), SPEC)
    assert x.shape[0] == 8
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(8, 14)), jnp.float32)
    loss, correct, count = task.train_loss(logits, targets)
    class_loss = labelled_cross_entropy(logits[:4, :10], labels)[0]
    rot_labels = targets[1]
    rot_loss = -jnp.mean(jax.nn.log_softmax(logits[4:, 10:])[jnp.arange(4), rot_labels])
    np.testing.assert_allclose(float(loss), float(class_loss + rot_loss), rtol=1e-5)
    assert int(count) == 2


def test_unknown_task_and_rotation_mode_are_named():
    with pytest.raises(ConfigError, match="unknown task 'jigsaw'"):
        create_task("jigsaw")
    with pytest.raises(ConfigError, match="rotations"):
        create_task("rotnet", rotations="two")
