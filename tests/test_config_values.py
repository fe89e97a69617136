"""List keys and inheriting source keys: written as lists, on the command line, and in the
identity (jaxtickets/config_values.py)."""

from __future__ import annotations

import pathlib

import pytest
from absl import flags
from ml_collections import config_flags

from conftest import load_config, smoke_config
from jaxtickets import config_schema
from jaxtickets.config_schema import add_source, identity, parse_levels, validate
from jaxtickets.config_values import names
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.setup import evaluation_recipe, source_recipe
from jaxtickets.experiment.sources import color_jitter, trajectory_of

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def from_command_line(spec: str, *overrides: str):
    """The config `--config=configs/SPEC` and `overrides` give, parsed as main.py does."""
    argv = ["main", f"--config={CONFIGS / spec}", *overrides]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                             sys_argv=argv)
    values(argv)
    return holder.value


def test_command_line_lists_equal_the_same_lists_written_in_a_config():
    given = from_command_line(
        "mnist_lenet.py:smoke", "--config.branches=ticket,random_ticket,learned_supermask",
        "--config.pruning.evaluate_levels=0,1", "--config.train.schedule=step",
        "--config.train.decay_at=5st", "--config.train.decay_at=10st",
        "--config.pruning.controls_from_scratch=random_ticket",
        "--config.supermask.logit_inits=-1,0.5")
    written = load_config("mnist_lenet", "smoke")
    written.branches = ["ticket", "random_ticket", "learned_supermask"]
    written.pruning.evaluate_levels = (0, 1)
    written.train.schedule = "step"
    written.train.decay_at = ("5st", "10st")
    written.pruning.controls_from_scratch = ("random_ticket",)
    written.supermask.logit_inits = (-1, 0.5)
    validate(given)
    assert names(given.branches, "branches") == ["ticket", "random_ticket", "learned_supermask"]
    assert parse_levels(given.pruning.evaluate_levels, given.pruning.levels) == [0, 1]
    assert evaluation_recipe(given).decay_at == ("5st", "10st")
    assert identity(given) == identity(written)


def test_named_level_selections_from_the_command_line():
    config = from_command_line("mnist_lenet.py:smoke", "--config.pruning.levels=9",
                               "--config.pruning.evaluate_levels=morcos")
    assert parse_levels(config.pruning.evaluate_levels, 9) == [0, 1, 2, 3, 4, 5, 6, 9]


def test_a_list_given_as_a_string_is_refused_naming_the_key():
    config = smoke_config()
    with pytest.raises(TypeError):  # ml_collections keeps each key's type
        config.branches = "ticket,random_reinit"
    source = config_schema.source_defaults()
    with pytest.raises(ConfigError, match=r"^generation\.x\.branches: expected tuple"):
        add_source(config, "x", branches="ticket")
    with pytest.raises(ConfigError, match=r"^generation\.x\.flip: expected bool"):
        add_source(config, "x", flip=1)
    assert source.branches is None


def test_identity_does_not_depend_on_how_a_list_is_spelled():
    spellings = [("ticket", "random_reinit"), ["ticket", "random_reinit"],
                 ("ticket,random_reinit",), (" ticket", "random_reinit ")]
    hashes = {identity(smoke_config(branches=s)) for s in spellings}
    assert len(hashes) == 1
    assert identity(smoke_config(branches=("ticket",))) not in hashes


def test_a_source_left_none_inherits_and_a_set_key_overrides():
    config = load_config("mnist_sources", "smoke")
    name = next(iter(config.generation.keys()))
    source = config.generation[name]
    assert source.optimizer is None and source.criterion is None
    assert source_recipe(config, name).optimizer == evaluation_recipe(config).optimizer
    assert trajectory_of(config, name).criterion == config.pruning.criterion
    assert color_jitter(config, name) is config.data.color_jitter
    source.optimizer, source.criterion = "sgd", "magnitude_increase"
    source.learning_rate = 0.05
    validate(config)
    assert source_recipe(config, name).optimizer == "sgd"
    assert source_recipe(config, name).learning_rate == 0.05
    assert trajectory_of(config, name).criterion == "magnitude_increase"


def test_an_empty_source_list_is_not_inheriting():
    """decay_at=() trains a source without decay under a step schedule whose evaluation
    decays; None inherits the decay. They are different experiments."""
    config = load_config("mnist_sources", "smoke")
    config.train.schedule, config.train.decay_at = "step", ("20st",)
    name = next(iter(config.generation.keys()))
    inheriting = identity(config)
    assert source_recipe(config, name).decay_at == ("20st",)
    config.generation[name].decay_at = ()
    validate(config)
    assert source_recipe(config, name).decay_at == ()
    assert identity(config) != inheriting


@pytest.mark.parametrize("key, value", [
    ("learning_rate", 0.0), ("batch_size", 0), ("weight_decay", -1.0), ("pad_crop", -1),
    ("optimizer", ""), ("dataset", ""), ("criterion", "")])
def test_the_old_inherit_markers_are_refused(key, value):
    """'' / 0 / -1 meant "as the evaluation" before None did; now they would be silently
    wrong values, so each is refused naming the key."""
    config = load_config("mnist_sources", "smoke")
    name = next(iter(config.generation.keys()))
    config.generation[name][key] = value
    with pytest.raises(ConfigError, match=rf"^generation\.{name}\.{key}: "):
        validate(config)
