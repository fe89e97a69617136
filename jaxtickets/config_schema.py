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
import os
from typing import Any

import jax
import ml_collections

from jaxtickets import branches, compilation_cache, config_values, durations
from jaxtickets.errors import ConfigError
from jaxtickets.data.datasets import (IMAGE_SHAPES, NORMALIZE_MODES, NUM_CLASSES,
                                      STREAMED_CLASSES, input_shape, num_classes)
from jaxtickets.data.selections import HALVES, per_class_count
from jaxtickets.import_paths import is_import_path, looks_dotted, missing_colon
from jaxtickets.models import abstract_variables, create_model, model_names
from jaxtickets.models.initializers import (DEFAULT, batchnorm_modules, bn_init_names,
                                            init_names)
from jaxtickets.sparsity.masks import kernel_kind
from jaxtickets import tasks
from jaxtickets.tasks import ROTATIONS
from jaxtickets.training import freezing
from jaxtickets.training.optimizers import OPTIMIZER_KEYS, OPTIMIZERS
from jaxtickets.training.schedules import SCHEDULE_KEYS, SCHEDULES
from jaxtickets.training.steps import COMPUTE_DTYPES
from jaxtickets.training.xla_cpu import check_cpu_convolutions

DATASETS = tuple(NUM_CLASSES) + tuple(STREAMED_CLASSES)  # in memory, then streamed
SOURCES = ("embedded", "tfds", "npz")
PRUNING_METHODS = ("layerwise", "global")
PRUNING_SCHEDULES = ("iterative", "one_shot")
STRATEGIES = ("reset", "continue")
# Per-trajectory settings a ticket source may override ('' = as pruning.*).
TRAJECTORY_KEYS = ("schedule", "strategy", "criterion", "mask1_action", "mask0_action")
RUNTIME_KEY = "runtime"  # settings that never change results; excluded from the identity
SEED_LIMIT = 2 ** 32  # jax.random.PRNGKey keeps only the low 32 bits of a seed (x64 off)


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.num_replicates = 1

    c.model = ml_collections.ConfigDict()
    c.model.name = "lenet300_100"
    c.model.dropout = 0.0
    # 'bfloat16': the forward and backward passes compute in bf16; parameters, masks,
    # gradients, optimizer state and BN statistics stay float32 (mixed precision).
    c.model.compute_dtype = "float32"
    # Weight (conv and dense kernel) initialization: 'default' keeps each model's own
    # (models/*.py), or one initializer for every kernel (models/initializers.py), e.g.
    # 'glorot_normal' for P2's ResNet-20.
    c.model.init = "default"
    # BatchNorm scale and bias: 'default' keeps each model's own (scale 1, bias 0), or
    # 'fixed', 'ones', 'uniform', 'positive_negative' as OpenLTH's (models/initializers.py).
    c.model.bn_init = "default"

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "mnist"
    c.data.source = "tfds"          # 'embedded': the MNIST subset shipped in the package
    c.data.data_dir = ""            # TFDS data dir; '' means TFDS's default
    c.data.npz_file = ""            # source 'npz': .npz with x_/jpeg_ train/test (no TFDS)
    # Training images held out for early stopping (P2: 5000). 0: none held out (P0, P1,
    # P3 train on every image): no validation pass, early stopping takes the last
    # evaluation, and each summary's early_stop_basis says which rule chose.
    c.data.validation_size = 5000
    c.data.train_size = 0           # 0: all remaining training images; else a seeded subset
    c.data.test_size = 0            # 0: the whole test split
    c.data.split_seed = 0           # the held-out split is shared by all replicates
    c.data.pad_crop = 0             # CIFAR augmentation: pad by this many pixels, crop back
    c.data.flip = False             # CIFAR augmentation: random horizontal flip
    c.data.half = ""                # 'a' or 'b': train on a stratified half (P1's CIFAR-10a/b)
    c.data.normalize = "standard"   # per-channel mean/std; 'unit': pixels / 255 (P4's code)
    # Streamed datasets (ImageNet, Places365): the crop side, and Exemplar's small random
    # rotations (degrees, uniform in +- this) before the random-resized crop.
    c.data.image_size = 224
    c.data.rotation_degrees = 0.0
    # Streamed datasets: colour jitter (brightness, contrast, saturation; data/augment.py)
    # on the evaluation's training images, and on a source's unless it sets its own; never
    # on evaluation images, nor on in-memory datasets (augmented on the device). Off: P0
    # App. A jitters the 1% subsets only (per source; Exemplar jitters on the device).
    c.data.color_jitter = False
    # Label noise: this fraction of the evaluation's training labels (after data.half),
    # chosen by data.split_seed, permuted among themselves; 1.0 is the shuffled_labels
    # task's labels (data/selections.py random_labels). Validation and test untouched.
    c.data.random_labels_fraction = 0.0
    # Blur: every image of data.dataset averaged over factor x factor blocks and
    # upsampled back (nearest); 1: off. The image sides must be divisible by it.
    c.data.blur_factor = 1

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
    c.train.decay_at = ()           # step schedule: durations, e.g. ('80ep', '120ep')
    c.train.decay_factor = 0.1
    c.train.eval_every = "100st"
    c.train.eval_batch_size = 1000
    c.train.checkpoint_every = "5000st"
    # Parameter groups that keep their starting values (training/freezing.py): names from
    # 'batchnorm', 'output', 'others', 'all'; e.g. ('others', 'output') trains only the
    # BatchNorm parameters. Patterns in freeze_except ('hidden_1/*') stay trainable.
    c.train.freeze = ()
    c.train.freeze_except = ()

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
    # The levels with result rows and controls: level numbers such as (0, 3, 6), or one
    # name: ('all',), or ('morcos',) for levels 0..6 and every third after (P0, P1).
    c.pruning.evaluate_levels = ("all",)
    c.pruning.schedule = "iterative"    # 'one_shot': level L prunes the dense run at once
    c.pruning.one_shot_spacing = "geometric"  # remaining (1-rate)^L, or 'linear': 1-L*rate
    c.pruning.strategy = "reset"        # 'continue': P2 App. B strategy 2 (no reset)
    c.pruning.criterion = "large_final"  # P4's mask criteria (sparsity/criteria.py)
    c.pruning.mask1_action = "rewind"   # P4 Sec. 3: what the kept weights start from
    c.pruning.mask0_action = "zero"     # P4 Sec. 4: zero, frozen_init or hybrid
    c.pruning.first_conv_layers = 0     # n > 0: only the first n conv layers (P0 Sec. 4.1)
    c.pruning.natural_zero_threshold = 1.1920928955078125e-07  # random_adjusted (P0 4.5)
    # Control branches trained from scratch: from step 0 for the full train.duration with
    # the schedule from its start (P3's RR and SDT), not from the rewind step like the
    # ticket. Branch names, e.g. ('random_reinit', 'small_dense'); () for none.
    c.pruning.controls_from_scratch = ()
    # Independent draws of each random control branch per level (P2: three random
    # reinitializations per trial), each its own run and row ('draw' 0..N-1).
    c.pruning.control_draws = 1

    c.branches = ("ticket", "random_reinit")  # the runs at each evaluated level

    # The evaluation: data.* and train.* are its dataset and recipe; this is its task.
    c.evaluation = ml_collections.ConfigDict()
    c.evaluation.task = "labels"
    # Ticket sources by name, each a group of source_defaults() keys (add_source()).
    # Empty: the ticket is generated by the evaluation itself (P2's IMP on labels).
    c.generation = ml_collections.ConfigDict()

    # Learned supermasks (P4 Sec. 5.1): the 'learned_supermask' branch at level 0.
    c.supermask = ml_collections.ConfigDict()
    c.supermask.logit_inits = ()    # constants, one run each, e.g. (-1, 0, 1)
    c.supermask.steps = 2000
    c.supermask.learning_rate = 100.0
    c.supermask.momentum = 0.9
    c.supermask.batch_size = 128
    c.supermask.eval_every = 100
    c.supermask.eval_samples = 10

    c.runtime = ml_collections.ConfigDict()
    c.runtime.log_every_seconds = 10.0
    # Train steps per call of the compiled chunk; 0 (auto): 1 for convolutional models on
    # CPU, 100 elsewhere (training/backend_defaults.py). Never changes a logged number.
    c.runtime.steps_per_call = 0
    c.runtime.plot = True
    c.runtime.reader_threads = 0    # streamed datasets: JPEG-decoding threads; 0: one per core
    # Shard parameters, masks and optimizer state over the devices (FSDP) instead of
    # replicating them; like the device count, it can change float rounding only.
    c.runtime.fsdp = False
    # XLA:CPU's convolution library, 'ynnpack' (XLA's default) or 'eigen' (faster for
    # Conv-2/4/6 here, slower for ResNets: training/xla_cpu.py). Float rounding only.
    c.runtime.cpu_convolutions = "ynnpack"
    # Independent runs (replicates, a ticket and its controls, ...) trained side by side
    # as lanes of one program (experiment/lanes.py): 'auto' (as many as the device's
    # memory holds on an accelerator; 1 on CPU, where lanes are slower), a cap such as
    # '8', or '1' to train runs one after another. Float rounding only.
    c.runtime.lanes = "auto"
    # JAX's persistent compilation cache (compilation_cache.py): 'auto' (one directory per
    # user: $JAXTICKETS_CACHE_DIR/xla, else ~/.cache/jaxtickets/xla), 'off', or a path.
    # Runs after the first skip most XLA compile time; never changes a result.
    c.runtime.compilation_cache = "auto"
    return c


