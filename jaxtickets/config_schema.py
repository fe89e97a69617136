"""Every config key with its default, and the checks that run before any compute.

Experiment configs start from `base_config()` and change values; `validate` rejects
keys that are not here (a typo must not silently fall back to a default), values of
the wrong type, and settings that cannot work, naming the offending key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from typing import Any

import jax
import ml_collections

from jaxtickets import durations
from jaxtickets.errors import ConfigError
from jaxtickets.data.datasets import IMAGE_SHAPES
from jaxtickets.models import abstract_variables, create_model, model_names
from jaxtickets.sparsity.masks import kernel_kind
from jaxtickets.training.optimizers import OPTIMIZERS
from jaxtickets.training.schedules import SCHEDULES

DATASETS = ("mnist", "cifar10")
SOURCES = ("embedded", "tfds")
BRANCHES = ("ticket", "random_reinit")
PRUNING_METHODS = ("layerwise", "global")
RUNTIME_KEY = "runtime"  # settings that never change results; excluded from the identity
SEED_LIMIT = 2 ** 32  # jax.random.PRNGKey keeps only the low 32 bits of a seed (x64 off)


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.num_replicates = 1

    c.model = ml_collections.ConfigDict()
    c.model.name = "lenet300_100"
    c.model.dropout = 0.0

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "mnist"
    c.data.source = "tfds"          # 'embedded': the MNIST subset shipped in the package
    c.data.data_dir = ""            # TFDS data dir; '' means TFDS's default
    c.data.validation_size = 5000   # held out of train for early stopping (P2)
    c.data.train_size = 0           # 0: all remaining training images; else a seeded subset
    c.data.test_size = 0            # 0: the whole test split
    c.data.split_seed = 0           # the held-out split is shared by all replicates
    c.data.pad_crop = 0             # CIFAR augmentation: pad by this many pixels, crop back
    c.data.flip = False             # CIFAR augmentation: random horizontal flip

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 60
    c.train.duration = "50000st"
    c.train.optimizer = "adam"
    c.train.learning_rate = 1.2e-3
    c.train.momentum = 0.9
    c.train.nesterov = False
    c.train.weight_decay = 0.0
    c.train.schedule = "constant"
    c.train.warmup = "0st"
    c.train.decay_at = ""           # step schedule: comma-separated durations, e.g. '80ep,120ep'
    c.train.decay_factor = 0.1
    c.train.eval_every = "100st"
    c.train.eval_batch_size = 1000
    c.train.checkpoint_every = "5000st"

    c.pruning = ml_collections.ConfigDict()
    c.pruning.method = "layerwise"
    c.pruning.levels = 20           # pruning levels after the dense level 0
    c.pruning.rate = 0.2            # global: fraction of the remaining weights per level
    c.pruning.rates = ml_collections.ConfigDict(
        {"conv": 0.1, "dense": 0.2, "output": 0.1, "shortcut": 0.2})  # layer-wise, per kind
    c.pruning.prune = ml_collections.ConfigDict(
        {"conv": True, "dense": True, "output": True, "shortcut": False})
    c.pruning.rewind = "0st"        # '0st' resets to init (P2); '1ep', '2500st', '3.3%', ...
    c.pruning.restart_schedule = False  # True: train T steps from schedule step 0 after rewind
    c.pruning.evaluate_levels = "all"   # 'all', 'morcos' or a list such as '0,3,6'

    c.branches = "ticket,random_reinit"

    c.runtime = ml_collections.ConfigDict()
    c.runtime.log_every_seconds = 10.0
    c.runtime.steps_per_call = 100
    c.runtime.plot = True
    return c


def _check_keys(config: Any, reference: Any, prefix: str) -> None:
    for key in config.keys():
        name = f"{prefix}{key}"
        if key not in reference:
            raise ConfigError(f"{name}: unknown config key")
        value, default = config[key], reference[key]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise ConfigError(f"{name}: expected a group of keys, got {value!r}")
            _check_keys(value, default, name + ".")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}: expected true/false, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: expected a number, got {value!r}")
            if not _finite(value):  # nan passes every `<` check; inf/huge ints overflow
                raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        elif not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(
                default, bool):
            raise ConfigError(f"{name}: expected {type(default).__name__}, got {value!r}")


def _missing_keys(config: Any, reference: Any, prefix: str) -> None:
    """Every key of the schema must be present (a config not built from base_config())."""
    for key, default in reference.items():
        name = f"{prefix}{key}"
        if key not in config:
            raise ConfigError(f"{name}: missing config key (start from base_config())")
        if isinstance(default, ml_collections.ConfigDict):
            _missing_keys(config[key], default, name + ".")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


@functools.lru_cache(maxsize=None)
def model_kinds(model_name: str, dataset: str) -> frozenset[str]:
    """The kinds of the model's kernels (conv, dense, output, shortcut), found by an
    abstract initialization: shapes only, no compute."""
    shapes = abstract_variables(create_model(model_name, 10), IMAGE_SHAPES[dataset])
    leaves = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
    return frozenset(k for k in (kernel_kind(path, leaf) for path, leaf in leaves) if k)


def parse_levels(spec: str, levels: int) -> list[int]:
    """The levels that get results rows and control branches."""
    if spec == "all":
        return list(range(levels + 1))
    if spec == "morcos":  # P0/P1: levels 0..6, then every third level (0.8^k rows)
        return [k for k in range(levels + 1) if k <= 6 or k % 3 == 0]
    try:
        chosen = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError as err:
        raise ConfigError(f"pruning.evaluate_levels: expected 'all', 'morcos' or a list "
                          f"of level numbers such as '0,3,6', got {spec!r}") from err
    if not chosen or chosen[0] < 0 or chosen[-1] > levels:
        raise ConfigError(f"pruning.evaluate_levels: levels must lie in 0..{levels} "
                          f"(pruning.levels={levels}), got {spec!r}")
    return chosen


def parse_branches(spec: str) -> list[str]:
    names = [b.strip() for b in spec.split(",") if b.strip()]
    for name in names:
        if name not in BRANCHES:
            raise ConfigError(f"branches: unknown branch {name!r}; choose from {BRANCHES}")
    if "ticket" not in names:
        raise ConfigError("branches: 'ticket' is required (IMP trains it at every level)")
    return names


def _rate(value: float, key: str) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{key}: a pruning rate must lie strictly between 0 and 1, "
                          f"got {value}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for anything that would fail or mislead later; costs no compute."""
    reference = base_config()
    _check_keys(config, reference, "")
    _missing_keys(config, reference, "")
    for key, value in (("seed", config.seed), ("data.split_seed", config.data.split_seed)):
        if not 0 <= value < SEED_LIMIT:
            raise ConfigError(f"{key}: must lie in 0..{SEED_LIMIT - 1} (JAX keeps 32 bits "
                              f"of a seed), got {value}")
    if config.model.name not in model_names():
        raise ConfigError(f"model.name: unknown model {config.model.name!r}; "
                          f"choose one of {model_names()}")
    if not 0.0 <= config.model.dropout < 1.0:
        raise ConfigError(f"model.dropout: must lie in [0, 1), got {config.model.dropout}")
    if config.data.dataset not in DATASETS:
        raise ConfigError(f"data.dataset: unknown dataset {config.data.dataset!r}; "
                          f"choose one of {DATASETS}")
    if config.data.source not in SOURCES:
        raise ConfigError(f"data.source: unknown source {config.data.source!r}; "
                          f"choose one of {SOURCES}")
    if config.data.source == "embedded" and config.data.dataset != "mnist":
        raise ConfigError("data.source: only mnist is embedded; use 'tfds' for "
                          f"data.dataset={config.data.dataset!r}")
    for key in ("validation_size", "train_size", "test_size", "pad_crop"):
        if config.data[key] < 0:
            raise ConfigError(f"data.{key}: must be >= 0, got {config.data[key]}")
    if config.data.validation_size == 0:
        raise ConfigError("data.validation_size: early stopping needs a held-out "
                          "validation set (P2 uses 5000)")
    if config.num_replicates < 1:
        raise ConfigError(f"num_replicates: must be >= 1, got {config.num_replicates}")
    t = config.train
    if t.batch_size < 1:
        raise ConfigError(f"train.batch_size: must be >= 1, got {t.batch_size}")
    if t.eval_batch_size < 1:
        raise ConfigError(f"train.eval_batch_size: must be >= 1, got {t.eval_batch_size}")
    if t.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer: unknown optimizer {t.optimizer!r}; "
                          f"choose one of {OPTIMIZERS}")
    if t.schedule not in SCHEDULES:
        raise ConfigError(f"train.schedule: unknown schedule {t.schedule!r}; "
                          f"choose one of {SCHEDULES}")
    if t.learning_rate <= 0:
        raise ConfigError(f"train.learning_rate: must be > 0, got {t.learning_rate}")
    if t.weight_decay < 0:
        raise ConfigError(f"train.weight_decay: must be >= 0, got {t.weight_decay}")
    if not 0.0 <= t.momentum < 1.0:
        raise ConfigError(f"train.momentum: must lie in [0, 1), got {t.momentum}")
    if t.nesterov and t.optimizer != "momentum":
        raise ConfigError(f"train.nesterov: only train.optimizer='momentum' uses it, "
                          f"got {t.optimizer!r}")
    if t.decay_factor <= 0:
        raise ConfigError(f"train.decay_factor: must be > 0, got {t.decay_factor}")
    if t.decay_at.strip(" ,") and t.schedule != "step":
        raise ConfigError(f"train.decay_at: only train.schedule='step' uses it, "
                          f"got {t.schedule!r}")
    durations.parse(t.duration, "train.duration")
    for key in ("warmup", "eval_every", "checkpoint_every"):
        durations.parse(t[key], f"train.{key}")
    for part in filter(None, (p.strip() for p in t.decay_at.split(","))):
        durations.parse(part, "train.decay_at")
    durations.parse(config.pruning.rewind, "pruning.rewind")
    p = config.pruning
    if p.method not in PRUNING_METHODS:
        raise ConfigError(f"pruning.method: unknown method {p.method!r}; "
                          f"choose one of {PRUNING_METHODS}")
    if p.levels < 0:
        raise ConfigError(f"pruning.levels: must be >= 0, got {p.levels}")
    if p.method == "global":
        _rate(p.rate, "pruning.rate")
    else:
        for kind, allowed in p.prune.items():
            if allowed:
                _rate(p.rates[kind], f"pruning.rates.{kind}")
    if not any(p.prune.values()):
        raise ConfigError("pruning.prune: at least one kind of layer must be prunable")
    present = model_kinds(config.model.name, config.data.dataset)
    if not any(p.prune[kind] for kind in present):
        raise ConfigError(f"pruning.prune: model.name={config.model.name!r} has no kernel of "
                          f"a prunable kind (it has {', '.join(sorted(present))}; prunable: "
                          f"{', '.join(k for k, v in p.prune.items() if v)})")
    parse_levels(p.evaluate_levels, p.levels)
    parse_branches(config.branches)
    if config.runtime.steps_per_call < 1:
        raise ConfigError(f"runtime.steps_per_call: must be >= 1, got "
                          f"{config.runtime.steps_per_call}")
    if config.runtime.log_every_seconds < 0:
        raise ConfigError(f"runtime.log_every_seconds: must be >= 0, got "
                          f"{config.runtime.log_every_seconds}")


