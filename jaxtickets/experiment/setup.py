"""One training setup: data on the device, task, model, optimizer and compiled steps.

An experiment has one setup for the evaluation (data.*, train.*, evaluation.task) and
one per ticket source whose task, data or recipe differs (generation.NAME.*). Each
converts its own durations with its own data size, batch and budget (P0 App. B), so
"1 epoch" or "3.3%" means the same thing to every setup while the steps differ.
"""

from __future__ import annotations

import copy
import dataclasses
import sys

import flax.linen as nn
import ml_collections

from jaxtickets import config_values, durations
from jaxtickets.config_schema import validate_steps
from jaxtickets.data.datasets import Splits
from jaxtickets.errors import ConfigError
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.parallel import make_mesh
from jaxtickets.tasks import Task
from jaxtickets.training.batches import put_split
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.schedules import build_schedule
from jaxtickets.training.steps import InputSpec, make_steps
from jaxtickets.training import backend_defaults, freezing


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe as written in the config (durations still with units)."""

    batch_size: int
    duration: str
    optimizer: str
    learning_rate: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    warmup: str
    decay_at: tuple[str, ...]
    decay_factor: float
    eval_every: str
    checkpoint_every: str
    rewind: str
    restart_schedule: bool
    freeze: tuple[str, ...] = ()         # parameter groups frozen (training/freezing.py)
    freeze_except: tuple[str, ...] = ()  # path patterns trained even so


def evaluation_recipe(config: ml_collections.ConfigDict) -> Recipe:
    t = config.train
    return Recipe(t.batch_size, t.duration, t.optimizer, t.learning_rate, t.momentum,
                  t.nesterov, t.weight_decay, t.schedule, t.warmup,
                  tuple(config_values.durations(t.decay_at, "train.decay_at")),
                  t.decay_factor, t.eval_every, t.checkpoint_every, config.pruning.rewind,
                  config.pruning.restart_schedule,
                  tuple(config_values.names(t.freeze, "train.freeze")),
                  tuple(config_values.names(t.freeze_except, "train.freeze_except")))


def source_recipe(config: ml_collections.ConfigDict, name: str) -> Recipe:
    """The evaluation recipe with source `name`'s overrides (None keeps it)."""
    s = config.generation[name]
    base = evaluation_recipe(config)
    changes = {k: s[k] for k in ("optimizer", "duration", "warmup", "rewind", "learning_rate",
                                 "weight_decay", "batch_size") if s[k] is not None}
    if s.decay_at is not None:
        changes["decay_at"] = tuple(config_values.durations(s.decay_at,
                                                            f"generation.{name}.decay_at"))
    if changes.get("optimizer", base.optimizer) != "momentum":
        changes["nesterov"] = False
    return dataclasses.replace(base, **changes)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A run's durations, converted to steps once (docs/design.md, invariant 6)."""

    total: int
    rewind: int
    eval_every: int
    checkpoint_every: int
    steps_per_epoch: int
    rewind_units: dict

    def start_after_rewind(self, restart: bool) -> int:
        return 0 if restart else self.rewind


def convert_recipe(recipe: Recipe, train_size: int, prefix: str = "train"
                   ) -> tuple[Schedule, list[int], int]:
    steps_per_epoch = train_size // recipe.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"{prefix}.batch_size: {recipe.batch_size} exceeds the "
                          f"{train_size} training images")
    total = durations.total_steps(recipe.duration, steps_per_epoch, recipe.batch_size,
                                  f"{prefix}.duration")
    conv = durations.StepConverter(steps_per_epoch, recipe.batch_size, total)
    rewind = conv.to_steps(recipe.rewind, "pruning.rewind" if prefix == "train"
                           else f"{prefix}.rewind")
    eval_every = (total if recipe.eval_every == durations.AT_END
                  else conv.to_steps(recipe.eval_every, "train.eval_every"))
    ckpt = conv.to_steps(recipe.checkpoint_every, "train.checkpoint_every")
    decay_at = [conv.to_steps(p, f"{prefix}.decay_at") for p in recipe.decay_at]
    warmup = conv.to_steps(recipe.warmup, f"{prefix}.warmup")
    validate_steps(total, rewind, eval_every, ckpt, decay_at, warmup, prefix)
    return (Schedule(total, rewind, eval_every, ckpt, steps_per_epoch, conv.describe(rewind)),
            decay_at, warmup)


