"""Fuzzing the config checks: every broken config fails early with a ConfigError naming the key.

Each example starts from a shipped config (`configs/*.py` with each of its arguments) and
applies one mutation: a value of the wrong type, an unknown key, a number out of range, a
malformed duration, or two settings that contradict each other. The property is what
`Experiment.__init__` relies on before it loads data or compiles anything:
`validate(config)` followed by `convert_durations(config, train_size)` raises
`ConfigError` (no other exception type, and never passes), and the message names the
dotted key that was changed. The unmutated shipped configs pass both.
"""

from __future__ import annotations

import copy
import math
import re

import ml_collections
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import load_config
from jaxtickets import config_schema, durations
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import convert_durations

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

# (file, argument) for every shipped config.
SHIPPED = [("mnist_lenet", None), ("mnist_lenet", "demo"), ("mnist_lenet", "smoke"),
           ("mnist_p2_controls", "fig4c"),
           ("cifar10_conv", "conv2"), ("cifar10_conv", "conv4"), ("cifar10_conv", "conv6"),
           ("cifar10_conv", "conv2,smoke"), ("cifar10_conv", "conv4,smoke"),
           ("cifar10_conv", "conv6,smoke"), ("cifar10_conv", "smoke"),
           ("mnist_sources", None), ("mnist_sources", "smoke"), ("cifar10_sources", None),
           ("cifar10_p0", "resnet18"), ("cifar10_p0", "vgg19,smoke"),
           ("mnist_supermask", None), ("mnist_supermask", "short"),
           ("mnist_supermask", "iterative"), ("mnist_supermask", "smoke"),
           ("mnist_criteria", None), ("mnist_criteria", "smoke"),
           ("cifar10_conv_controls", "conv2"), ("cifar10_conv_controls", "conv6"),
           ("cifar10_conv_controls", "conv4,smoke"), ("p3_resnet20", None),
           ("p3_resnet20", "0.01,wr"), ("p3_resnet20", "0.1,wr,smoke"),
           ("mnist_p2_controls", None), ("mnist_p2_controls", "smoke"),
           ("imagenet_rotnet", None), ("imagenet_rotnet", "rotnet,smoke"),
           ("imagenet_rotnet", "alexnet"), ("imagenet_limited", None),
           ("imagenet_limited", "fig7,smoke"), ("p3_imagenet", "resnet18,wr"),
           ("p3_imagenet", "smoke"), ("p1_cross_dataset", "fashion_mnist"),
           ("p1_cross_dataset", "cifar100,smoke"), ("p1_cross_dataset", "imagenet2012,resnet50"),
           ("p2_deep_cifar", "vgg19,warmup"), ("p2_deep_cifar", "resnet20,0.01,smoke"),
           ("p3_cifar", "vgg16,cifar100,wr"), ("p3_cifar", "mobilenet_v1,cifar10,smoke")]

# Training images before the validation split, per (dataset, source) (see datasets.py;
# the embedded size is checked against the real file below).
RAW_TRAIN_SIZE = {("mnist", "tfds"): 60000, ("mnist", "embedded"): 12000,
                  ("cifar10", "tfds"): 50000, ("imagenet2012", "tfds"): 1281167,
                  ("fashion_mnist", "tfds"): 60000, ("svhn_cropped", "tfds"): 73257,
                  ("cifar100", "tfds"): 50000, ("places365_small", "tfds"): 1803460}
DURATION_KEYS = ("train.duration", "train.warmup", "train.eval_every",
                 "train.checkpoint_every", "pruning.rewind", "train.decay_at")
# Examples per property; together the properties run in a few seconds.
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

_CONFIGS = {}


def shipped(name: str, arg: str | None) -> dict:
    """The shipped config as a plain dict (a fresh copy: mutations must not leak)."""
    if (name, arg) not in _CONFIGS:
        _CONFIGS[name, arg] = load_config(name, arg).to_dict()
    return copy.deepcopy(_CONFIGS[name, arg])


def train_size(config: ml_collections.ConfigDict) -> int:
    """The training set size `load_splits` would return for this (valid) config."""
    d = config.data
    return d.train_size or RAW_TRAIN_SIZE[d.dataset, d.source] - d.validation_size


