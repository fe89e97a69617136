"""Durations with units: every schedule point is written with a unit and converted once.

Lottery-ticket papers give rewind points in steps, epochs, examples seen or percent
of training (P0 App. B, Table 1). Writing the unit in the config ('2500st', '1ep',
'3840000ex', '3.3%') removes the ambiguity; everything downstream works in steps.
"""

from __future__ import annotations

import dataclasses
import math
import re

from jaxtickets.errors import ConfigError

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(st|ep|ex|%)\s*$")
UNITS = {"st": "steps", "ep": "epochs", "ex": "examples", "%": "percent"}


@dataclasses.dataclass(frozen=True)
class StepConverter:
    """Converts durations to steps for one training run (its own data size and batch)."""

    steps_per_epoch: int
    batch_size: int
    total_steps: int

    def to_steps(self, duration: str, key: str = "duration") -> int:
        """Parses `duration` and returns whole steps (rounded to nearest)."""
        value, unit = parse(duration, key)
        if unit == "st":
            steps = value
        elif unit == "ep":
            steps = value * self.steps_per_epoch
        elif unit == "ex":
            steps = value / self.batch_size
        else:
            steps = value / 100.0 * self.total_steps
        return int(math.floor(steps + 0.5))

    def describe(self, steps: int) -> dict[str, float]:
        """The same point in all four units (logged so runs on different data compare)."""
        return {
            "steps": steps,
            "epochs": steps / self.steps_per_epoch,
            "examples": steps * self.batch_size,
            "percent": 100.0 * steps / self.total_steps if self.total_steps else 0.0,
        }


def parse(duration: str, key: str = "duration") -> tuple[float, str]:
    """Returns (value, unit); raises ConfigError naming `key` on anything malformed."""
    if not isinstance(duration, str):
        raise ConfigError(
            f"{key}: expected a duration string such as '2500st', '3ep', '3840000ex' or "
            f"'3.3%', got {duration!r} of type {type(duration).__name__}"
        )
    match = _PATTERN.match(duration)
    if not match:
        raise ConfigError(
            f"{key}: cannot parse duration {duration!r}; write a number followed by one "
            "unit: st (steps), ep (epochs), ex (examples seen) or % (of training)"
        )
    value = float(match.group(1))
    unit = match.group(2)
    if unit == "st" and value != int(value):
        raise ConfigError(f"{key}: a step count must be whole, got {duration!r}")
    return value, unit


# train.eval_every's name for "once, when training ends" (OpenLTH's evaluate-only-at-
# end): the interval is the whole budget, so a run evaluates at its last step only.
AT_END = "end"


def check_interval(duration: str, key: str) -> None:
    """An interval between evaluations: a duration, or AT_END."""
    if duration != AT_END:
        parse(duration, key)


def total_steps(duration: str, steps_per_epoch: int, batch_size: int, key: str) -> int:
    """The training budget in steps; the budget itself cannot be given in percent."""
    _, unit = parse(duration, key)
    if unit == "%":
        raise ConfigError(f"{key}: the training budget cannot be a percentage of itself")
    return StepConverter(steps_per_epoch, batch_size, 0).to_steps(duration, key)
