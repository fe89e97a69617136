"""Ticket sources: where each ticket's mask and rewind weights are generated (P0, P1).

A source is a task on a selection of some dataset with a recipe. When all three equal
the evaluation's, the generation run *is* the evaluation run (P2's IMP on labels) and
nothing is trained twice; otherwise every evaluated level trains the ticket again on
the evaluation task, with a fresh output head where the output size differs.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxtickets.config_schema import TRAJECTORY_KEYS, parse_branches, parse_levels
from jaxtickets.errors import ConfigError
from jaxtickets.data import selections
from jaxtickets.data.pipeline import StreamedSplits
from jaxtickets.data.datasets import IMAGE_SHAPES, Splits, input_shape, load_splits, normalization
from jaxtickets.experiment.setup import Setup, evaluation_recipe, source_recipe
from jaxtickets.models.layers import OUTPUT_LAYER
from jaxtickets.sparsity.masks import PrunablePolicy, kernel_kind, path_name
from jaxtickets.tasks import create_task
from jaxtickets.training.steps import InputSpec

PyTree = Any
IMPLICIT = "labels"  # the name of the single source of a config without `generation`
# Streams for the selections' seeds, so each draws independently of the others.
CLASS_STREAM, HALF_STREAM, SAMPLE_STREAM, SHUFFLE_STREAM, LABELLED_STREAM = range(5)


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """How a source's masks follow each other (pruning.* or the source's overrides)."""

    schedule: str = "iterative"     # or 'one_shot': level L prunes the dense run at once
    strategy: str = "reset"         # or 'continue': train on from the pruned final weights
    criterion: str = "large_final"
    mask1_action: str = "rewind"
    mask0_action: str = "zero"

    @property
    def changes_weights(self) -> bool:
        return self.mask1_action != "rewind" or self.mask0_action != "zero"

    def describe(self) -> str:
        """The non-default choices, e.g. 'one_shot/movement' ('' for plain IMP)."""
        defaults = Trajectory()
        return "/".join(getattr(self, f) for f in TRAJECTORY_KEYS
                        if getattr(self, f) != getattr(defaults, f))


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
    trajectory: Trajectory = Trajectory()

    def trains_ticket(self, level: int) -> bool:
        """Whether the level's ticket is trained: always the dense level 0 (the trained
        baseline); other levels unless a one-shot source left 'ticket' out."""
        return level == 0 or "ticket" in self.branches


def _seed(split_seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([split_seed, stream]).generate_state(1)[0])


def input_spec(config: ml_collections.ConfigDict, dataset: str, augment: bool) -> InputSpec:
    mean, std = selections.adapted_normalization(
        normalization(dataset, config.data.normalize),
        input_shape(config.data.dataset, config.data.image_size)[2])
    d = config.data
    return InputSpec(mean, std, d.pad_crop if augment else 0, d.flip and augment,
                     config.model.compute_dtype)


def with_half(splits: Splits, which: str, split_seed: int) -> Splits:
    """The splits with training images restricted to stratified half `which` ('' = all);
    'a' and 'b' use one seed, so they are complementary."""
    if not which:
        return splits
    return dataclasses.replace(splits, train=selections.half(
        splits.train, which, _seed(split_seed, HALF_STREAM)))


def evaluation_setup(config: ml_collections.ConfigDict, splits: Splits) -> Setup:
    return Setup(splits, create_task(config.evaluation.task),
                 evaluation_recipe(config), config.model.name, config.model.dropout,
                 input_spec(config, config.data.dataset, True),
                 config.runtime.steps_per_call, config.train.eval_batch_size,
                 fsdp=config.runtime.fsdp)


def source_splits(config: ml_collections.ConfigDict, name: str, evaluation: Splits,
                  full: Splits) -> tuple[Splits, dict]:
    """The generation data of source `name` and a summary of what was selected.
    `full` is the evaluation dataset before data.half; `evaluation` after it."""
    s, d = config.generation[name], config.data
    dataset = s.dataset or d.dataset
    if isinstance(evaluation, StreamedSplits):  # no selections (config_schema refuses them)
        return evaluation, {"dataset": dataset, "train_images": len(evaluation.train),
                            "classes": evaluation.num_classes,
                            "labelled_images": len(evaluation.train)}
    if dataset == d.dataset:
        splits = evaluation if s.half == d.half else with_half(full, s.half, d.split_seed)
    else:
        splits = load_splits(dataset, d.source, d.data_dir, d.validation_size, 0, 0,
                             d.split_seed)
        splits = selections.adapt_splits(splits, IMAGE_SHAPES[d.dataset])
        splits = with_half(splits, s.half, d.split_seed)
    splits = selections.class_subset(splits, s.class_fraction, _seed(d.split_seed, CLASS_STREAM))
    train = selections.sample_fraction(splits.train, s.sample_fraction,
                                       _seed(d.split_seed, SAMPLE_STREAM))
    if s.task == "shuffled_labels":
        train = selections.shuffled_labels(train, _seed(d.split_seed, SHUFFLE_STREAM))
    if s.task == "semisup":
        train = selections.mark_unlabelled(train, s.labelled_fraction,
                                           _seed(d.split_seed, LABELLED_STREAM))
    if train is not splits.train:
        splits = dataclasses.replace(splits, train=train)
    summary = {"dataset": dataset, "train_images": len(splits.train),
               "classes": splits.num_classes,
               "labelled_images": int(np.sum(splits.train.labels >= 0))}
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
    if s.task == "semisup":
        parts.append(f"{100 * s.labelled_fraction:g}%labelled")
    if s.optimizer and s.optimizer != config.train.optimizer:
        parts.append(s.optimizer)
    dataset = summary["dataset"] + (f"{s.half}" if s.half else "")  # P1's 'cifar10a'
    return f"{s.task}:{dataset}" + "".join(f"/{p}" for p in parts)


def build_sources(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                  evaluation: Setup, full: Splits) -> list[Source]:
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
    sources = []
    for name in config.generation.keys():
        s = config.generation[name]
        splits, summary = source_splits(config, name, evaluation.splits, full)
        task = create_task(s.task, s.rotations)
        recipe = source_recipe(config, name)
        spec = input_spec(config, summary["dataset"], s.augment)
        same = (splits is evaluation.splits and task == evaluation.task
                and recipe == evaluation.recipe and spec == evaluation.input_spec)
        setup = evaluation if same else Setup(
            splits, task, recipe, config.model.name, config.model.dropout, spec,
            config.runtime.steps_per_call, config.train.eval_batch_size,
            prefix=f"generation.{name}", fsdp=config.runtime.fsdp)
        levels = (set(parse_levels(s.evaluate_levels, p.levels)) if s.evaluate_levels
                  else default_levels)
        trajectory = trajectory_of(config, name)
        branches = parse_branches(s.branches or config.branches, f"generation.{name}.branches",
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
    """pruning.* with source `name`'s overrides ('' keeps pruning.*)."""
    source = config.generation[name] if name is not None else {}
    return Trajectory(**{k: source.get(k) or config.pruning[k] for k in TRAJECTORY_KEYS})


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
