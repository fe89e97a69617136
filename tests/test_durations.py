"""Durations with units: parsing, conversion to steps, and the four-unit description."""

from __future__ import annotations

import pytest

from jaxtickets import durations
from jaxtickets.errors import ConfigError

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

# 100 steps per epoch at batch 128 (12,800 examples), a 30,000-step budget.
CONVERTER = durations.StepConverter(steps_per_epoch=100, batch_size=128, total_steps=30_000)


@pytest.mark.parametrize("text, value, unit", [
    ("2500st", 2500.0, "st"),
    ("3ep", 3.0, "ep"),
    ("3840000ex", 3_840_000.0, "ex"),
    ("3.3%", 3.3, "%"),
    (" 0.5ep ", 0.5, "ep"),
])
def test_parse(text, value, unit):
    assert durations.parse(text, "k") == (value, unit)


@pytest.mark.parametrize("text, steps", [
    ("2500st", 2500),
    ("3ep", 300),
    ("3840000ex", 30_000),   # 3,840,000 / 128
    ("3.3%", 990),           # 3.3% of 30,000
    ("0st", 0),
    ("0.5ep", 50),
    ("200ex", 2),            # 1.5625 steps rounds to nearest
])
def test_to_steps(text, steps):
    assert CONVERTER.to_steps(text, "pruning.rewind") == steps


@pytest.mark.parametrize("steps", [0, 990, 2500, 30_000])
def test_describe_is_consistent_in_all_units(steps):
    described = CONVERTER.describe(steps)
    assert set(described) == {"steps", "epochs", "examples", "percent"}
    assert described["steps"] == steps
    assert described["epochs"] == pytest.approx(steps / 100)
    assert described["examples"] == steps * 128
    assert described["percent"] == pytest.approx(100 * steps / 30_000)
    # Each unit, written back as a duration string, converts to the same step.
    for unit, suffix in (("steps", "st"), ("epochs", "ep"), ("examples", "ex"),
                         ("percent", "%")):
        assert CONVERTER.to_steps(_duration(described[unit], suffix)) == steps


def _duration(value: float, suffix: str) -> str:
    """A duration string for `value` ('990st', '9.9ep', '3.3%')."""
    if suffix == "st":
        return f"{int(value)}st"
    return f"{value:.10f}".rstrip("0").rstrip(".") + suffix


@pytest.mark.parametrize("bad", ["3 epochs", "", 5, "1.5st", "-1st", "3", "st", "1e3st",
                                 None, "2500 st extra"])
@pytest.mark.parametrize("call", ["parse", "to_steps", "total_steps"])
def test_malformed_raises_config_error_naming_key(bad, call):
    key = "pruning.rewind_under_test"
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        if call == "parse":
            durations.parse(bad, key)
        elif call == "to_steps":
            CONVERTER.to_steps(bad, key)
        else:
            durations.total_steps(bad, 100, 128, key)


@pytest.mark.parametrize("text, steps", [("50000st", 50_000), ("3ep", 300),
                                         ("3840000ex", 30_000)])
def test_total_steps(text, steps):
    assert durations.total_steps(text, 100, 128, "train.duration") == steps


def test_total_steps_refuses_percent():
    with pytest.raises(ConfigError, match=r"train\.duration"):
        durations.total_steps("50%", 100, 128, "train.duration")
