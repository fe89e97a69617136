"""Ticket sources: where each ticket's mask and rewind weights are generated (P0, P1).

A source is a task on a selection of some dataset with a recipe. When all three equal
the evaluation's, the generation run *is* the evaluation run (P2's IMP on labels) and
nothing is trained twice; otherwise every evaluated level trains the ticket again on
the evaluation task, with a fresh output head where the output size differs.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxtickets.branches import parse_branches
from jaxtickets.config_schema import TRAJECTORY_KEYS, base_config, parse_levels
from jaxtickets.config_values import inherited
from jaxtickets.errors import ConfigError
from jaxtickets.data import selections
from jaxtickets.data.augment import JITTER, ImageRecipe
from jaxtickets.data.datasets import (STREAMED_CLASSES, Splits, input_shape, load_splits,
                                      normalization)
from jaxtickets.experiment.setup import Setup, evaluation_recipe, source_recipe
from jaxtickets.models.layers import OUTPUT_LAYER
from jaxtickets.sparsity.masks import PrunablePolicy, kernel_kind, path_name
from jaxtickets import distributed, tasks
from jaxtickets.tasks import create_task
from jaxtickets.training import backend_defaults
from jaxtickets.training.steps import InputSpec

if TYPE_CHECKING:  # the pipeline needs Grain and TFDS: imported only to stream
    from jaxtickets.data.pipeline import StreamedSplits

PyTree = Any
IMPLICIT = "labels"  # the name of the single source of a config without `generation`
# Streams for the selections' seeds, so each draws independently of the others; a task
# that changes its data has a stream of its own (tasks.TaskKind.seed_stream: 3, 4).
CLASS_STREAM, HALF_STREAM, SAMPLE_STREAM = range(3)


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """How a source's masks follow each other (pruning.* or the source's overrides;
    config_schema.base_config() holds the defaults)."""

    schedule: str       # 'iterative', or 'one_shot': level L prunes the dense run at once
    strategy: str       # 'reset', or 'continue': train on from the pruned final weights
    criterion: str
    mask1_action: str
    mask0_action: str

    @property
    def changes_weights(self) -> bool:
        return self.mask1_action != "rewind" or self.mask0_action != "zero"

    def describe(self) -> str:
        """The choices that differ from base_config's, e.g. 'one_shot/movement' ('' for
        plain IMP)."""
        defaults = base_config().pruning
        return "/".join(getattr(self, f) for f in TRAJECTORY_KEYS
                        if getattr(self, f) != defaults[f])


@dataclasses.dataclass
class Source:
    name: str
    description: str          # the generation task and data, e.g. 'rotnet:mnist'
    setup: Setup              # where the generation runs train
    is_evaluation: bool       # generation run == evaluation run
    root: pathlib.Path        # its artifacts: root/replicate_R/...
    evaluate_levels: set[int]
    branches: list[str]
    selection: dict
    trajectory: Trajectory

    def trains_ticket(self, level: int) -> bool:
        """Whether the level's ticket is trained: always the dense level 0 (the trained
        baseline); other levels unless a one-shot source left 'ticket' out."""
        return level == 0 or "ticket" in self.branches


def _seed(split_seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([split_seed, stream]).generate_state(1)[0])


def input_spec(config: ml_collections.ConfigDict, dataset: str, augment: bool,
               source: ml_collections.ConfigDict | None = None) -> InputSpec:
    """How a batch is normalized and augmented on the device. A source's pad_crop/flip
    override data.*; None they are data.*, except for a streamed source of an
    in-memory evaluation: data.* describe the evaluation's augmentation, and the
    source's images were cropped and flipped on the host already."""
    mean, std = selections.adapted_normalization(
        normalization(dataset, config.data.normalize),
        input_shape(config.data.dataset, config.data.image_size)[2])
    d = config.data
    host_augmented = dataset in STREAMED_CLASSES and d.dataset not in STREAMED_CLASSES
    pad, flip = (0, False) if host_augmented else (d.pad_crop, d.flip)
    if source is not None:
        pad, flip = inherited(source.pad_crop, pad), inherited(source.flip, flip)
    return InputSpec(mean, std, pad if augment else 0, flip and augment,
                     config.model.compute_dtype)