def schedule_of(data: dict):
    """(total steps, steps per epoch, batch size) of a valid config given as a dict."""
    config = ml_collections.ConfigDict(data)
    schedule, _, _ = convert_durations(config, train_size(config))
    return schedule.total, schedule.steps_per_epoch, config.train.batch_size


def leaves(data: dict, prefix: str = "") -> list[str]:
    """Dotted names of every key (groups included), depth first."""
    out = []
    for key, value in data.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out.extend(leaves(value, prefix + key + "."))
    return out


def groups(data: dict) -> list[str]:
    """Dotted names of every group; '' is the root."""
    return [""] + [k for k in leaves(data) if isinstance(get(data, k), dict)]


def get(data: dict, dotted: str):
    node = data
    for part in filter(None, dotted.split(".")):
        node = node[part]
    return node


def put(data: dict, dotted: str, value) -> dict:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[leaf] = value
    return data


def names_key(message: str, key: str) -> bool:
    """`key` appears in `message` as a whole dotted name (not 'seed' in 'data.split_seed',
    not 'pruning.prune' in 'pruning.prune.conv')."""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w]|\.\w)", message) is not None


def assert_rejected(data: dict, key: str) -> None:
    config = ml_collections.ConfigDict(data)
    with pytest.raises(ConfigError) as info:
        config_schema.validate(config)
        convert_durations(config, train_size(config))
    assert names_key(str(info.value), key), f"{key!r} not named in: {info.value}"


# ---- strategies ------------------------------------------------------------------------

bases = st.sampled_from(SHIPPED)
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
texts = st.text(max_size=12)
plain = st.one_of(st.integers(), st.floats(), texts, st.booleans(), st.none())
lists = st.lists(st.one_of(st.integers(), texts), max_size=3)
dicts = st.dictionaries(identifiers, st.one_of(st.integers(), texts), max_size=3)


def typed_default(data: dict, key: str):
    """The key's value, or for a source key left None (inheriting) a value of its type."""
    value = get(data, key)
    if value is None and key.startswith("generation."):
        kind = config_schema.source_defaults().get_type(key.rsplit(".", 1)[1])
        return {int: 0, float: 0.0, bool: False, str: "", tuple: ()}[kind]
    return value


def wrong_values(default) -> st.SearchStrategy:
    """Values whose type is wrong for a key with this default."""
    common = [st.none(), lists, dicts]
    if isinstance(default, tuple):  # list keys: any list or tuple has the right type
        return st.one_of(st.integers(), st.floats(), st.booleans(), texts, st.none(), dicts)
    if isinstance(default, dict):
        return st.one_of(plain, lists)
    if isinstance(default, bool):
        return st.one_of(st.integers(), st.floats(), texts, *common)
    if isinstance(default, int):
        return st.one_of(st.floats(), texts, st.booleans(),
                         st.integers().map(str), *common)
    if isinstance(default, float):
        return st.one_of(texts, st.booleans(), st.just(str(default)), *common)
    assert isinstance(default, str), default
    return st.one_of(st.integers(), st.floats(), st.booleans(), *common)


def numbers_at_or_below(bound: float, *, inclusive: bool) -> st.SearchStrategy:
    out = st.floats(max_value=bound, exclude_max=not inclusive)
    if inclusive and float(bound).is_integer():
        out = out | st.integers(max_value=int(bound))
    return out


def numbers_at_or_above(bound: float) -> st.SearchStrategy:
    return st.floats(min_value=bound) | st.integers(min_value=math.ceil(bound))


NAN_INF = st.sampled_from([math.nan, math.inf, -math.inf])