def validate_steps(total: int, rewind: int, eval_every: int, checkpoint_every: int,
                   decay_at: list[int], warmup: int) -> None:
    """Checks the duration settings once they are converted to steps (needs data size)."""
    if total < 1:
        raise ConfigError(f"train.duration: the budget is {total} steps; it must be >= 1")
    budget = f"train.duration: {total} steps"
    if not 0 <= rewind < total:
        raise ConfigError(f"pruning.rewind: the rewind point is step {rewind}; it must lie "
                          f"before the end of training ({budget})")
    if eval_every < 1 or eval_every > total:
        raise ConfigError(f"train.eval_every: {eval_every} steps; must lie in 1..{total} "
                          f"({budget})")
    if checkpoint_every < 1:
        raise ConfigError(f"train.checkpoint_every: {checkpoint_every} steps; must be >= 1")
    if warmup < 0 or warmup > total:
        raise ConfigError(f"train.warmup: {warmup} steps; must lie in 0..{total} ({budget})")
    for b in decay_at:
        if not 0 < b < total:
            raise ConfigError(f"train.decay_at: step {b} lies outside training (0, {total}) "
                              f"({budget})")
    if len(set(decay_at)) != len(decay_at):
        raise ConfigError(f"train.decay_at: two boundaries fall on the same step "
                          f"({sorted(decay_at)}); the schedule would decay only once there")


def identity(config: ml_collections.ConfigDict) -> str:
    """Hash of the canonical config without runtime-only keys (DESIGN invariant 7)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def canonical_json(config: ml_collections.ConfigDict) -> str:
    data = config.to_dict()
    data.pop(RUNTIME_KEY, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