def color_jitter(config: ml_collections.ConfigDict, name: str | None = None) -> bool:
    """Whether source `name`'s streamed training images (None: the evaluation's) are
    colour-jittered: data.color_jitter unless the source sets its own (None: as data).
    P0 App. A jitters the 1% ImageNet subsets only; crops and flips everywhere else."""
    own = None if name is None else config.generation[name].color_jitter
    return inherited(own, config.data.color_jitter)


def image_recipe(config: ml_collections.ConfigDict, jitter: bool = False,
                 dataset: str | None = None) -> ImageRecipe:
    """The host-side augmentation of the experiment's streamed images: crops of
    data.image_size after data.rotation_degrees, colour jitter only with `jitter` (off
    for evaluation images, whose centre crops ignore it, and for training images whose
    config does not ask for it: no jitter draws are made then), and data.blur_factor's
    blur of every crop where `dataset` (None: data.dataset) is the evaluation's."""
    d = config.data
    return ImageRecipe(size=d.image_size, jitter=JITTER if jitter else 0.0,
                       rotation_degrees=d.rotation_degrees,
                       blur=d.blur_factor if dataset in (None, d.dataset) else 1)


def streamed_splits(config: ml_collections.ConfigDict, dataset: str,
                    label_cache: pathlib.Path, jitter: bool) -> StreamedSplits:
    """A streamed dataset with the experiment's held-out split, crops and readers;
    the training split colour-jittered iff `jitter`, the others never.
    The pipeline is imported here, not at the top: in-memory runs need no Grain/TFDS."""
    from jaxtickets.data.pipeline import load_streamed_splits

    d = config.data
    splits = load_streamed_splits(dataset, d.data_dir or None, d.validation_size,
                                  d.split_seed, image_recipe(config, dataset=dataset),
                                  backend_defaults.reader_threads(config.runtime.reader_threads),
                                  label_cache)
    return dataclasses.replace(splits, train=with_jitter(config, splits.train, jitter,
                                                         dataset))


def with_jitter(config: ml_collections.ConfigDict, train, jitter: bool,
                dataset: str | None = None):
    """Streamed training split `train` (of `dataset`, None: data.dataset) with the
    experiment's recipe, jittered iff `jitter`; `train` itself when it has that recipe
    already, so a source that augments like the evaluation keeps the evaluation's
    splits (and runs)."""
    recipe = image_recipe(config, jitter, dataset)
    return train if train.recipe == recipe else train.with_recipe(recipe)


def load_evaluation_data(config: ml_collections.ConfigDict, label_cache: pathlib.Path
                         ) -> tuple[Splits | StreamedSplits, Splits | StreamedSplits]:
    """(the evaluation's splits, the same before data.half and label noise): in memory,
    or streamed from disk batch by batch for datasets too large for memory.
    data.blur_factor blurs every image of data.dataset (in memory here, once; streamed
    per crop, image_recipe), so sources reading data.dataset see it blurred too;
    data.random_labels_fraction changes the training labels after data.half (with_noise),
    so only sources training on exactly that split (data.dataset and data.half, the
    implicit source among them) see the noisy labels."""
    d = config.data
    if d.dataset in STREAMED_CLASSES:
        full = streamed_splits(config, d.dataset, label_cache, color_jitter(config))
    else:
        full = selections.blur_splits(
            load_splits(d.dataset, d.source, d.data_dir, d.validation_size,
                        d.train_size, d.test_size, d.split_seed, d.npz_file), d.blur_factor)
    return with_noise(with_half(full, d.half, d.split_seed), d.random_labels_fraction,
                      d.split_seed), full


def label_noise_seed(split_seed: int) -> int:
    """The seed of data.random_labels_fraction: the one the shuffled_labels task draws
    its permutation with (a function of data.split_seed, shared by all replicates), so
    fraction 1 gives the labels a shuffled_labels source on the same split trains on."""
    return _seed(split_seed, tasks.get("shuffled_labels").seed_stream)