def source_defaults() -> ml_collections.ConfigDict:
    """One ticket source: its task, data selection and recipe. A key left None takes
    the evaluation's value (data.*, train.*, pruning.*, branches)."""
    s = ml_collections.ConfigDict()
    s.task = "labels"          # labels, shuffled_labels, rotnet, exemplar, semisup
    s.dataset = _inherit(str)  # another dataset (images adapted to the model's input)
    s.sample_fraction = 1.0    # per-class fraction of the training images
    s.class_fraction = 1.0     # fraction of the classes, all their images
    s.half = ""                # 'a' or 'b': stratified halves (P1's CIFAR-10a/10b)
    s.labelled_fraction = 0.1  # semisup: per-class fraction that keeps its labels
    s.rotations = "one"        # rotnet/semisup: one random rotation per image, or 'all'
    s.augment = True           # False: no pad-crop/flip (P0's shuffled-label runs)
    s.pad_crop = _inherit(int)  # None: data.pad_crop (0 for a streamed dataset: host-cropped)
    s.flip = _inherit(bool)     # None: data.flip (off for a streamed dataset)
    s.color_jitter = _inherit(bool)  # streamed training images; None: data.color_jitter
    s.optimizer = _inherit(str)
    s.learning_rate = _inherit(float)
    s.weight_decay = _inherit(float)
    s.batch_size = _inherit(int)
    s.duration = _inherit(str)
    s.warmup = _inherit(str)
    s.decay_at = _inherit(tuple)
    s.rewind = _inherit(str)   # in this source's own units and budget (P0 Table 1)
    s.evaluate_levels = _inherit(tuple)
    s.branches = _inherit(tuple)
    for key in TRAJECTORY_KEYS:  # None: pruning.<key>
        s[key] = _inherit(str)
    return s