def is_streamed(splits: object) -> bool:
    """Whether `splits` are streamed from disk (data/pipeline.py). Asked without importing
    the pipeline, which needs Grain and TFDS: if it was never imported, no split can come
    from it, and in-memory runs then work without either installed."""
    pipeline = sys.modules.get("jaxtickets.data.pipeline")
    return pipeline is not None and isinstance(splits, pipeline.StreamedSplits)


class Setup:
    """Everything needed to train a masked network on one task and data."""

    def __init__(self, splits: Splits, task: Task, recipe: Recipe,
                 model_name: str, dropout: float, input_spec: InputSpec,
                 steps_per_call: int, eval_batch_size: int, prefix: str = "train",
                 fsdp: bool = False, cpu_convolutions: str = "ynnpack",
                 init: str = "default", bn_init: str = "default"):
        self.splits = splits
        self.task = task
        self.recipe = recipe
        self.input_spec = input_spec
        self.schedule, decay_at, warmup = convert_recipe(recipe, len(splits.train), prefix)
        self.mesh = make_mesh(recipe.batch_size)
        self.eval_batch = -(-eval_batch_size // self.mesh.size) * self.mesh.size
        self.num_outputs = task.outputs(splits.num_classes)
        self.model = create_model(model_name, self.num_outputs, dropout)
        # model.init: the kernel initializer a run's starting weights are drawn with
        # (models/initializers.py); 'default' keeps the model's own.
        self.init = init
        # model.bn_init: how BatchNorm scales and biases start, likewise.
        self.bn_init = bn_init
        self._learning_rate = build_schedule(recipe.schedule, recipe.learning_rate,
                                             self.schedule.total, warmup, decay_at,
                                             recipe.decay_factor)
        self._steps_per_call = backend_defaults.steps_per_call(
            steps_per_call, backend_defaults.platform(self.mesh),
            backend_defaults.has_convolutions(self.model, splits.image_shape))
        self.fsdp = fsdp
        self.cpu_convolutions = cpu_convolutions
        self.steps = self._compile(self.model)
        if is_streamed(splits):  # read from disk batch by batch
            self.train, self.validation, self.test = (splits.train, splits.validation,
                                                      splits.test)
            return
        self.train = put_split(splits.train.images, splits.train.labels, self.mesh)
        self.validation = put_split(splits.validation.images, splits.validation.labels,
                                    self.mesh)
        self.test = put_split(splits.test.images, splits.test.labels, self.mesh)

    def _compile(self, model: nn.Module):
        """The optimizer and compiled steps for `model`: which parameters train
        (train.freeze) depends on the model's layers, so both are built per model."""
        self.frozen = freezing.frozen_leaves(
            abstract_variables(model, self.splits.image_shape), self.recipe.freeze,
            self.recipe.freeze_except, f"model {type(model).__name__}")
        tx = build_optimizer(self.recipe.optimizer, self._learning_rate,
                             self.recipe.weight_decay, self.recipe.momentum,
                             nesterov=self.recipe.nesterov)
        self.tx = tx if self.frozen is None else freezing.freeze_updates(tx, self.frozen)
        return make_steps(model, self.tx, self.input_spec, self.mesh, self._steps_per_call,
                          task=self.task, learning_rate=self._learning_rate, fsdp=self.fsdp,
                          cpu_convolutions=self.cpu_convolutions, frozen=self.frozen)

    def with_model(self, model: nn.Module) -> "Setup":
        """The same data, task and recipe with another model (P3's small-dense network);
        the data already on the device are shared, the steps compiled anew; the kernel
        and BatchNorm initializers stay, so the other model starts from weights drawn
        alike."""
        other = copy.copy(self)
        other.model = model
        other.steps = other._compile(model)
        return other

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.splits.image_shape)

    @property
    def rewind_start(self) -> int:
        """Where training from rewind weights starts in this setup's schedule."""
        return self.schedule.start_after_rewind(self.recipe.restart_schedule)

    def start_step(self, level: int) -> int:
        return 0 if level == 0 else self.rewind_start


def describe_rewind(setup: Setup) -> dict:
    return {"step": setup.schedule.rewind, **setup.schedule.rewind_units}