def out_of_range(data: dict) -> dict[str, st.SearchStrategy]:
    """For every numeric key, values outside its valid range (types are right)."""
    negative = st.integers(max_value=-1)
    out = {key: negative for key in leaves(data)
           if type(get(data, key)) is int}  # sizes, counts, seeds: all must be >= 0
    for key in ("num_replicates", "train.batch_size", "train.eval_batch_size"):
        out[key] = st.integers(max_value=0)
    out["seed"] = negative | st.integers(min_value=2 ** 32)  # jax keys keep 32 bits
    out["data.split_seed"] = negative | st.integers(min_value=2 ** 32)
    outside_0_1 = numbers_at_or_below(0, inclusive=False) | numbers_at_or_above(1) | NAN_INF
    out["model.dropout"] = outside_0_1
    out["data.image_size"] = st.integers(max_value=7)
    out["data.rotation_degrees"] = (numbers_at_or_below(0, inclusive=False)
                                    | numbers_at_or_above(180.001) | NAN_INF)
    for key in ("runtime.steps_per_call", "runtime.reader_threads"):  # 0: auto
        out[key] = st.integers(max_value=-1)
    out["train.learning_rate"] = numbers_at_or_below(0, inclusive=True) | NAN_INF
    out["train.momentum"] = outside_0_1
    out["train.weight_decay"] = numbers_at_or_below(0, inclusive=False) | NAN_INF
    out["train.decay_factor"] = numbers_at_or_below(0, inclusive=True) | NAN_INF
    out["runtime.log_every_seconds"] = numbers_at_or_below(0, inclusive=False) | st.just(math.nan)
    for name in data.get("generation", {}):  # None: unset (the evaluation's value)
        out[f"generation.{name}.pad_crop"] = negative
        out[f"generation.{name}.batch_size"] = st.integers(max_value=0)
        out[f"generation.{name}.learning_rate"] = (numbers_at_or_below(0, inclusive=True)
                                                   | NAN_INF)
        out[f"generation.{name}.weight_decay"] = (numbers_at_or_below(0, inclusive=False)
                                                  | NAN_INF)
    bad_rate = numbers_at_or_below(0, inclusive=True) | numbers_at_or_above(1) | NAN_INF
    p = data["pruning"]
    if p["method"] == "global":
        out["pruning.rate"] = bad_rate
    else:
        for kind, prunable in p["prune"].items():
            if prunable:
                out[f"pruning.rates.{kind}"] = bad_rate
    return out


MALFORMED = st.sampled_from([
    "", " ", "st", "%", "10", "10 steps", "-5st", "+5st", "1e3st", "5stst", "5 st x",
    "1.5st", "0x10st", "5ST", "5Ep", "nanst", "infep", "1,000st", "5 ep 3", "..5ep",
    "5..ep", "1/2ep", "5s t", "½ep", "5%%", "5ep\x00", "-0st", "5 epochs", "3.3 %%"])
# Unicode digits ('５ep') parse as the same number, so they count as well formed.
DURATION = re.compile(r"\s*(\d+(\.\d*)?|\.\d+)\s*(st|ep|ex|%)\s*")


def well_formed(key: str, text: str) -> bool:
    """The documented grammar: a number and one unit (decay_at: a comma-separated list)."""
    if key != "train.decay_at":
        return DURATION.fullmatch(text) is not None
    return all(DURATION.fullmatch(p) for p in text.split(",") if p.strip())


def malformed_durations(key: str) -> st.SearchStrategy:
    out = (MALFORMED | st.text(max_size=10)).filter(lambda s: not well_formed(key, s))
    if key == "train.duration":
        out = out | st.sampled_from(["100%", "50%", "0.5%"])  # the budget cannot be a %
    if key == "train.decay_at":
        # one malformed part in an otherwise fine list
        one_part = out.filter(lambda s: "," not in s and s.strip())
        out = out | one_part.map(lambda s: "1st," + s)
    return out


# ---- properties ------------------------------------------------------------------------

@pytest.mark.parametrize("name, arg", SHIPPED)
def test_shipped_configs_pass(name, arg):
    config = ml_collections.ConfigDict(shipped(name, arg))
    config_schema.validate(config)
    convert_durations(config, train_size(config))


def test_train_size_matches_the_embedded_data():
    from jaxtickets.data.datasets import load_splits

    for arg in ("demo", "smoke"):
        config = load_config("mnist_lenet", arg)
        d = config.data
        splits = load_splits(d.dataset, d.source, d.data_dir, d.validation_size,
                             d.train_size, d.test_size, d.split_seed)
        assert len(splits.train) == train_size(config)


@FUZZ
@given(base=bases, draw=st.data())
def test_wrong_type_is_rejected(base, draw):
    data = shipped(*base)
    key = draw.draw(st.sampled_from(leaves(data)), label="key")
    values = wrong_values(typed_default(data, key))
    if key.startswith("generation.") and key.count(".") == 2 and (
            config_schema.source_defaults()[key.rsplit(".", 1)[1]] is None):
        # a source key that can inherit: None is a right value
        values = values.filter(lambda v: v is not None)
    value = draw.draw(values, label="value")
    assert_rejected(put(data, key, value), key)