def _inherit(kind: type) -> ml_collections.FieldReference:
    """A source key that holds None (the evaluation's value) until set to a `kind`."""
    return ml_collections.config_dict.placeholder(kind)


@functools.lru_cache(maxsize=1)
def _defaults() -> tuple[dict, dict]:
    return base_config().to_dict(), source_defaults().to_dict()


def default_of(dotted: str) -> Any:
    """The default of key `dotted` ('pruning.rate'; a ticket source's key
    'generation.NAME.KEY' has source_defaults()'s). KeyError if there is no such key."""
    config, source = _defaults()
    parts = dotted.split(".")
    node, path = (source, parts[2:]) if parts[0] == "generation" else (config, parts)
    for part in path:
        node = node[part]
    return node


def add_source(config: ml_collections.ConfigDict, name: str, **values) -> None:
    """Adds generation source `name` with source_defaults() changed by `values`."""
    source = source_defaults()
    for key, value in values.items():
        if key not in source:
            raise ConfigError(f"generation.{name}.{key}: unknown source key")
        try:
            source[key] = value
        except TypeError as err:  # ml_collections keeps each key's type
            raise ConfigError(f"generation.{name}.{key}: expected "
                              f"{source.get_type(key).__name__}, got {value!r}") from err
    config.generation[name] = source


def _check_sources(config: ml_collections.ConfigDict) -> None:
    reference = source_defaults()
    for name in config.generation.keys():
        source = config.generation[name]
        if not isinstance(source, ml_collections.ConfigDict):
            raise ConfigError(f"generation.{name}: expected a group of source keys "
                              "(use add_source)")
        _check_keys(source, reference, f"generation.{name}.")
        _missing_keys(source, reference, f"generation.{name}.")


def _check_keys(config: Any, reference: Any, prefix: str) -> None:
    for key in config.keys():
        if prefix == "" and key == "generation":
            if not isinstance(config[key], ml_collections.ConfigDict):
                raise ConfigError(f"generation: expected a group of ticket sources "
                                  f"(add_source), got {config[key]!r}")
            continue  # free source names, each checked by _check_sources
        name = f"{prefix}{key}"
        if key not in reference:
            raise ConfigError(f"{name}: unknown config key")
        value, default = config[key], reference[key]
        if default is None:  # a source key inheriting the evaluation's value
            _check_inheriting(value, reference.get_type(key), name)
        elif isinstance(default, ml_collections.ConfigDict):
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
        elif isinstance(default, tuple):
            if not isinstance(value, (tuple, list)):
                raise ConfigError(f"{name}: expected a list (or tuple), got {value!r}")
        elif not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(
                default, bool):
            raise ConfigError(f"{name}: expected {type(default).__name__}, got {value!r}")


def _check_inheriting(value: Any, kind: type, name: str) -> None:
    if value is None:
        return
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is tuple and isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ConfigError(f"{name}: expected {kind.__name__} (or None: as the evaluation), "
                          f"got {value!r}")
    if kind is float and not _finite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")


def _missing_keys(config: Any, reference: Any, prefix: str) -> None:
    """Every key of the schema must be present (a config not built from base_config())."""
    for key, default in reference.items():
        name = f"{prefix}{key}"
        if key not in config:
            raise ConfigError(f"{name}: missing config key (start from base_config())")
        if isinstance(default, ml_collections.ConfigDict) and name != "generation":
            _missing_keys(config[key], default, name + ".")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


@functools.lru_cache(maxsize=None)
def model_kinds(model_name: str, dataset: str, image_size: int = 224) -> frozenset[str]:
    """The kinds of the model's kernels (conv, dense, output, shortcut), found by an
    abstract initialization: shapes only, no compute."""
    shapes = abstract_variables(create_model(model_name, 10),
                                input_shape(dataset, image_size))
    leaves = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
    return frozenset(k for k in (kernel_kind(path, leaf) for path, leaf in leaves) if k)


@functools.lru_cache(maxsize=None)
def batchnorm_layers(model_name: str, dataset: str, image_size: int = 224) -> int:
    """How many BatchNorm layers the model has (modules with batch_stats), found by an
    abstract initialization: shapes only, no compute."""
    variables = abstract_variables(create_model(model_name, 10),
                                   input_shape(dataset, image_size))
    return len(batchnorm_modules(variables.get("batch_stats", {})))


def parse_levels(spec: tuple, levels: int, key: str = "pruning.evaluate_levels") -> list[int]:
    """The levels that get results rows and control branches."""
    listed = config_values.items(spec, key)
    if listed == ["all"]:
        return list(range(levels + 1))
    if listed == ["morcos"]:  # P0/P1: levels 0..6, then every third level (0.8^k rows)
        return [k for k in range(levels + 1) if k <= 6 or k % 3 == 0]
    try:
        if any(isinstance(v, (bool, float)) for v in listed):
            raise ValueError
        chosen = sorted({int(v) for v in listed})
    except ValueError as err:
        raise ConfigError(f"{key}: expected ('all',), ('morcos',) or level numbers such "
                          f"as (0, 3, 6), got {spec!r}") from err
    if not chosen or chosen[0] < 0 or chosen[-1] > levels:
        raise ConfigError(f"{key}: levels must lie in 0..{levels} "
                          f"(pruning.levels={levels}), got {spec!r}")
    return chosen


def _rate(value: float, key: str) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{key}: a pruning rate must lie strictly between 0 and 1, "
                          f"got {value}")


