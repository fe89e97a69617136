"""Config validation: every mistake is a ConfigError naming the offending key."""

from __future__ import annotations

import re

import ml_collections
import pytest

from jaxtickets import config_schema
from jaxtickets.errors import ConfigError

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def _config(**changes) -> ml_collections.ConfigDict:
    """base_config() with dotted-key changes ('train.batch_size'), built from a plain dict
    so that wrong types and unknown keys get past ConfigDict's own type checks."""
    data = config_schema.base_config().to_dict()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return ml_collections.ConfigDict(data)


def _rejects(config: ml_collections.ConfigDict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        config_schema.validate(config)


def test_base_config_validates():
    config_schema.validate(config_schema.base_config())


@pytest.mark.parametrize("changes", [
    {"pruning.method": "global"},
    {"pruning.evaluate_levels": ("morcos",)},
    {"pruning.evaluate_levels": (0, 3, 20)},
    {"pruning.rewind": "3.3%"},
    {"branches": ("ticket",)},
    {"pruning.schedule": "one_shot", "branches": ("supermask_init", "supermask_constant")},
    {"data.normalize": "unit"},
    {"train.optimizer": "momentum", "train.schedule": "step", "train.decay_at": ("2ep", "4ep")},
    {"pruning.prune.output": False},  # an unpruned kind, its rate left at the default
    {"runtime.cpu_convolutions": "eigen"},
])
def test_valid_variants(changes):
    config_schema.validate(_config(**changes))


@pytest.mark.parametrize("changes, key", [
    ({"bogus": 1}, "bogus"),
    ({"pruning.bogus": 1}, "pruning.bogus"),
    ({"train.batch_size": "60"}, "train.batch_size"),
    ({"train.learning_rate": "1e-3"}, "train.learning_rate"),
    ({"train.batch_size": 60.0}, "train.batch_size"),
    ({"pruning.levels": True}, "pruning.levels"),
    ({"train.nesterov": 1}, "train.nesterov"),
    ({"model": "lenet300_100"}, "model"),
    ({"pruning.rates.dense": 0.0}, "pruning.rates.dense"),
    ({"pruning.rates.dense": 1.0}, "pruning.rates.dense"),
    ({"pruning.rates.dense": 1.5}, "pruning.rates.dense"),
    ({"pruning.rates.output": -0.1}, "pruning.rates.output"),
    ({"pruning.method": "global", "pruning.rate": 0}, "pruning.rate"),
    ({"pruning.method": "global", "pruning.rate": 1.0}, "pruning.rate"),
    ({"pruning.method": "random"}, "pruning.method"),
    ({"model.name": "resnet1000"}, "model.name"),
    ({"data.dataset": "imagenet"}, "data.dataset"),
    ({"train.optimizer": "lamb"}, "train.optimizer"),
    ({"train.schedule": "linear"}, "train.schedule"),
    ({"pruning.rewind": "2500 steps"}, "pruning.rewind"),
    ({"pruning.rewind": "1.5st"}, "pruning.rewind"),
    ({"train.duration": "50%x"}, "train.duration"),
    ({"train.decay_at": ("2ep", "later")}, "train.decay_at"),
    ({"pruning.evaluate_levels": (0, 21)}, "pruning.evaluate_levels"),
    ({"pruning.evaluate_levels": (-1, 3)}, "pruning.evaluate_levels"),
    ({"pruning.evaluate_levels": ("some",)}, "pruning.evaluate_levels"),
    ({"branches": ("random_reinit",)}, "branches"),  # iterative: the ticket is required
    ({"data.normalize": "minmax"}, "data.normalize"),
    ({"runtime.cpu_convolutions": "onednn"}, "runtime.cpu_convolutions"),
    ({"branches": ("ticket", "reinit")}, "branches"),
    ({"data.validation_size": -1}, "data.validation_size"),  # 0: no validation split
    ({"data.source": "embedded", "data.dataset": "cifar10"}, "data.source"),
    ({"pruning.prune.conv": False, "pruning.prune.dense": False,
      "pruning.prune.output": False}, "pruning.prune"),
])
def test_invalid_config_names_key(changes, key):
    _rejects(_config(**changes), key)


# A key set to other than its default: (key, value, settings that never read it,
# settings that read it, what the error says reads it).
IMAGENET = {"data.dataset": "imagenet2012", "data.validation_size": 0,
            "model.name": "resnet18_imagenet"}
UNREAD = [
    ("pruning.rate", 0.5, {}, {"pruning.method": "global"}, "pruning.method='global'"),
    ("pruning.rates.dense", 0.5, {"pruning.method": "global"}, {}, "'layerwise'"),
    ("pruning.rates.output", 0.05, {"pruning.prune.output": False}, {},
     "pruning.prune.output=True"),
    ("train.momentum", 0.5, {}, {"train.optimizer": "momentum"}, "'momentum'"),
    ("train.decay_factor", 0.5, {}, {"train.schedule": "step"}, "train.schedule='step'"),
    ("pruning.one_shot_spacing", "linear", {},
     {"pruning.schedule": "one_shot", "pruning.levels": 3}, "'one_shot'"),
    ("supermask.steps", 10, {}, {"branches": ("ticket", "learned_supermask"),
                                 "supermask.logit_inits": (1,)}, "learned_supermask"),
    ("pruning.natural_zero_threshold", 1e-3, {}, {"branches": ("ticket", "random_adjusted")},
     "random_adjusted"),
    ("pruning.control_draws", 3, {"branches": ("ticket",)}, {}, "random control"),
    ("pruning.restart_schedule", True, {}, {"pruning.rewind": "100st"}, "later than step 0"),
    ("data.rotation_degrees", 10.0, {}, IMAGENET, "streamed"),
    ("runtime.reader_threads", 2, {}, IMAGENET, "streamed"),
]


@pytest.mark.parametrize("key, value, unread, read, reason", UNREAD)
def test_a_key_no_chosen_setting_reads_is_refused(key, value, unread, read, reason):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: set to .* only read .*"
                                          rf"{re.escape(reason)}"):
        config_schema.validate(_config(**unread, **{key: value}))
    config_schema.validate(_config(**read, **{key: value}))