@FUZZ
@given(base=bases, draw=st.data())
def test_unknown_key_is_rejected(base, draw):
    data = shipped(*base)
    # A new name directly under `generation` is a new ticket source, not an unknown key.
    group = draw.draw(st.sampled_from([g for g in groups(data) if g != "generation"]),
                      label="group")
    reserved = set(dir(ml_collections.ConfigDict)) | set(get(data, group))
    name = draw.draw(identifiers.filter(lambda n: n not in reserved), label="name")
    value = draw.draw(st.one_of(plain, dicts), label="value")
    key = f"{group}.{name}" if group else name
    assert_rejected(put(data, key, value), key)


@FUZZ
@given(base=bases, draw=st.data())
def test_missing_key_is_rejected(base, draw):
    data = shipped(*base)
    # Removing a whole ticket source (generation.NAME) leaves a valid, smaller config.
    key = draw.draw(st.sampled_from([k for k in leaves(data) if k.count(".") != 1
                                     or not k.startswith("generation.")]), label="key")
    *parents, leaf = key.split(".")
    del get(data, ".".join(parents))[leaf]
    assert_rejected(data, key)


@FUZZ
@given(base=bases, draw=st.data())
def test_out_of_range_is_rejected(base, draw):
    data = shipped(*base)
    ranges = out_of_range(data)
    key = draw.draw(st.sampled_from(sorted(ranges)), label="key")
    value = draw.draw(ranges[key], label="value")
    assert_rejected(put(data, key, value), key)


@FUZZ
@given(base=bases, key=st.sampled_from(DURATION_KEYS), draw=st.data())
def test_malformed_duration_is_rejected(base, key, draw):
    data = shipped(*base)
    if key == "train.decay_at":
        data["train"]["schedule"] = "step"  # so that the boundaries are parsed at all
    value = draw.draw(malformed_durations(key), label="value")
    if key == "train.decay_at":  # as the command line gives it: one element, commas in it
        value = (value,)
    assert_rejected(put(data, key, value), key)