def with_noise(splits, fraction: float, split_seed: int):
    """The splits with data.random_labels_fraction of the training labels permuted among
    themselves (selections.random_labels); validation and test untouched. Prints, once,
    how many labels were chosen and changed and the per-class counts after."""
    if fraction == 0.0:
        return splits
    train = selections.random_labels(splits.train, fraction, label_noise_seed(split_seed))
    before, after = np.asarray(splits.train.labels), np.asarray(train.labels)
    chosen = selections.random_label_count(len(after), fraction)
    counts = np.bincount(after[after >= 0], minlength=splits.num_classes)
    distributed.primary_print(
        f"data.random_labels_fraction={fraction:g}: {chosen} of {len(after)} training "
        f"labels permuted among themselves, {int(np.sum(before != after))} changed; "
        f"images per class after: min {int(counts.min())}, max {int(counts.max())}")
    return dataclasses.replace(splits, train=train)


def with_half(splits, which: str, split_seed: int):
    """The splits with training images restricted to stratified half `which` ('' = all);
    'a' and 'b' use one seed, so they are complementary."""
    if not which:
        return splits
    return dataclasses.replace(splits, train=selections.half(
        splits.train, which, _seed(split_seed, HALF_STREAM)))


def runtime_options(config: ml_collections.ConfigDict) -> dict:
    """The runtime keys every Setup compiles its steps with."""
    return {"fsdp": config.runtime.fsdp,
            "cpu_convolutions": config.runtime.cpu_convolutions}


def evaluation_setup(config: ml_collections.ConfigDict, splits: Splits) -> Setup:
    return Setup(splits, create_task(config.evaluation.task),
                 evaluation_recipe(config), config.model.name, config.model.dropout,
                 input_spec(config, config.data.dataset, True),
                 config.runtime.steps_per_call, config.train.eval_batch_size,
                 init=config.model.init, bn_init=config.model.bn_init,
                 **runtime_options(config))


def other_dataset_splits(config: ml_collections.ConfigDict, dataset: str,
                         label_cache: pathlib.Path):
    """Another dataset's splits for a source. Between in-memory datasets the images are
    brought to the evaluation's input shape (P1: grey to RGB, resized); where a streamed
    dataset is involved each keeps its own resolution (ImageNet crops of
    data.image_size, CIFAR at 32 x 32: P1's and P0's ImageNet transfers), with only
    the channels matched, so the model must not depend on the input size. A streamed
    training split comes unjittered; source_splits applies the source's choice."""
    d = config.data
    if dataset in STREAMED_CLASSES:
        return streamed_splits(config, dataset, label_cache, False)
    splits = load_splits(dataset, d.source, d.data_dir, d.validation_size, 0, 0,
                         d.split_seed, d.npz_file)
    target = input_shape(d.dataset, d.image_size)
    if d.dataset in STREAMED_CLASSES:
        target = input_shape(dataset)[:2] + target[2:]
    return selections.adapt_splits(splits, target)


def source_splits(config: ml_collections.ConfigDict, name: str, evaluation, full,
                  label_cache: pathlib.Path) -> tuple[Splits | StreamedSplits, dict]:
    """The generation data of source `name` and a summary of what was selected.
    `full` is the evaluation dataset before data.half; `evaluation` after it. In-memory
    and streamed splits select alike (data/selections.py); a streamed training split
    then gets the source's colour jitter (generation.NAME.color_jitter), as a copy
    where it differs from the evaluation's."""
    s, d = config.generation[name], config.data
    dataset = inherited(s.dataset, d.dataset)
    if dataset == d.dataset:
        splits = evaluation if s.half == d.half else with_half(full, s.half, d.split_seed)
    else:
        splits = with_half(other_dataset_splits(config, dataset, label_cache), s.half,
                           d.split_seed)
    splits = selections.class_subset(splits, s.class_fraction, _seed(d.split_seed, CLASS_STREAM))
    train = selections.sample_fraction(splits.train, s.sample_fraction,
                                       _seed(d.split_seed, SAMPLE_STREAM))
    kind = tasks.get(s.task, f"generation.{name}.task")
    if kind.select is not None:  # the task's own change of the data (its labels)
        train = kind.select(train, s, _seed(d.split_seed, kind.seed_stream))
    if dataset in STREAMED_CLASSES:
        train = with_jitter(config, train, color_jitter(config, name), dataset)
    if train is not splits.train:
        splits = dataclasses.replace(splits, train=train)
    labelled = (int(np.sum(splits.train.labels >= 0)) if kind.counts_labelled
                else len(splits.train))  # a streamed split's labels cost a pass: only S4L
    summary = {"dataset": dataset, "train_images": len(splits.train),
               "classes": splits.num_classes, "labelled_images": labelled}
    return splits, summary