def test_attribute_assignment_of_unknown_key_is_rejected():
    config = config_schema.base_config()
    config.pruning.bogus = 0.5  # ConfigDicts accept new keys; validate must not
    _rejects(config, "pruning.bogus")


_STEPS_OK = dict(total=1000, rewind=0, eval_every=100, checkpoint_every=500, decay_at=[],
                 warmup=0)


@pytest.mark.parametrize("rewind", [1000, 1001, -1])
def test_validate_steps_rejects_rewind_outside_training(rewind):
    with pytest.raises(ConfigError, match=re.escape("pruning.rewind")):
        config_schema.validate_steps(**{**_STEPS_OK, "rewind": rewind})


@pytest.mark.parametrize("changes, key", [
    ({"total": 0}, "train.duration"),
    ({"eval_every": 0}, "train.eval_every"),
    ({"eval_every": 1001}, "train.eval_every"),
    ({"warmup": 1001}, "train.warmup"),
    ({"decay_at": [1000]}, "train.decay_at"),
])
def test_validate_steps_other_keys(changes, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        config_schema.validate_steps(**{**_STEPS_OK, **changes})


def test_validate_steps_accepts_last_valid_rewind():
    config_schema.validate_steps(**{**_STEPS_OK, "rewind": 999})


@pytest.mark.parametrize("changes, same", [
    ({"runtime.steps_per_call": 7}, True),
    ({"runtime.plot": False, "runtime.log_every_seconds": 1.0}, True),
    ({"train.learning_rate": 1.0e-3}, False),
    ({"seed": 1}, False),
    ({"pruning.rates.output": 0.2}, False),
])
def test_identity(changes, same):
    base = config_schema.identity(config_schema.base_config())
    assert (config_schema.identity(_config(**changes)) == base) is same


def test_identity_is_key_order_independent():
    config = config_schema.base_config()
    reordered = ml_collections.ConfigDict(dict(reversed(list(config.to_dict().items()))))
    assert config_schema.identity(reordered) == config_schema.identity(config)


def test_parse_levels():
    assert config_schema.parse_levels(("morcos",), 30) == [0, 1, 2, 3, 4, 5, 6] + list(
        range(9, 31, 3))
    assert config_schema.parse_levels(("all",), 3) == [0, 1, 2, 3]
    assert config_schema.parse_levels((6, 0, 3, 3), 8) == [0, 3, 6]
    # The command line's --config.pruning.evaluate_levels=all arrives as ('all',), and a
    # quoted '6, 0,3' as one element: its commas separate levels too.
    assert config_schema.parse_levels(("6, 0,3", 3), 8) == [0, 3, 6]
    for bad in ("all", (1.5,), (True,), ("all", 3), ()):
        with pytest.raises(ConfigError, match="pruning.evaluate_levels"):
            config_schema.parse_levels(bad, 8)


def test_keys_added_later_leave_older_identities_unchanged():
    """A workdir made before a key existed keeps its identity while the key holds the value
    that reproduces the older behaviour; any other value is another experiment."""
    import hashlib
    import json

    from conftest import smoke_config
    from jaxtickets.config_schema import ADDED_LATER, RUNTIME_KEY, identity
    from jaxtickets.config_values import legacy_form

    config = smoke_config()
    older = legacy_form(config.to_dict())  # lists as the comma-joined strings they were
    older.pop(RUNTIME_KEY)
    for dotted in ADDED_LATER:
        group, key = dotted.split(".")
        del older[group][key]  # as configs were before the key was added
    older_hash = hashlib.sha256(json.dumps(older, sort_keys=True, separators=(",", ":"))
                                .encode()).hexdigest()[:16]
    assert identity(config) == older_hash
    assert identity(smoke_config(model__compute_dtype="bfloat16")) != older_hash


# ---- data.source='npz' -------------------------------------------------------------------

def _npz(tmp_path) -> str:
    import numpy as np

    path = tmp_path / "data.npz"
    np.savez(path, x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.zeros(4, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    return str(path)


def test_npz_source_with_an_existing_file_validates(tmp_path):
    config_schema.validate(_config(**{"data.source": "npz", "data.npz_file": _npz(tmp_path)}))


@pytest.mark.parametrize("changes, key", [
    ({"data.source": "npz"}, "data.npz_file"),  # no file named
    ({"data.source": "tfds", "data.npz_file": "x.npz"}, "data.npz_file"),
    ({"data.source": "embedded", "data.npz_file": "x.npz"}, "data.source"),
    ({"data.source": "npz", "data.dataset": "imagenet2012"}, "data.source"),
    ({"data.source": "npz", "data.dataset": "places365_small"}, "data.dataset"),
    ({"data.npz_file": 3}, "data.npz_file"),
])
def test_npz_mistakes_name_the_key(changes, key):
    _rejects(_config(**changes), key)


def test_npz_file_that_does_not_exist_names_key_and_path(tmp_path):
    missing = str(tmp_path / "nowhere.npz")
    with pytest.raises(ConfigError, match=r"data\.npz_file: no such file .*nowhere\.npz"):
        config_schema.validate(_config(**{"data.source": "npz", "data.npz_file": missing}))


def test_npz_source_refuses_cross_dataset_ticket_sources(tmp_path):
    config = _config(**{"data.source": "npz", "data.npz_file": _npz(tmp_path)})
    config_schema.add_source(config, "other", dataset="fashion_mnist")
    with pytest.raises(ConfigError, match=r"generation\.other\.dataset: data\.source='npz'"):
        config_schema.validate(config)
    config_schema.add_source(config, "other", dataset="mnist")  # the same dataset: fine
    config_schema.validate(config)


def test_npz_file_left_empty_keeps_the_identity(tmp_path):
    base = config_schema.base_config()
    assert "npz_file" not in config_schema.canonical_json(base)
    changed = _config(**{"data.source": "npz", "data.npz_file": _npz(tmp_path)})
    assert config_schema.identity(changed) != config_schema.identity(base)


def test_a_source_key_its_task_never_reads_is_refused():
    for task, key, value in (("labels", "rotations", "all"),
                             ("rotnet", "labelled_fraction", 0.5)):
        config = config_schema.base_config()
        config_schema.add_source(config, "x", task=task, **{key: value})
        with pytest.raises(ConfigError, match=rf"^generation\.x\.{key}: set to .* only "
                                              r"read by the tasks \(.*'semisup'"):
            config_schema.validate(config)
        config.generation.x.task = "semisup"  # reads both
        config_schema.validate(config)


def test_a_control_from_scratch_must_be_a_branch_that_runs():
    with pytest.raises(ConfigError, match=r"^pruning\.controls_from_scratch: 'small_dense' "
                                          "is not a branch any trajectory runs"):
        config_schema.validate(_config(**{"pruning.controls_from_scratch": ("small_dense",)}))
    config_schema.validate(_config(**{"pruning.controls_from_scratch": ("small_dense",),
                                      "branches": ("ticket", "small_dense")}))