def _durations_at_or_past(total: int, per_epoch: int, batch: int) -> st.SearchStrategy:
    """Durations that convert to a step >= total, in each of the four units."""
    steps = st.integers(total, 4 * total)
    converter = durations.StepConverter(per_epoch, batch, total)
    as_text = st.one_of(
        steps.map(lambda n: f"{n}st"),
        steps.map(lambda n: f"{n * batch}ex"),
        st.integers(total * batch - batch // 2, 4 * total * batch).map(lambda n: f"{n}ex"),
        st.floats(total / per_epoch, 4 * total / per_epoch).map(lambda e: f"{e:.6f}ep"),
        st.integers(math.ceil(total / per_epoch), math.ceil(4 * total / per_epoch)).map(
            lambda e: f"{e}ep"),
        st.floats(99.0, 400.0).map(lambda p: f"{p:.4f}%"))
    return as_text.filter(lambda s: converter.to_steps(s) >= total)


@st.composite
def contradictions(draw, data: dict) -> tuple[dict, str]:
    """One change that contradicts the rest of the config, and the key it changed."""
    total, per_epoch, batch = schedule_of(data)
    past_end = _durations_at_or_past(total, per_epoch, batch)
    levels = data["pruning"]["levels"]
    chosen = config_schema.parse_levels(data["pruning"]["evaluate_levels"], levels)
    kinds = ("conv", "dense", "output", "shortcut")
    cases = ["rewind", "warmup", "decay_at", "decay_at_zero", "decay_at_twice",
             "decay_at_unused", "nesterov_unused", "evaluate_levels", "no_prunable",
             "eval_every", "batch_size"]
    if tuple(data["pruning"]["evaluate_levels"]) not in (("all",), ("morcos",)) and max(
            chosen) > 0:
        cases.append("levels")  # fewer levels than the evaluated list needs
    if data["data"]["dataset"] == "cifar10":
        cases.append("source")
    elif data["data"]["source"] == "embedded":
        cases.append("dataset")
    if data["model"]["name"] == "lenet300_100":
        cases.append("lenet_without_dense")
    if total > 1:
        cases.append("duration")
    case = draw(st.sampled_from(cases), label="case")
    if case == "rewind":  # the rewind point at or past the end of training
        return put(data, "pruning.rewind", draw(past_end)), "pruning.rewind"
    if case == "warmup":  # warmup longer than training
        longer = past_end.filter(
            lambda s: durations.StepConverter(per_epoch, batch, total).to_steps(s) > total)
        return put(data, "train.warmup", draw(longer)), "train.warmup"
    if case.startswith("decay_at") and case != "decay_at_unused":
        data["train"]["schedule"] = "step"  # the only schedule that uses train.decay_at
    if case == "decay_at":  # a decay boundary at or after the end
        inside = st.integers(1, total - 1).map(lambda n: f"{n}st") if total > 1 else st.nothing()
        parts = draw(st.lists(inside, max_size=2)) + [draw(past_end)]
        parts = draw(st.permutations(parts))
        return put(data, "train.decay_at", tuple(parts)), "train.decay_at"
    if case == "decay_at_zero":
        zero = draw(st.sampled_from(["0st", "0ep", "0ex", "0%", "0.0ep", f"{batch // 2 - 1}ex"]))
        return put(data, "train.decay_at", (zero,)), "train.decay_at"
    if case == "decay_at_twice":  # two boundaries on one step: the schedule decays once
        step = draw(st.integers(1, total - 1)) if total > 1 else 1
        same = [f"{step}st", f"{step * batch}ex", f"{100 * step / total:.10f}%"]
        parts = draw(st.lists(st.sampled_from(same), min_size=2, max_size=3))
        return put(data, "train.decay_at", tuple(parts)), "train.decay_at"
    if case == "decay_at_unused":  # boundaries for a schedule that has none
        data["train"]["schedule"] = draw(st.sampled_from(["constant", "cosine"]))
        return put(data, "train.decay_at", ("1st",)), "train.decay_at"
    if case == "nesterov_unused":  # nesterov for an optimizer without momentum
        data["train"]["optimizer"] = draw(st.sampled_from(["sgd", "adam", "adamw"]))
        return put(data, "train.nesterov", True), "train.nesterov"
    if case == "evaluate_levels":  # a level beyond pruning.levels
        beyond = draw(st.integers(levels + 1, levels + 50))
        spec = tuple(draw(st.permutations(chosen[:3] + [beyond])))
        return put(data, "pruning.evaluate_levels", spec), "pruning.evaluate_levels"
    if case == "levels":
        fewer = draw(st.integers(0, max(chosen) - 1))
        return put(data, "pruning.levels", fewer), "pruning.levels"
    if case == "no_prunable":  # every pruning.prune.* False
        for kind in kinds:
            data["pruning"]["prune"][kind] = False
        return data, "pruning.prune"
    if case == "lenet_without_dense":  # LeNet has only dense and output kernels
        data["pruning"]["prune"].update(dense=False, output=False)
        for kind in ("conv", "shortcut"):
            data["pruning"]["prune"][kind] = draw(st.booleans())
        return data, "pruning.prune"
    if case == "eval_every":  # evaluating less often than once per run
        return put(data, "train.eval_every", draw(past_end.filter(
            lambda s: durations.StepConverter(per_epoch, batch, total).to_steps(s) > total))
        ), "train.eval_every"
    if case == "batch_size":  # a batch larger than the training set
        size = train_size(ml_collections.ConfigDict(data))
        return put(data, "train.batch_size", draw(st.integers(size + 1, 10 * size))), \
            "train.batch_size"
    if case == "source":  # only MNIST is embedded
        return put(data, "data.source", "embedded"), "data.source"
    if case == "dataset":
        return put(data, "data.dataset", "cifar10"), "data.dataset"
    assert case == "duration"  # training shorter than the evaluation interval
    eval_every = durations.StepConverter(per_epoch, batch, total).to_steps(
        data["train"]["eval_every"])
    assume(eval_every > 1)
    shorter = draw(st.integers(1, min(eval_every, total) - 1))
    return put(data, "train.duration", f"{shorter}st"), "train.duration"


@FUZZ
@given(base=bases, draw=st.data())
def test_contradiction_is_rejected(base, draw):
    data, key = draw.draw(contradictions(shipped(*base)), label="mutation")
    assert_rejected(data, key)