def evaluation_name(config: ml_collections.ConfigDict) -> str:
    return config.data.dataset + config.data.half


def describe(config: ml_collections.ConfigDict, name: str, summary: dict) -> str:
    """'task:dataset' plus every way the source differs from the evaluation."""
    s = config.generation[name]
    parts = []
    if s.sample_fraction < 1:
        parts.append(f"{100 * s.sample_fraction:g}%samples")
    if s.class_fraction < 1:
        parts.append(f"{summary['classes']}classes")
    kind = tasks.get(s.task)
    if kind.describe is not None:
        parts.extend(kind.describe(s))
    if s.optimizer not in (None, config.train.optimizer):
        parts.append(s.optimizer)
    dataset = summary["dataset"] + (f"{s.half}" if s.half else "")  # P1's 'cifar10a'
    return f"{s.task}:{dataset}" + "".join(f"/{p}" for p in parts)


def build_sources(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                  evaluation: Setup, full, label_cache: pathlib.Path) -> list[Source]:
    p = config.pruning
    default_levels = set(parse_levels(p.evaluate_levels, p.levels))
    if not config.generation.keys():
        trajectory = trajectory_of(config, None)
        description = _with_trajectory(f"{config.evaluation.task}:{evaluation_name(config)}",
                                       trajectory)
        return [_checked(Source(IMPLICIT, description, evaluation,
                                trajectory.strategy == "reset", workdir, default_levels,
                                parse_branches(config.branches, one_shot=trajectory.schedule
                                               == "one_shot"), {}, trajectory), "pruning")]
    sources, evaluation_shapes = [], None
    for name in config.generation.keys():
        s = config.generation[name]
        splits, summary = source_splits(config, name, evaluation.splits, full, label_cache)
        task = create_task(s.task, s.rotations)
        recipe = source_recipe(config, name)
        spec = input_spec(config, summary["dataset"], s.augment, s)
        same = (splits is evaluation.splits and task == evaluation.task
                and recipe == evaluation.recipe and spec == evaluation.input_spec)
        setup = evaluation if same else Setup(
            splits, task, recipe, config.model.name, config.model.dropout, spec,
            config.runtime.steps_per_call, config.train.eval_batch_size,
            prefix=f"generation.{name}", init=config.model.init,
            bn_init=config.model.bn_init, **runtime_options(config))
        if setup.image_shape != evaluation.image_shape:
            if evaluation_shapes is None:  # traced once, for every source that needs it
                evaluation_shapes = param_shapes(evaluation)
            check_transferable(setup, evaluation, evaluation_shapes,
                               f"generation.{name}.dataset")
        levels = (default_levels if s.evaluate_levels is None else set(
            parse_levels(s.evaluate_levels, p.levels, f"generation.{name}.evaluate_levels")))
        trajectory = trajectory_of(config, name)
        branches = parse_branches(inherited(s.branches, config.branches),
                                  f"generation.{name}.branches",
                                  one_shot=trajectory.schedule == "one_shot")
        sources.append(_checked(Source(
            name, _with_trajectory(describe(config, name, summary), trajectory), setup,
            same and trajectory.strategy == "reset", workdir / f"source_{name}", levels,
            branches, summary, trajectory), f"generation.{name}"))
    return _distinct_descriptions(sources)


def _distinct_descriptions(sources: list[Source]) -> list[Source]:
    """Rows, tables and plots tell sources apart by description; two sources that would
    share one (e.g. two one-shot trajectories evaluated at different levels) get their
    config names appended."""
    counts: dict[str, int] = {}
    for s in sources:
        counts[s.description] = counts.get(s.description, 0) + 1
    return [dataclasses.replace(s, description=f"{s.description} ({s.name})")
            if counts[s.description] > 1 else s for s in sources]


