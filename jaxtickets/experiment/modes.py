"""What a run does, by name: `--mode=lottery` (the config as written) or `--mode=train`.

OpenLTH users start with `open_lth.py train`: one dense network trained with the
experiment's model, data and recipe, no pruning. Here that is a config with no pruning
levels, no control branches and no ticket sources; `train_only` derives it from any
config, so the same file serves both ("how good is the dense network?" first, the
lottery experiment after). The derived config is an experiment of its own (its own
identity, docs/design.md, invariant 7): give it its own workdir.
"""

from __future__ import annotations

import copy

import ml_collections

LOTTERY = "lottery"
TRAIN = "train"
MODES = (LOTTERY, TRAIN)


def train_only(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` that trains its evaluation's dense network once per replicate:
    level 0 only, the ticket (the dense run itself) as the only branch, no sources. The
    pruning and supermask settings go back to their defaults (nothing would read them,
    and the schema refuses a set key that nothing reads), except which layers count as
    prunable (pruning.prune, pruning.first_conv_layers), which the dense run's row
    reports its density over."""
    from jaxtickets.config_schema import base_config

    defaults = base_config()
    derived = copy.deepcopy(config)
    with derived.unlocked():
        prune, first_conv = derived.pruning.prune, derived.pruning.first_conv_layers
        derived.pruning = copy.deepcopy(defaults.pruning)
        derived.pruning.prune = prune
        derived.pruning.first_conv_layers = first_conv
        derived.pruning.levels = 0
        derived.supermask = copy.deepcopy(defaults.supermask)
        derived.branches = ("ticket",)
        derived.generation = ml_collections.ConfigDict()
    return derived


def apply(config: ml_collections.ConfigDict, mode: str) -> ml_collections.ConfigDict:
    """`config` for `mode`; an unknown mode is a ValueError naming the choices."""
    if mode == LOTTERY:
        return config
    if mode == TRAIN:
        return train_only(config)
    raise ValueError(f"--mode: unknown mode {mode!r}; choose one of {MODES}")
