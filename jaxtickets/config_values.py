"""How list keys and inheriting keys are read, and the form they take in the identity.

List keys (`branches`, `pruning.evaluate_levels`, `pruning.controls_from_scratch`,
`supermask.logit_inits`, `train.decay_at` and a source's `branches`, `evaluate_levels`,
`decay_at`) hold tuples; a config file writes lists or tuples. On the command line
ml_collections reads `--config.branches=ticket,random_reinit` as one element
'ticket,random_reinit', so an element's commas separate items too; a list of
durations is given as repeated flags (`--config.train.decay_at=80ep
--config.train.decay_at=120ep`) or quoted (`--config.train.decay_at="('80ep','120ep')"`).

A ticket source's key that inherits the evaluation's value holds None
(`source_defaults()`); setting it overrides.

Identities (config_schema.identity) hash every key as it was written before these keys
were lists and None: `legacy_form` maps them back, so a workdir made then still resumes
and the same experiment keeps its hash however its lists are spelled.
"""

from __future__ import annotations

from typing import Any

from jaxtickets.errors import ConfigError

# Top-level list keys, as (group or None, key).
LIST_KEYS = ((None, "branches"), ("pruning", "evaluate_levels"),
             ("pruning", "controls_from_scratch"), ("supermask", "logit_inits"),
             ("train", "decay_at"))
SOURCE_LIST_KEYS = ("branches", "evaluate_levels", "decay_at")
# A source's inheriting keys and the value that meant "as the evaluation" before None did.
SOURCE_INHERIT_LEGACY = {
    "dataset": "", "pad_crop": -1, "flip": -1, "color_jitter": -1, "optimizer": "",
    "learning_rate": 0.0, "weight_decay": -1.0, "batch_size": 0, "duration": "",
    "warmup": "", "decay_at": "", "rewind": "", "evaluate_levels": "", "branches": "",
    "schedule": "", "strategy": "", "criterion": "", "mask1_action": "",
    "mask0_action": ""}
SOURCE_FLAGS = ("flip", "color_jitter")  # were -1/0/1 before they were None/False/True


def items(value: Any, key: str) -> list:
    """The items of list key `key`: a tuple's elements, with each string element split
    at its commas (the command line's `--config.KEY=a,b`) and stripped; empty items are
    dropped."""
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise ConfigError(f"{key}: expected a list such as ('a', 'b'), got {value!r}")
    out = []
    for element in value:
        if isinstance(element, str):
            out.extend(part.strip() for part in element.split(",") if part.strip())
        elif isinstance(element, (tuple, list, dict)):
            raise ConfigError(f"{key}: expected a flat list, got {value!r}")
        else:
            out.append(element)
    return out


def names(value: Any, key: str) -> list[str]:
    listed = items(value, key)
    for name in listed:
        if not isinstance(name, str):
            raise ConfigError(f"{key}: expected names, got {name!r} in {value!r}")
    return listed


def numbers(value: Any, key: str) -> list[float]:
    listed = items(value, key)
    try:
        if any(isinstance(v, bool) for v in listed):
            raise ValueError
        return [float(v) for v in listed]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: expected numbers such as (-1, 0, 1), got {value!r}") from err


def durations(value: Any, key: str) -> list[str]:
    """Durations such as ('80ep', '120ep'); a bare number is read as written."""
    return [str(v) for v in items(value, key)]


def inherited(value: Any, evaluation_value: Any) -> Any:
    """A source's value, or the evaluation's where the source leaves it None."""
    return evaluation_value if value is None else value


def _legacy_item(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _legacy_list(value: Any) -> str:
    return ",".join(_legacy_item(v) for v in items(value, "list"))


def legacy_form(data: dict) -> dict:
    """`data` (a config's to_dict(), changed in place and returned) with list keys as
    comma-joined strings and a source's None as the neutral value it replaced."""
    for group, key in LIST_KEYS:
        holder = data if group is None else data.get(group, {})
        if key in holder and isinstance(holder[key], (tuple, list)):
            holder[key] = _legacy_list(holder[key])
    for source in data.get("generation", {}).values():
        for key, neutral in SOURCE_INHERIT_LEGACY.items():
            if source.get(key, 0) is None:
                source[key] = neutral
            elif key in SOURCE_FLAGS and isinstance(source.get(key), bool):
                source[key] = int(source[key])
            elif key in SOURCE_LIST_KEYS and isinstance(source.get(key), (tuple, list)):
                # An empty list is not "inherit" (None): a spelling no string had.
                source[key] = _legacy_list(source[key]) or "[]"
    return data


def value_at(config: Any, dotted: str) -> Any:
    """The value of key `dotted` ('pruning.rate') in `config`; a list as a tuple."""
    for part in dotted.split("."):
        config = config[part]
    return tuple(config) if isinstance(config, list) else config


def refuse_unread(config: Any, dotted: str, reason: str) -> None:
    """Raises ConfigError if key `dotted` (e.g. 'pruning.rate') holds other than its
    default although the chosen settings never read it: set but ignored, it would
    silently change nothing. `reason` says what reads it ('only read when
    pruning.method='global'')."""
    from jaxtickets.config_schema import default_of

    value, default = value_at(config, dotted), default_of(dotted)
    if value != default:
        raise ConfigError(f"{dotted}: set to {value!r}, but it is {reason}; leave it at "
                          f"{default!r} or change the setting that reads it")
