"""Training objectives by name: what a batch becomes, how many outputs the head has, the loss.

A ticket is generated on one task and evaluated on another (P0 Sec. 3.1): the train step
is written once against the `Task` interface, so labels, RotNet, Exemplar and S4L
semi-supervision share every other part of training (masks, optimizer, checkpoints).
"""

from __future__ import annotations

from jaxtickets.errors import ConfigError
from jaxtickets.tasks.base import LabelsTask, Task
from jaxtickets.tasks.exemplar import ExemplarTask
from jaxtickets.tasks.rotnet import RotNetTask
from jaxtickets.tasks.semisup import SemiSupervisedTask

TASKS = ("labels", "shuffled_labels", "rotnet", "exemplar", "semisup")
ROTATIONS = ("one", "all")


def create_task(name: str, rotations: str = "one") -> Task:
    """The objective; `shuffled_labels` is the labels task on permuted labels (a data
    transform, see data/selections.py)."""
    if rotations not in ROTATIONS:
        raise ConfigError(f"rotations: expected one of {ROTATIONS}, got {rotations!r}")
    if name in ("labels", "shuffled_labels"):
        return LabelsTask()
    if name == "rotnet":
        return RotNetTask(all_rotations=rotations == "all")
    if name == "exemplar":
        return ExemplarTask()
    if name == "semisup":
        return SemiSupervisedTask(all_rotations=rotations == "all")
    raise ConfigError(f"task: unknown task {name!r}; choose one of {TASKS}")
