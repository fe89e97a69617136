"""Training objectives by name: what a batch becomes, how many outputs the head has, the loss.

A ticket is generated on one task and evaluated on another (P0 Sec. 3.1): the train step
is written once against the `Task` interface, so labels, RotNet, Exemplar and S4L
semi-supervision share every other part of training (masks, optimizer, checkpoints).

The names a config may give (`evaluation.task`, `generation.NAME.task`) are a registry
of `TaskKind`s: the objective to train and, for a source, what the task does to the
source's training split (shuffled_labels permutes the labels, semisup hides most of
them). Adding a task is its module (a `Task` subclass) and one `register` line, here
or in your own code (docs/extending.md); nothing in the driver or the schema names one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from jaxtickets.errors import ConfigError
from jaxtickets.registry import Registry
from jaxtickets.tasks.base import LabelsTask, Task
from jaxtickets.tasks.exemplar import ExemplarTask
from jaxtickets.tasks.rotnet import RotNetTask
from jaxtickets.tasks.semisup import SemiSupervisedTask

ROTATIONS = ("one", "all")


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """A task name's objective and its effect on a source's data.

    objective(rotations) -> Task. select(train split, source config, seed) -> the split
    trained on (None: unchanged), with `seed_stream` its own stream of data.split_seed.
    describe(source config) -> what a source's description adds ('10%labelled').
    counts_labelled: the source's summary counts the images that keep a label.
    source_keys: the keys of a source (generation.NAME.*) that only this task and others
    declaring them read ('rotations', 'labelled_fraction'); set for another task, they
    are refused (config_schema).
    """

    name: str
    objective: Callable[[str], Task]
    select: Optional[Callable[[Any, Any, int], Any]] = None
    seed_stream: int = 0
    describe: Optional[Callable[[Any], list[str]]] = None
    counts_labelled: bool = False
    source_keys: tuple[str, ...] = ()


_REGISTRY: Registry[TaskKind] = Registry("task")


def register(kind: TaskKind) -> TaskKind:
    return _REGISTRY.add(kind.name, kind)


def unregister(name: str) -> None:
    _REGISTRY.remove(name)


def names() -> tuple[str, ...]:
    return _REGISTRY.names()


def kinds() -> tuple[TaskKind, ...]:
    return tuple(_REGISTRY.values())


def get(name: str, key: str = "task") -> TaskKind:
    return _REGISTRY.get(name, key)


def create_task(name: str, rotations: str = "one") -> Task:
    """The objective of task `name`; `shuffled_labels` is the labels task on permuted
    labels (a data transform, see data/selections.py)."""
    if rotations not in ROTATIONS:
        raise ConfigError(f"rotations: expected one of {ROTATIONS}, got {rotations!r}")
    return get(name).objective(rotations)


def _shuffle(train, source, seed):
    from jaxtickets.data import selections

    return selections.shuffled_labels(train, seed)


def _hide_labels(train, source, seed):
    from jaxtickets.data import selections

    return selections.mark_unlabelled(train, source.labelled_fraction, seed)


# Seed streams 0-2 select classes, halves and samples (experiment/sources.py).
register(TaskKind("labels", lambda rotations: LabelsTask()))
register(TaskKind("shuffled_labels", lambda rotations: LabelsTask(), _shuffle, 3))
register(TaskKind("rotnet", lambda rotations: RotNetTask(all_rotations=rotations == "all"),
                  source_keys=("rotations",)))
register(TaskKind("exemplar", lambda rotations: ExemplarTask()))
register(TaskKind("semisup",
                  lambda rotations: SemiSupervisedTask(all_rotations=rotations == "all"),
                  _hide_labels, 4,
                  describe=lambda s: [f"{100 * s.labelled_fraction:g}%labelled"],
                  counts_labelled=True, source_keys=("rotations", "labelled_fraction")))
TASKS = names()  # the built-in names, for messages and tests