def _check_trajectory(values: dict, key: str, inherit: bool) -> None:
    """The per-trajectory choices of pruning.* or of one source (None inherits)."""
    from jaxtickets.sparsity.actions import mask0_names, mask1_names
    from jaxtickets.sparsity.criteria import CRITERIA
    choices = {"schedule": PRUNING_SCHEDULES, "strategy": STRATEGIES,
               "criterion": tuple(sorted(CRITERIA)), "mask1_action": mask1_names(),
               "mask0_action": mask0_names()}
    for field, allowed in choices.items():
        value = values[field]
        if inherit and value is None:
            continue
        if value not in allowed:
            raise ConfigError(f"{key}.{field}: unknown value {value!r}; choose one of "
                              f"{allowed}")


def _check_one_shot(p: ml_collections.ConfigDict, present: frozenset[str]) -> None:
    """Linear one-shot levels must stay below 100% pruned in every pruned layer kind."""
    if p.one_shot_spacing not in ("geometric", "linear"):
        raise ConfigError(f"pruning.one_shot_spacing: expected 'geometric' or 'linear', "
                          f"got {p.one_shot_spacing!r}")
    if p.one_shot_spacing != "linear":
        return
    rates = ({"all": p.rate} if p.method == "global" else
             {k: p.rates[k] for k in present if p.prune[k]})
    for kind, rate in rates.items():
        if p.levels * rate >= 1.0:
            raise ConfigError(
                f"pruning.levels: {p.levels} linear one-shot levels at rate {rate} "
                f"({'pruning.rate' if kind == 'all' else 'pruning.rates.' + kind}) would "
                f"prune {100 * p.levels * rate:g}% of the weights; an impossible sparsity "
                "(lower pruning.levels or the rate)")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for anything that would fail or mislead later; costs no compute.
    Each section checks its own keys; registries check theirs (branches.check_config,
    tasks.get, the models', criteria' and actions' names)."""
    reference = base_config()
    _check_keys(config, reference, "")
    _missing_keys(config, reference, "")
    for key, value in (("seed", config.seed), ("data.split_seed", config.data.split_seed)):
        if not 0 <= value < SEED_LIMIT:
            raise ConfigError(f"{key}: must lie in 0..{SEED_LIMIT - 1} (JAX keeps 32 bits "
                              f"of a seed), got {value}")
    _validate_model(config)
    _validate_data(config)
    if is_import_path(config.model.name):  # traced on the data's input: shapes only
        from jaxtickets.models import imported

        imported.check(config.model.name,
                       input_shape(config.data.dataset, config.data.image_size),
                       config.model.dropout)
    if config.model.bn_init != DEFAULT and not batchnorm_layers(
            config.model.name, config.data.dataset, config.data.image_size):
        raise ConfigError(f"model.bn_init: {config.model.bn_init!r} sets BatchNorm scales "
                          f"and biases, and model.name={config.model.name!r} has no "
                          "BatchNorm layer; use 'default'")
    _validate_train(config)
    _validate_freeze(config)
    present = _validate_pruning(config)
    tasks.get(config.evaluation.task, "evaluation.task")
    _check_sources(config)
    for name in config.generation.keys():
        _validate_source(config, name)
    _check_source_read(config)
    _check_heads(config, present)
    if any(s.schedule == "one_shot" for s in config.generation.values()) or (
            config.pruning.schedule == "one_shot"):
        _check_one_shot(config.pruning, present)
    else:
        config_values.refuse_unread(config, "pruning.one_shot_spacing", "only read when a "
                                    "trajectory's schedule is 'one_shot'")
    _check_recipe_keys(config)
    branches.check_config(config, listed_branches(config))
    _check_color_jitter(config)
    if config.data.dataset in STREAMED_CLASSES:
        _validate_streamed(config)
    _check_streamed_only(config)
    _check_restart_read(config)
    _validate_runtime(config)


def _validate_model(config: ml_collections.ConfigDict) -> None:
    """model.*: a registered model (or one by import path, built here: its code runs)
    and initializer, a dropout rate, a compute dtype."""
    name = config.model.name
    if looks_dotted(name) and name not in model_names():
        raise missing_colon("model.name", name, model_names())
    if not is_import_path(name) and name not in model_names():
        raise ConfigError(f"model.name: unknown model {name!r}; choose one of "
                          f"{model_names()}, or an import path 'package.module:attr'")
    if not 0.0 <= config.model.dropout < 1.0:
        raise ConfigError(f"model.dropout: must lie in [0, 1), got {config.model.dropout}")
    if is_import_path(name):
        create_model(name, 10, config.model.dropout)  # refuses what cannot be a model
    if config.model.init not in init_names():
        raise ConfigError(f"model.init: unknown initializer {config.model.init!r}; "
                          f"choose one of {init_names()}")
    if config.model.bn_init not in bn_init_names():
        raise ConfigError(f"model.bn_init: unknown BatchNorm initializer "
                          f"{config.model.bn_init!r}; choose one of {bn_init_names()}")
    if config.model.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"model.compute_dtype: expected one of {COMPUTE_DTYPES}, got "
                          f"{config.model.compute_dtype!r}")


def _check_dataset_name(dataset: str, key: str) -> None:
    """A built-in dataset, or an import path to a dataset function, loaded and checked
    here (data/imported.py: its code runs, once)."""
    if is_import_path(dataset):
        from jaxtickets.data import imported

        imported.load(dataset, key)
        return
    if looks_dotted(dataset):
        raise missing_colon(key, dataset, DATASETS)
    if dataset not in DATASETS:
        raise ConfigError(f"{key}: unknown dataset {dataset!r}; choose one of {DATASETS}, "
                          "or an import path 'package.module:function' returning arrays")


def _named_datasets(config: ml_collections.ConfigDict) -> set[str]:
    """The built-in datasets the experiment trains on (not those by import path)."""
    d = config.data
    trained = {d.dataset} | {config_values.inherited(s.dataset, d.dataset)
                             for s in config.generation.values()}
    return {x for x in trained if not is_import_path(x)}


