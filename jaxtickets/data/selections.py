"""Which data a ticket is generated on (P0 Sec. 4.2-4.4, P1 Sec. 4.1-4.2).

Each selection is a pure function of the split's labels and a seed, so a rerun selects
the same images; an in-memory `Split` and a streamed one (data/pipeline.py, which offers
the same `labels`, `take` and `with_labels`) with equal labels select the same images.
The selections: a per-class fraction of the samples (exact counts, stratified), a
fraction of the classes with all their images (relabelled 0..k-1), stratified halves
(CIFAR-10a/b), one fixed permutation of the labels, the S4L labelled/unlabelled split
(unlabelled images get label -1), another dataset's images brought to the model's
input shape, and the evaluation data's label noise and blur (data.random_labels_fraction,
data.blur_factor).
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np

from jaxtickets.data.augment import blur
from jaxtickets.data.datasets import Split, Splits
from jaxtickets.errors import ConfigError

UNLABELLED = -1
HALVES = ("", "a", "b")
AnySplit = TypeVar("AnySplit")    # datasets.Split or pipeline.StreamedSplit
AnySplits = TypeVar("AnySplits")  # datasets.Splits or pipeline.StreamedSplits


def per_class_count(fraction: float, available: int) -> int:
    """round(fraction x available), halves up, at least one image per class."""
    return max(1, min(available, int(np.floor(fraction * available + 0.5))))


def _per_class_pick(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices: per class, a seeded choice of per_class_count(...) images."""
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        picked.append(rng.permutation(members)[:per_class_count(fraction, members.size)])
    return np.sort(np.concatenate(picked))