def trajectory_of(config: ml_collections.ConfigDict, name: str | None) -> Trajectory:
    """pruning.* with source `name`'s overrides (None keeps pruning.*)."""
    source = config.generation[name] if name is not None else {}
    return Trajectory(**{k: inherited(source.get(k), config.pruning[k])
                         for k in TRAJECTORY_KEYS})


def _with_trajectory(description: str, trajectory: Trajectory) -> str:
    extra = trajectory.describe()
    return f"{description}[{extra}]" if extra else description


def _checked(source: Source, key: str) -> Source:
    """Mask-1/mask-0 actions shape the weights the evaluated ticket trains from, so they
    need a source whose runs are the evaluation's own (same task, data, recipe, reset)."""
    if source.trajectory.changes_weights and not source.is_evaluation:
        raise ConfigError(
            f"{key}.mask1_action/mask0_action: P4's actions apply to a trajectory whose "
            "runs are the evaluated tickets (the evaluation's task, data and recipe, "
            "strategy 'reset'); this source is not")
    return source


def param_shapes(setup: Setup) -> dict[tuple, tuple[int, ...]]:
    """The model's parameter shapes for the setup's input, traced (nothing computed)."""
    key = jax.random.PRNGKey(0)
    sample = jax.ShapeDtypeStruct((1,) + setup.image_shape, jnp.float32)
    shapes = jax.eval_shape(lambda x: setup.model.init({"params": key, "dropout": key}, x,
                                                       train=False)["params"], sample)
    return {tuple(p): tuple(v.shape) for p, v in jax.tree_util.tree_flatten_with_path(shapes)[0]}


def check_transferable(source: Setup, evaluation: Setup,
                       theirs: dict[tuple, tuple[int, ...]], key: str) -> None:
    """A source trained at another input size gives its mask to the evaluation model
    only when every layer but the output has the same shape there (convolutional
    models with global pooling); refused before any training otherwise. `theirs`:
    param_shapes(evaluation)."""
    ours = param_shapes(source)
    for path, shape in ours.items():
        if theirs.get(path) != shape and not _is_output(path):
            raise ConfigError(
                f"{key}: the source's images are {source.image_shape}, the evaluation's "
                f"{evaluation.image_shape}, and the model's parameter "
                f"{jax.tree_util.keystr(path)} has shape {shape} "
                f"vs {theirs.get(path)} between them; use a model with global pooling "
                "(VGG, ResNet) or datasets of one resolution")


def _is_output(path: tuple) -> bool:
    return OUTPUT_LAYER in path_name(path).split("/")


def transfer_weights(generated: PyTree, evaluation_init: PyTree) -> tuple[PyTree, bool]:
    """The generated weights on the evaluation model: the output layer comes from the
    evaluation's own initialization when its shape differs (P1 Sec. 3.3; P0 App. G).
    Returns the weights and whether the head was replaced."""
    replaced = False

    def pick(path, gen, fresh):
        nonlocal replaced
        if np.shape(gen) == np.shape(fresh):
            return gen
        if not _is_output(path):
            raise ValueError(f"the generation and evaluation models differ at "
                             f"{jax.tree_util.keystr(path)} ({np.shape(gen)} vs "
                             f"{np.shape(fresh)}); only the output layer may differ")
        replaced = True
        return fresh

    out = jax.tree_util.tree_map_with_path(pick, generated, evaluation_init)
    return out, replaced


def transfer_mask(mask: PyTree, evaluation_params: PyTree, policy: PrunablePolicy) -> PyTree:
    """The generated mask on the evaluation model: a replaced head is unpruned."""

    def pick(path, m, leaf):
        if m is not None and np.shape(m) == np.shape(leaf):
            return m
        if policy.allows(kernel_kind(path, leaf)):
            return np.ones(np.shape(leaf), dtype=bool)
        return None

    return jax.tree_util.tree_map_with_path(pick, mask, evaluation_params,
                                            is_leaf=lambda x: x is None)
