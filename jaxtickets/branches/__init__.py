"""Control branches by name: the registry that configs, the schema and the plan read.

`branches = "ticket,random_reinit,noise_0.5"` names the ticket (always the evaluated
ticket itself) and the controls trained beside it at each evaluated level. Each
control is a `Branch` subclass in a module of its own here; adding one is that module
and one line in `_BUILTIN` (or `register(MyBranch())` from your own code, as
docs/extending.md shows). A family of branches named by a parameter (`noise_C`,
`random_prune_S_at_A`) is a parser of names (`register_family`). Nothing in the driver
or the schema names a branch.
"""

from __future__ import annotations

from typing import Callable, Optional

from jaxtickets.branches.base import (ACTION_STREAM, PERMUTATION_STREAM, Branch, BranchJob,
                                      LevelContext, PlanInfo, RunCost, from_scratch)
from jaxtickets.branches.learned_supermask import LearnedSupermask
from jaxtickets.branches.permuted import RandomTicket, RandomTicketLocal
from jaxtickets.branches.perturbed import NOISE_PREFIX, Noise, ReinitDm
from jaxtickets.branches.prune_at_init import PruneAtInit
from jaxtickets.branches.random_adjusted import RandomAdjusted
from jaxtickets.branches.random_prune import FAMILY as RANDOM_PRUNE_FAMILY, RandomPrune
from jaxtickets.branches.reinit import RandomReinit
from jaxtickets.branches.small_dense import SmallDense
from jaxtickets.branches.supermasks import SupermaskConstant, SupermaskInit
from jaxtickets import config_values
from jaxtickets.errors import ConfigError
from jaxtickets.registry import Registry

TICKET = "ticket"  # the level's ticket itself: trained by the driver, not a control

_REGISTRY: Registry[Branch] = Registry("control branch")
# Families of branches named by a parameter ('noise_0.5'): a parser per family that
# returns the branch of a name, or None for a name that is not in the family.
_FAMILIES: dict[str, Callable[[str], Optional[Branch]]] = {}


def register(branch: Branch) -> Branch:
    """Adds `branch` under its name; a name already taken is an error."""
    if branch.name == TICKET:
        raise ValueError(f"{TICKET!r} is the ticket itself, not a control branch")
    return _REGISTRY.add(branch.name, branch)


def unregister(name: str) -> None:
    """Removes a registered branch (tests that register a toy branch clean up so)."""
    _REGISTRY.remove(name)


def register_family(example: str, parse: Callable[[str], Optional[Branch]]) -> None:
    _FAMILIES[example] = parse


def get(name: str) -> Branch:
    if name in _REGISTRY:
        return _REGISTRY.get(name, "branches")
    for parse in _FAMILIES.values():
        branch = parse(name)
        if branch is not None:
            return branch
    raise KeyError(name)


def is_known(name: str) -> bool:
    try:
        get(name)
    except KeyError:
        return False
    return True


def names() -> tuple[str, ...]:
    """'ticket' and the registered controls, in registration order."""
    return (TICKET,) + _REGISTRY.names()


def registered() -> tuple[Branch, ...]:
    return tuple(_REGISTRY.values())


def parse_branches(spec: tuple, key: str = "branches", one_shot: bool = False) -> list[str]:
    """The branch names of `spec`. Iterative trajectories need 'ticket' (IMP trains it
    at every level anyway); a one-shot one may leave it out, and then trains only its
    dense level 0 and runs the listed branches at the evaluated levels (P4's supermask
    sweep over one-shot masks of one trained network)."""
    listed = config_values.names(spec, key)
    for name in listed:
        if name != TICKET and not is_known(name):
            families = "; ".join(_FAMILIES)
            raise ConfigError(f"{key}: unknown branch {name!r}; choose from {names()} "
                              f"or a family: {families}")
    if len(set(listed)) != len(listed):
        raise ConfigError(f"{key}: a branch is listed twice in {spec!r}")
    if TICKET not in listed and not one_shot:
        raise ConfigError(f"{key}: 'ticket' is required for an iterative trajectory (IMP "
                          "trains it at every level); only a one-shot schedule may leave "
                          "it out")
    after = [name for name in listed if name != TICKET and get(name).reads_trained_ticket]
    if after and TICKET not in listed:
        raise ConfigError(f"{key}: {after[0]!r} starts from the level's trained ticket, "
                          "so 'ticket' must be listed too")
    return listed


def draws(name: str, control_draws: int) -> int:
    """How many independent runs of `name` a level trains: `control_draws` for a random
    control, one for the ticket and the deterministic controls."""
    return control_draws if name != TICKET and get(name).random else 1


def run_name(name: str, draw: int) -> str:
    """The directory of a draw under its level: draw 0 is the branch itself (as before
    draws existed, so older workdirs keep their runs), draw d > 0 `<branch>_draw<d>`."""
    return name if draw == 0 else f"{name}_draw{draw}"


def run_label(name: str, draw: int) -> str:
    """How progress lines name a draw: 'random_reinit', 'random_reinit draw 2'."""
    return name if draw == 0 else f"{name} draw {draw}"


def check_config(config, listed: set[str]) -> None:
    """pruning.controls_from_scratch, then every registered branch's own keys;
    `listed`: the branches some source runs."""
    spec = config.pruning.controls_from_scratch
    chosen = config_values.names(spec, "pruning.controls_from_scratch")
    capable = tuple(b.name for b in registered() if b.can_train_from_scratch)
    for name in chosen:
        if name not in capable:
            raise ConfigError(f"pruning.controls_from_scratch: {name!r} cannot train from "
                              f"scratch; choose from {capable} (the others start "
                              "from the ticket's rewind weights)")
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"pruning.controls_from_scratch: a branch is listed twice in "
                          f"{spec!r}")
    for name in chosen:
        if name not in listed:
            raise ConfigError(f"pruning.controls_from_scratch: {name!r} is not a branch any "
                              "trajectory runs (branches, generation.NAME.branches), so "
                              "nothing reads it")
    if not any(name != TICKET and get(name).random for name in listed):
        config_values.refuse_unread(config, "pruning.control_draws", "only read when a "
                                    "random control branch runs (e.g. random_reinit)")
    for branch in registered():
        branch.check_config(config, branch.name in listed)


_BUILTIN = (RandomReinit(), RandomTicket(), RandomTicketLocal(), ReinitDm(), PruneAtInit(),
            RandomAdjusted(), SmallDense(), SupermaskInit(), SupermaskConstant(),
            LearnedSupermask())
for _branch in _BUILTIN:
    register(_branch)
register_family(f"{NOISE_PREFIX}C with C > 0, e.g. noise_0.5", Noise.parse)
register_family(RANDOM_PRUNE_FAMILY, RandomPrune.parse)

__all__ = ["ACTION_STREAM", "PERMUTATION_STREAM", "Branch", "BranchJob", "LevelContext",
           "PlanInfo", "RunCost", "TICKET", "check_config", "draws", "from_scratch", "get",
           "names", "parse_branches", "register", "run_label", "run_name", "unregister"]
