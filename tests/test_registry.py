"""The one registry every named concept uses (models, branches, tasks, criteria, actions)."""

from __future__ import annotations

import pytest

from jaxtickets import branches, tasks
from jaxtickets.errors import ConfigError
from jaxtickets.models import create_model, register_model
from jaxtickets.registry import Registry
from jaxtickets.sparsity import actions, criteria

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def test_a_taken_name_is_refused_and_order_is_kept():
    registry = Registry("widget")
    registry.add("b", 1)
    registry.add("a", 2)
    assert registry.names() == ("b", "a")
    with pytest.raises(ValueError, match="widget named 'a' exists already"):
        registry.add("a", 3)
    assert registry.get("a", "x.widget") == 2
    registry.remove("a")
    registry.remove("a")  # removing twice is harmless
    assert "a" not in registry and registry.names() == ("b",)


def test_an_unknown_name_names_the_key_and_the_choices():
    registry = Registry("widget")
    registry.add("gear", 1)
    with pytest.raises(ConfigError, match=r"^parts\.kind: unknown widget 'cog'; "
                                          r"choose one of \('gear',\)$"):
        registry.get("cog", "parts.kind")


@pytest.mark.parametrize("add", [
    lambda: register_model("lenet300_100", lambda n, d: None),
    lambda: tasks.register(tasks.get("labels")),
    lambda: criteria.register("movement", lambda wi, wf: wf),
    lambda: actions.register_mask1("reshuffle", lambda kept, fresh, sigma, rng: kept),
    lambda: actions.register_mask0("hybrid", None),
    lambda: branches.register(branches.get("random_reinit")),
])
def test_every_built_in_registry_refuses_a_taken_name(add):
    with pytest.raises(ValueError, match="exists already"):
        add()


def test_unknown_names_in_every_registry_name_their_key():
    with pytest.raises(ConfigError, match="^model.name: unknown model 'lenet'"):
        create_model("lenet", 10)
    with pytest.raises(ConfigError, match="^pruning.criterion: unknown mask criterion"):
        criteria.score("biggest", [1.0], [1.0])
    with pytest.raises(ConfigError, match="^evaluation.task: unknown task"):
        tasks.get("jigsaw", "evaluation.task")