def _outputs(dataset: str, task: str, rotations: str = "one",
             class_fraction: float = 1.0) -> int:
    """The output size of a run on `dataset` with `task` (selections.class_subset keeps
    per_class_count(class_fraction, classes) classes)."""
    classes = num_classes(dataset)
    if class_fraction < 1.0:
        classes = per_class_count(class_fraction, classes)
    return tasks.create_task(task, rotations).outputs(classes)


def _check_heads(config: ml_collections.ConfigDict, present: frozenset[str]) -> None:
    """A source whose runs have another output size than the evaluation's hands its
    ticket over with the evaluation's own head: the layer named 'output' is replaced
    (experiment/sources.py). A model without one cannot do that."""
    if "output" in present:
        return
    d = config.data
    want = _outputs(d.dataset, config.evaluation.task)
    for name, s in config.generation.items():
        got = _outputs(config_values.inherited(s.dataset, d.dataset), s.task, s.rotations,
                       s.class_fraction)
        if got != want:
            raise ConfigError(
                f"generation.{name}: its runs have {got} outputs and the evaluation's "
                f"{want}, so the ticket moves to the evaluation with a new head, the layer "
                f"named 'output'; model.name={config.model.name!r} has no layer of that "
                "name (name its last layer 'output', or keep the source's task, dataset "
                "and classes)")


def _check_source_read(config: ml_collections.ConfigDict) -> None:
    """data.source and data.data_dir say where built-in datasets come from; with every
    dataset given by import path nothing reads them."""
    if not _named_datasets(config):
        for key in ("data.source", "data.data_dir"):
            config_values.refuse_unread(config, key, "only read for the built-in datasets, "
                                        "and every dataset here is an import path, whose "
                                        "function gives the arrays")


def _validate_data(config: ml_collections.ConfigDict) -> None:
    """data.*: dataset, where it comes from, sizes and augmentation."""
    _check_dataset_name(config.data.dataset, "data.dataset")
    if config.data.source not in SOURCES:
        raise ConfigError(f"data.source: unknown source {config.data.source!r}; "
                          f"choose one of {SOURCES}")
    if config.data.source == "embedded" and config.data.dataset != "mnist" and not (
            is_import_path(config.data.dataset)):
        raise ConfigError("data.source: only mnist is embedded; use 'tfds' for "
                          f"data.dataset={config.data.dataset!r}")
    _validate_npz_file(config.data)
    for key in ("validation_size", "train_size", "test_size", "pad_crop"):
        if config.data[key] < 0:
            raise ConfigError(f"data.{key}: must be >= 0, got {config.data[key]}")
    if config.data.image_size < 8:
        raise ConfigError(f"data.image_size: must be >= 8, got {config.data.image_size}")
    if not 0 <= config.data.rotation_degrees <= 180:
        raise ConfigError(f"data.rotation_degrees: must lie in [0, 180], got "
                          f"{config.data.rotation_degrees}")
    if config.data.half not in HALVES:
        raise ConfigError(f"data.half: expected one of {HALVES}, got {config.data.half!r}")
    if config.data.normalize not in NORMALIZE_MODES:
        raise ConfigError(f"data.normalize: expected one of {NORMALIZE_MODES}, got "
                          f"{config.data.normalize!r}")
    _validate_noise_blur(config.data)


def _validate_noise_blur(d: ml_collections.ConfigDict) -> None:
    """data.random_labels_fraction in [0, 1]; data.blur_factor an integer >= 1 dividing
    both image sides (checked here where the dataset's shape is known without loading
    it, and again on the images themselves)."""
    fraction = d.random_labels_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0.0 <= fraction <= 1.0):
        raise ConfigError(f"data.random_labels_fraction: must lie in [0, 1], got "
                          f"{fraction!r}")
    factor = d.blur_factor
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"data.blur_factor: must be an integer >= 1 (1: no blur), got "
                          f"{factor!r}")
    if factor > 1 and not is_import_path(d.dataset) and (
            d.dataset in STREAMED_CLASSES or d.dataset in IMAGE_SHAPES):
        h, w = input_shape(d.dataset, d.image_size)[:2]
        if h % factor or w % factor:
            raise ConfigError(f"data.blur_factor: {d.dataset}'s images are {h} x {w}, not "
                              f"divisible by {factor}; choose a divisor of both sides")


def _validate_train(config: ml_collections.ConfigDict) -> None:
    """num_replicates, train.* and pruning.rewind: the evaluation's recipe."""
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
    decay_at = config_values.durations(t.decay_at, "train.decay_at")
    if decay_at and t.schedule != "step":
        raise ConfigError(f"train.decay_at: only train.schedule='step' uses it, "
                          f"got {t.schedule!r}")
    durations.parse(t.duration, "train.duration")
    for key in ("warmup", "checkpoint_every"):
        durations.parse(t[key], f"train.{key}")
    durations.check_interval(t.eval_every, "train.eval_every")
    for part in decay_at:
        durations.parse(part, "train.decay_at")
    durations.parse(config.pruning.rewind, "pruning.rewind")


def _validate_freeze(config: ml_collections.ConfigDict) -> None:
    """train.freeze and train.freeze_except against the evaluation model's own layers
    (an abstract initialization: shapes only), so a group the model lacks, a pattern
    that matches nothing or a network with nothing left to train fails here."""
    groups = config_values.names(config.train.freeze, "train.freeze")
    exceptions = config_values.names(config.train.freeze_except, "train.freeze_except")
    if not groups and not exceptions:
        return
    if len(set(groups)) != len(groups):
        raise ConfigError(f"train.freeze: a group is listed twice in {groups!r}")
    variables = abstract_variables(create_model(config.model.name, 10),
                                   input_shape(config.data.dataset, config.data.image_size))
    freezing.frozen_leaves(variables, groups, exceptions, f"model {config.model.name!r}")


