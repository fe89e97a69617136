"""Config validation: every mistake is a ConfigError naming the offending key."""

from __future__ import annotations

import re

import ml_collections
import pytest

from jaxtickets import config_schema
from jaxtickets.errors import ConfigError


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
    {"pruning.evaluate_levels": "morcos"},
    {"pruning.evaluate_levels": "0,3,20"},
    {"pruning.rewind": "3.3%"},
    {"branches": "ticket"},
    {"pruning.schedule": "one_shot", "branches": "supermask_init,supermask_constant"},
    {"data.normalize": "unit"},
    {"train.optimizer": "momentum", "train.schedule": "step", "train.decay_at": "2ep,4ep"},
    {"pruning.prune.output": False, "pruning.rates.output": 0.0},  # unpruned kind: rate unused
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
    ({"train.decay_at": "2ep,later"}, "train.decay_at"),
    ({"pruning.evaluate_levels": "0,21"}, "pruning.evaluate_levels"),
    ({"pruning.evaluate_levels": "-1,3"}, "pruning.evaluate_levels"),
    ({"pruning.evaluate_levels": "some"}, "pruning.evaluate_levels"),
    ({"branches": "random_reinit"}, "branches"),  # iterative: the ticket is required
    ({"data.normalize": "minmax"}, "data.normalize"),
    ({"runtime.cpu_convolutions": "onednn"}, "runtime.cpu_convolutions"),
    ({"branches": "ticket,reinit"}, "branches"),
    ({"data.validation_size": 0}, "data.validation_size"),
    ({"data.source": "embedded", "data.dataset": "cifar10"}, "data.source"),
    ({"pruning.prune.conv": False, "pruning.prune.dense": False,
      "pruning.prune.output": False}, "pruning.prune"),
])
def test_invalid_config_names_key(changes, key):
    _rejects(_config(**changes), key)


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
    assert config_schema.parse_levels("morcos", 30) == [0, 1, 2, 3, 4, 5, 6] + list(
        range(9, 31, 3))
    assert config_schema.parse_levels("all", 3) == [0, 1, 2, 3]
    assert config_schema.parse_levels("6, 0,3,3", 8) == [0, 3, 6]


def test_keys_added_later_leave_older_identities_unchanged():
    """A workdir made before a key existed keeps its identity while the key holds the value
    that reproduces the older behaviour; any other value is another experiment."""
    import hashlib
    import json

    from conftest import smoke_config
    from jaxtickets.config_schema import ADDED_LATER, RUNTIME_KEY, identity

    config = smoke_config()
    older = config.to_dict()
    older.pop(RUNTIME_KEY)
    for dotted in ADDED_LATER:
        group, key = dotted.split(".")
        del older[group][key]  # as configs were before the key was added
    older_hash = hashlib.sha256(json.dumps(older, sort_keys=True, separators=(",", ":"))
                                .encode()).hexdigest()[:16]
    assert identity(config) == older_hash
    assert identity(smoke_config(model__compute_dtype="bfloat16")) != older_hash