def sample_fraction(split: AnySplit, fraction: float, seed: int) -> AnySplit:
    """A per-class fraction of the images, all classes kept (P0 'x% of the samples')."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"sample_fraction: must lie in (0, 1], got {fraction}")
    if fraction == 1.0:
        return split
    return split.take(_per_class_pick(split.labels, fraction, seed))


def chosen_classes(num_classes: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted classes kept: round(fraction x num_classes) of them, at least one."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"class_fraction: must lie in (0, 1], got {fraction}")
    k = per_class_count(fraction, num_classes)
    return np.sort(np.random.default_rng(seed).permutation(num_classes)[:k])


def class_subset(splits: AnySplits, fraction: float, seed: int) -> AnySplits:
    """All images of a seeded subset of the classes, relabelled 0..k-1 in every split
    (the generation head then has k outputs)."""
    if fraction == 1.0:
        return splits
    keep = chosen_classes(splits.num_classes, fraction, seed)
    relabel = np.full(splits.num_classes, UNLABELLED, dtype=np.int32)
    relabel[keep] = np.arange(keep.size, dtype=np.int32)

    def restrict(split):
        labels = split.labels
        inside = np.flatnonzero(np.isin(labels, keep))
        return split.take(inside).with_labels(relabel[labels[inside]])

    return dataclasses.replace(splits, train=restrict(splits.train),
                               validation=restrict(splits.validation),
                               test=restrict(splits.test), num_classes=int(keep.size))


def half(split: AnySplit, which: str, seed: int) -> AnySplit:
    """Stratified halves 'a' and 'b' (P1's CIFAR-10a/10b: 2,500 per class each); '' = all.
    A class with an odd count gives its extra image to 'a'."""
    if which not in HALVES:
        raise ConfigError(f"half: expected one of {HALVES}, got {which!r}")
    if not which:
        return split
    rng = np.random.default_rng(seed)
    picked, labels = [], split.labels
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cut = (members.size + 1) // 2
        picked.append(members[:cut] if which == "a" else members[cut:])
    return split.take(np.sort(np.concatenate(picked)))


def shuffled_labels(split: AnySplit, seed: int) -> AnySplit:
    """One fixed random permutation of the labels across images: every class keeps its
    count, images and labels are decorrelated (P0 Fig. 4, docs/choices.md#shuffled-labels)."""
    perm = np.random.default_rng(seed).permutation(len(split))
    return split.with_labels(split.labels[perm])


def random_label_count(size: int, fraction: float) -> int:
    """How many of `size` images random_labels chooses: round(fraction x size), halves up."""
    return min(size, int(np.floor(fraction * size + 0.5)))


def random_label_sources(size: int, fraction: float, seed: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, donors) for `random_labels`: image chosen[j] takes the label of image
    donors[j]. `chosen`, sorted, holds round(fraction x size) images (halves up), drawn
    by the seed; `donors` is the same images in the order of shuffled_labels' permutation
    for that seed, so the chosen labels are permuted among themselves uniformly at random,
    and at fraction 1 image i takes the label of image perm[i], as in shuffled_labels."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"data.random_labels_fraction: must lie in [0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(size)  # shuffled_labels' permutation: drawn first
    count = random_label_count(size, fraction)
    if count == size:
        return np.arange(size), perm
    chosen = np.sort(rng.choice(size, count, replace=False))
    return chosen, perm[np.isin(perm, chosen)]


def random_labels(split: AnySplit, fraction: float, seed: int) -> AnySplit:
    """Label noise (data.random_labels_fraction): round(fraction x N) images chosen by
    the seed get labels permuted among themselves (random_label_sources), the others keep
    theirs. A chosen image may draw its own class, so fewer than the chosen count may
    change; every class keeps its count. Fraction 1 is shuffled_labels(split, seed)
    exactly, fraction 0 the split itself."""
    if fraction == 0.0:
        return split
    chosen, donors = random_label_sources(len(split), fraction, seed)
    labels = np.array(split.labels, dtype=np.int32)
    labels[chosen] = labels[donors]
    return split.with_labels(labels)


def blur_splits(splits: Splits, factor: int) -> Splits:
    """Every image of the in-memory splits blurred by `factor` (augment.blur: block
    means, upsampled back by nearest neighbour); factor 1 returns `splits`."""
    if factor == 1:
        return splits

    def one(split: Split) -> Split:
        return Split(blur(split.images, factor), split.labels)

    return dataclasses.replace(splits, train=one(splits.train),
                               validation=one(splits.validation), test=one(splits.test))


def mark_unlabelled(split: AnySplit, labelled_fraction: float, seed: int) -> AnySplit:
    """Keeps the labels of a per-class fraction of the images; the others get -1."""
    if not 0.0 < labelled_fraction <= 1.0:
        raise ConfigError(f"labelled_fraction: must lie in (0, 1], got {labelled_fraction}")
    original = split.labels
    labels = np.full_like(original, UNLABELLED)
    keep = _per_class_pick(original, labelled_fraction, seed)
    labels[keep] = original[keep]
    return split.with_labels(labels)


def adapt_images(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 NHWC images brought to [H, W, C] = shape: grayscale replicated to 3 channels
    (or colour averaged to gray), smaller images zero-padded around the centre, larger
    ones resized (area-averaged) (docs/choices.md#other-shapes)."""
    h, w, c = shape
    if images.shape[3] != c:
        if images.shape[3] == 1:
            images = np.repeat(images, c, axis=3)
        elif c == 1:
            images = np.round(images.astype(np.float32).mean(axis=3, keepdims=True)
                              ).astype(np.uint8)
        else:
            raise ConfigError(f"cannot map {images.shape[3]} channels to {c}")
    ih, iw = images.shape[1:3]
    if ih > h or iw > w:
        import jax
        resized = jax.image.resize(images.astype(np.float32), (images.shape[0], min(ih, h),
                                   min(iw, w), c), method="linear", antialias=True)
        images = np.clip(np.round(np.asarray(resized)), 0, 255).astype(np.uint8)
        ih, iw = images.shape[1:3]
    if ih < h or iw < w:
        top, left = (h - ih) // 2, (w - iw) // 2
        images = np.pad(images, ((0, 0), (top, h - ih - top), (left, w - iw - left), (0, 0)))
    return images


def adapt_splits(splits: Splits, shape: tuple[int, int, int]) -> Splits:
    def one(split: Split) -> Split:
        return Split(adapt_images(split.images, shape), split.labels)

    return Splits(splits.name, one(splits.train), one(splits.validation), one(splits.test),
                  splits.num_classes)


def adapted_normalization(mean_std: tuple[tuple[float, ...], tuple[float, ...]],
                          channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The source dataset's per-channel statistics for `channels` input channels."""
    mean, std = mean_std
    if len(mean) == channels:
        return mean, std
    if len(mean) == 1:
        return tuple(mean) * channels, tuple(std) * channels
    return (float(np.mean(mean)),), (float(np.mean(std)),)