def _check_recipe_keys(config: ml_collections.ConfigDict) -> None:
    """train.* keys only some optimizers or schedules read (training/optimizers.py's
    OPTIMIZER_KEYS, training/schedules.py's SCHEDULE_KEYS), set where none reads them."""
    used = {config.train.optimizer} | {s.optimizer for s in config.generation.values()
                                       if s.optimizer is not None}
    read = {key for name in used for key in OPTIMIZER_KEYS.get(name, ())}
    for name, keys in OPTIMIZER_KEYS.items():
        for key in set(keys) - read:
            config_values.refuse_unread(config, f"train.{key}", "only read when "
                                        f"train.optimizer (or a source's) is {name!r}")
    for name, keys in SCHEDULE_KEYS.items():
        for key in keys:
            if config.train.schedule != name:
                config_values.refuse_unread(config, f"train.{key}", "only read when "
                                            f"train.schedule={name!r}")


def _check_rates_read(config: ml_collections.ConfigDict) -> None:
    """pruning.rate is read by global pruning only, pruning.rates.KIND by layer-wise
    pruning of a prunable KIND only."""
    p = config.pruning
    if p.method == "global":
        for kind in p.rates.keys():
            config_values.refuse_unread(config, f"pruning.rates.{kind}",
                                        "only read when pruning.method='layerwise'")
        return
    config_values.refuse_unread(config, "pruning.rate", "only read when pruning.method="
                                "'global' (layer-wise pruning reads pruning.rates.*)")
    for kind, allowed in p.prune.items():
        if not allowed:
            config_values.refuse_unread(config, f"pruning.rates.{kind}",
                                        f"only read when pruning.prune.{kind}=True")


def _validate_pruning(config: ml_collections.ConfigDict) -> frozenset[str]:
    """pruning.* and branches; returns the prunable layer kinds the model has."""
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
    present = model_kinds(config.model.name, config.data.dataset, config.data.image_size)
    if not any(p.prune[kind] for kind in present):
        raise ConfigError(f"pruning.prune: model.name={config.model.name!r} has no kernel of "
                          f"a prunable kind (it has {', '.join(sorted(present))}; prunable: "
                          f"{', '.join(k for k, v in p.prune.items() if v)})")
    _check_rates_read(config)
    parse_levels(p.evaluate_levels, p.levels)
    branches.parse_branches(config.branches, one_shot=p.schedule == "one_shot")
    _check_trajectory(p, "pruning", inherit=False)
    if p.first_conv_layers < 0:
        raise ConfigError(f"pruning.first_conv_layers: must be >= 0 (0: every layer), "
                          f"got {p.first_conv_layers}")
    if p.first_conv_layers and not (p.prune.conv and "conv" in present):
        raise ConfigError(f"pruning.first_conv_layers: needs pruning.prune.conv=True and "
                          f"a model with conv layers (model.name={config.model.name!r})")
    if p.control_draws < 1:
        raise ConfigError(f"pruning.control_draws: must be >= 1 (draws of each random "
                          f"control per level), got {p.control_draws}")
    if not 0.0 < p.natural_zero_threshold < 1.0:
        raise ConfigError(f"pruning.natural_zero_threshold: must lie in (0, 1), got "
                          f"{p.natural_zero_threshold}")
    return present


LANES_AUTO = "auto"


def parse_lanes(setting) -> int | None:
    """runtime.lanes as a cap on lanes per group: None for 'auto', else a positive
    integer (experiment/lanes.py)."""
    if setting == LANES_AUTO:
        return None
    if isinstance(setting, bool) or not str(setting).isdigit() or int(setting) < 1:
        raise ConfigError(f"runtime.lanes: must be '{LANES_AUTO}' or a positive integer "
                          f"(1: runs train one after another); got {setting!r}")
    return int(setting)


def _validate_runtime(config: ml_collections.ConfigDict) -> None:
    """runtime.*: settings that change speed, never results."""
    if config.runtime.reader_threads < 0:
        raise ConfigError(f"runtime.reader_threads: must be >= 1, or 0 for one per core; "
                          f"got {config.runtime.reader_threads}")
    if config.runtime.steps_per_call < 0:
        raise ConfigError(f"runtime.steps_per_call: must be >= 1, or 0 to choose by backend "
                          f"and model; got {config.runtime.steps_per_call}")
    check_cpu_convolutions(config.runtime.cpu_convolutions)
    parse_lanes(config.runtime.lanes)
    compilation_cache.check(config.runtime.compilation_cache)
    if config.runtime.log_every_seconds < 0:
        raise ConfigError(f"runtime.log_every_seconds: must be >= 0, got "
                          f"{config.runtime.log_every_seconds}")


def _validate_npz_file(d: ml_collections.ConfigDict) -> None:
    """data.npz_file goes with data.source='npz' and only with it (a path that nothing
    reads would mislead), names a file that exists now (not after minutes of setup),
    and holds an in-memory dataset; its image shape is checked when it is loaded."""
    if d.source != "npz":
        if d.npz_file:
            raise ConfigError(f"data.npz_file: set to {d.npz_file!r} but data.source is "
                              f"{d.source!r}, which does not read it; set "
                              "data.source='npz' or leave data.npz_file empty")
        return
    if is_import_path(d.dataset):
        raise ConfigError(f"data.source: 'npz' reads data.dataset from data.npz_file, and "
                          f"data.dataset={d.dataset!r} is an import path, whose function "
                          "gives the arrays; leave data.source at 'tfds'")
    if d.dataset in STREAMED_CLASSES:
        raise ConfigError(f"data.source: 'npz' holds in-memory datasets only "
                          f"({', '.join(NUM_CLASSES)}); data.dataset={d.dataset!r} is "
                          "streamed, use 'tfds'")
    if not d.npz_file:
        raise ConfigError("data.npz_file: data.source='npz' needs the path of an .npz "
                          "file (x_train/y_train/x_test/y_test, or jpeg_*/offsets_*)")
    if not os.path.isfile(d.npz_file):
        raise ConfigError(f"data.npz_file: no such file {d.npz_file!r} "
                          "(data.source='npz')")


def _check_color_jitter(config: ml_collections.ConfigDict) -> None:
    """Colour jitter is host augmentation of streamed images (data/augment.py): asked for
    where no streamed training split would use it, it would change nothing, silently."""
    d = config.data
    for name, s in config.generation.items():
        dataset = config_values.inherited(s.dataset, d.dataset)
        if s.color_jitter and dataset not in STREAMED_CLASSES:
            raise ConfigError(
                f"generation.{name}.color_jitter: colour jitter augments streamed datasets "
                f"({', '.join(STREAMED_CLASSES)}) on the host; this source trains on "
                f"{dataset}, in memory, augmented on the device (pad_crop, flip); set False "
                "or None")
    inheriting = [d.dataset] + [config_values.inherited(s.dataset, d.dataset)
                                for s in config.generation.values() if s.color_jitter is None]
    if d.color_jitter and not any(x in STREAMED_CLASSES for x in inheriting):
        raise ConfigError(
            f"data.color_jitter: colour jitter augments streamed datasets "
            f"({', '.join(STREAMED_CLASSES)}) on the host, and no training split that "
            f"follows this key is streamed (data.dataset={d.dataset!r}); in-memory datasets "
            "are augmented on the device (pad_crop, flip); set it to False")


# Keys only a streamed dataset's pipeline reads (data/pipeline.py, data/augment.py).
STREAMED_ONLY_KEYS = ("data.image_size", "data.rotation_degrees", "runtime.reader_threads")


def _check_restart_read(config: ml_collections.ConfigDict) -> None:
    """pruning.restart_schedule changes where a run resumed at its rewind point starts
    its schedule; where every trajectory rewinds to step 0 there is nothing to restart."""
    rewinds = [("pruning.rewind", config.pruning.rewind)] + [
        (f"generation.{name}.rewind", s.rewind) for name, s in config.generation.items()
        if s.rewind is not None]
    if all(durations.parse(spec, key)[0] == 0 for key, spec in rewinds):
        config_values.refuse_unread(config, "pruning.restart_schedule", "only read when a "
                                    "trajectory rewinds later than step 0 (pruning.rewind "
                                    "or a source's rewind)")


def _check_streamed_only(config: ml_collections.ConfigDict) -> None:
    d = config.data
    trained = {d.dataset} | {config_values.inherited(s.dataset, d.dataset)
                             for s in config.generation.values()}
    if not trained & set(STREAMED_CLASSES):
        for key in STREAMED_ONLY_KEYS:
            config_values.refuse_unread(config, key, "only read for the streamed datasets "
                                        f"({', '.join(STREAMED_CLASSES)}), and this "
                                        f"experiment trains on {', '.join(sorted(trained))}")


def _validate_streamed(config: ml_collections.ConfigDict) -> None:
    """What a streamed dataset (ImageNet, Places365) does not do: data.train_size and
    data.test_size (in-memory loading options; select with a source's sample_fraction)."""
    d, name = config.data, config.data.dataset
    for key in ("train_size", "test_size"):
        if d[key]:
            raise ConfigError(f"data.{key}: not supported with the streamed dataset {name}; "
                              "use generation.NAME.sample_fraction to train on fewer images")


def _validate_source(config: ml_collections.ConfigDict, name: str) -> None:
    s, key = config.generation[name], f"generation.{name}"
    if not name.replace("_", "").isalnum():
        raise ConfigError(f"{key}: a source name uses letters, digits and '_' only")
    kind = tasks.get(s.task, f"{key}.task")
    for field in {k for other in tasks.kinds() for k in other.source_keys}:
        if field not in kind.source_keys:
            readers = tuple(k.name for k in tasks.kinds() if field in k.source_keys)
            config_values.refuse_unread(config, f"{key}.{field}",
                                        f"only read by the tasks {readers}")
    if s.dataset is not None:
        _check_dataset_name(s.dataset, f"{key}.dataset")
    named_other = s.dataset not in (None, config.data.dataset) and not is_import_path(
        s.dataset)
    if named_other and config.data.source == "embedded" and s.dataset != "mnist":
        raise ConfigError(f"{key}.dataset: data.source='embedded' holds only mnist; "
                          "use data.source='tfds' for cross-dataset sources")
    if named_other and config.data.source == "npz":
        raise ConfigError(f"{key}.dataset: data.source='npz' holds only data.dataset "
                          f"({config.data.dataset!r}, from data.npz_file); use "
                          "data.source='tfds' for cross-dataset sources")
    for field in ("sample_fraction", "class_fraction", "labelled_fraction"):
        if not 0.0 < s[field] <= 1.0:
            raise ConfigError(f"{key}.{field}: must lie in (0, 1], got {s[field]}")
    if s.pad_crop is not None and s.pad_crop < 0:
        raise ConfigError(f"{key}.pad_crop: must be >= 0, or None for data.pad_crop; "
                          f"got {s.pad_crop}")
    if s.half not in HALVES:
        raise ConfigError(f"{key}.half: expected one of {HALVES}, got {s.half!r}")
    if s.rotations not in ROTATIONS:
        raise ConfigError(f"{key}.rotations: expected one of {ROTATIONS}, got {s.rotations!r}")
    if s.optimizer is not None and s.optimizer not in OPTIMIZERS:
        raise ConfigError(f"{key}.optimizer: unknown optimizer {s.optimizer!r}; "
                          f"choose one of {OPTIMIZERS}")
    if s.learning_rate is not None and s.learning_rate <= 0:
        raise ConfigError(f"{key}.learning_rate: must be > 0 (None: as evaluated), "
                          f"got {s.learning_rate}")
    if s.weight_decay is not None and s.weight_decay < 0:
        raise ConfigError(f"{key}.weight_decay: must be >= 0 (None: as evaluated), "
                          f"got {s.weight_decay}")
    if s.batch_size is not None and s.batch_size < 1:
        raise ConfigError(f"{key}.batch_size: must be >= 1 (None: as evaluated), "
                          f"got {s.batch_size}")
    for field in ("duration", "warmup", "rewind"):
        if s[field] is not None:
            durations.parse(s[field], f"{key}.{field}")
    decay_at = config_values.durations(s.decay_at or (), f"{key}.decay_at")
    for part in decay_at:
        durations.parse(part, f"{key}.decay_at")
    if decay_at and config.train.schedule != "step":
        raise ConfigError(f"{key}.decay_at: only train.schedule='step' uses it")
    if s.evaluate_levels is not None:
        parse_levels(s.evaluate_levels, config.pruning.levels, f"{key}.evaluate_levels")
    if s.branches is not None:
        branches.parse_branches(s.branches, f"{key}.branches",
                       one_shot=(s.schedule or config.pruning.schedule) == "one_shot")
    _check_trajectory(s, key, inherit=True)


def listed_branches(config: ml_collections.ConfigDict) -> set[str]:
    """Every branch name the evaluation's or any source's `branches` lists."""
    wanted = [("branches", config.branches)] + [
        (f"generation.{name}.branches", s.branches) for name, s in config.generation.items()
        if s.branches is not None]
    return {b for key, spec in wanted for b in config_values.names(spec, key)}


def validate_steps(total: int, rewind: int, eval_every: int, checkpoint_every: int,
                   decay_at: list[int], warmup: int, prefix: str = "train") -> None:
    """Checks the duration settings once they are converted to steps (needs data size);
    `prefix` names the recipe ('train', or 'generation.NAME' for a ticket source)."""
    if total < 1:
        raise ConfigError(f"{prefix}.duration: the budget is {total} steps; it must be >= 1")
    budget = f"{prefix}.duration: {total} steps"
    rewind_key = "pruning.rewind" if prefix == "train" else f"{prefix}.rewind"
    if not 0 <= rewind < total:
        raise ConfigError(f"{rewind_key}: the rewind point is step {rewind}; it must lie "
                          f"before the end of training ({budget})")
    if eval_every < 1 or eval_every > total:
        raise ConfigError(f"train.eval_every: {eval_every} steps; must lie in 1..{total} "
                          f"({budget})")
    if checkpoint_every < 1:
        raise ConfigError(f"train.checkpoint_every: {checkpoint_every} steps; must be >= 1")
    if warmup < 0 or warmup > total:
        raise ConfigError(f"{prefix}.warmup: {warmup} steps; must lie in 0..{total} ({budget})")
    for b in decay_at:
        if not 0 < b < total:
            raise ConfigError(f"{prefix}.decay_at: step {b} lies outside training (0, {total}) "
                              f"({budget})")
    if len(set(decay_at)) != len(decay_at):
        raise ConfigError(f"{prefix}.decay_at: two boundaries fall on the same step "
                          f"({sorted(decay_at)}); the schedule would decay only once there")


def identity(config: ml_collections.ConfigDict) -> str:
    """Hash of the canonical config without runtime-only keys (docs/design.md, invariant 7)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


# Keys added after workdirs existed, with the value that reproduces the older behaviour:
# left out of the identity while they hold it, so those workdirs still resume. Any other
# value changes the hash, as every key does. Values are in the identity's form
# (config_values.legacy_form: an older list key as its comma-joined string; a list key
# added later as a tuple).
ADDED_LATER = {"model.compute_dtype": "float32", "data.image_size": 224,
               "data.rotation_degrees": 0.0, "data.npz_file": "", "model.init": "default",
               "model.bn_init": "default",
               "pruning.controls_from_scratch": "", "pruning.control_draws": 1,
               "data.color_jitter": False, "data.random_labels_fraction": 0.0,
               "data.blur_factor": 1, "train.freeze": (), "train.freeze_except": ()}
ADDED_LATER_SOURCE = {"pad_crop": -1, "flip": -1, "color_jitter": -1}  # generation.NAME.*
# Streamed training images were colour-jittered before data.color_jitter existed (its
# default now is off), so for a streamed dataset the key always enters the identity and
# an older streamed workdir is a different experiment; in-memory datasets never jittered.
JITTER_ALWAYS_HASHED = STREAMED_CLASSES


def canonical_json(config: ml_collections.ConfigDict) -> str:
    data = config_values.legacy_form(config.to_dict())
    data.pop(RUNTIME_KEY, None)
    datasets = [data.get("data", {}).get("dataset")] + [
        s.get("dataset") for s in data.get("generation", {}).values()]
    streamed = any(d in JITTER_ALWAYS_HASHED for d in datasets)
    for dotted, neutral in ADDED_LATER.items():
        group, key = dotted.split(".")
        if dotted == "data.color_jitter" and streamed:
            continue
        value = data.get(group, {}).get(key, neutral)
        if (tuple(value) if isinstance(value, list) else value) == neutral:
            data.get(group, {}).pop(key, None)
    for source in data.get("generation", {}).values():
        for key, neutral in ADDED_LATER_SOURCE.items():
            if source.get(key, neutral) == neutral:
                source.pop(key, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
