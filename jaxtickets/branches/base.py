"""What a control branch is: a class that says how it derives a run from a level's ticket.

A branch is trained (or, for P4's supermasks, evaluated) at an evaluated level beside
the ticket. Its class declares what the plan and the schema need to know (is it random,
can it train from scratch, at which levels it runs, what it costs) and does its own
work: `mask` and `weights` for the common case, `run` for a branch that needs more (a
model of its own, several runs per level). The executor gives it a `BranchJob`: the
level's context and the tools to train, evaluate and draw randomness.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TYPE_CHECKING, Any, Optional

from jaxtickets import config_values
from jaxtickets.sparsity import actions

if TYPE_CHECKING:
    import ml_collections

    from jaxtickets.experiment.driver import Experiment

PyTree = Any
# PRNG streams of a control's draws (with the replicate, level and draw), one per use.
PERMUTATION_STREAM = 3  # its drawn mask
ACTION_STREAM = 4       # noise and D_m draws of its start weights


@dataclasses.dataclass
class LevelContext:
    """A level's ticket on the evaluation model, and what its controls draw from.
    Weight trees are {"params", "batch_stats"} dicts."""

    ticket: PyTree             # the weights the ticket starts from (rewind weights)
    mask: PyTree               # the ticket's mask
    initial: PyTree            # the evaluation model's theta_0
    fresh: Optional[PyTree]    # this level and draw's fresh initialization (random reinit)
    dense_final: Optional[PyTree]  # the trajectory's trained dense network
    natural_zero_threshold: float
    # The level's ticket run (level_LL/ticket), whose final weights a control that
    # starts where the ticket ended reads; None where the level trains no ticket.
    ticket_run: Optional[pathlib.Path] = None

    def sigmas(self) -> dict[str, float]:
        return actions.layer_sigmas(self.initial["params"], self.mask)

    def ticket_final(self) -> PyTree:
        """The weights the level's ticket reached at the end of its training, read from
        its run directory rather than kept in memory: a resumed experiment, or a wave of
        lanes that loaded the ticket's run without training it, finds them alike. The
        plan runs a branch with `reads_trained_ticket` after the ticket's stage."""
        from jaxtickets import checkpoints  # orbax: not needed to read configs

        path = None if self.ticket_run is None else self.ticket_run / "final"
        if path is None or not checkpoints.exists(path):
            raise ValueError(f"the level's trained ticket is not there ({path}); a branch "
                             "that starts from it runs after the ticket's stage")
        return checkpoints.load_tree(path, self.ticket)


@dataclasses.dataclass
class BranchJob:
    """One draw of one branch at one level: where it writes and how it draws."""

    experiment: "Experiment"
    source: Any                # experiment.sources.Source
    ctx: LevelContext
    run_dir: pathlib.Path      # level_LL/<branch> or level_LL/<branch>_draw<d>
    label: str                 # progress label of the run
    replicate: int
    level: int
    draw: int

    def draw_stream(self) -> tuple[int, ...]:
        return self.experiment.draw_stream(self.draw)

    def seed(self, stream: int) -> int:
        """A NumPy seed of this job's own: (replicate, level, stream, draw)."""
        return self.experiment.seed(self.replicate, self.level, stream, *self.draw_stream())


@dataclasses.dataclass(frozen=True)
class PlanInfo:
    """What a branch's cost is computed from (experiment.plan builds it)."""

    config: "ml_collections.ConfigDict"
    total_steps: int     # the evaluation schedule's length
    rewind_start: int    # where a run from the ticket's rewind weights starts
    batch_size: int      # the evaluation recipe's


@dataclasses.dataclass(frozen=True)
class RunCost:
    """One run a branch adds at a level: its directory name, steps and examples."""

    name: str
    steps: int
    examples: int


class Branch:
    """A control branch. Subclasses set the class attributes and override what differs.

    The common case trains the evaluation model from `weights(ctx, mask, seed)` under
    `mask(ctx, seed)`, from the ticket's start step (or from step 0 when listed in
    pruning.controls_from_scratch and `can_train_from_scratch`).
    """

    name: str = ""
    trained: bool = True              # False: evaluated as given, no training
    random: bool = False              # repeated pruning.control_draws times per level
    draws_mask: bool = False          # its mask is drawn, and stored beside its run
    fresh_weights: bool = False       # starts from the level and draw's fresh init
    can_train_from_scratch: bool = False
    flops_exact: bool = True          # False: the plan prices it as the evaluation model
    # Its runs go through Experiment.train, so runtime.lanes can train them side by side
    # with others (experiment/lanes.py); False for a branch with a loop of its own.
    trains_in_lanes: bool = True
    # Starts from the level's trained ticket (LevelContext.ticket_final): the plan makes
    # its stage read the ticket's, and 'ticket' must be among the listed branches.
    reads_trained_ticket: bool = False
    description: str = ""

    def runs_at(self, level: int) -> bool:
        """A control needs a pruned level by default."""
        return level > 0

    def mask(self, ctx: LevelContext, seed: int) -> PyTree:
        return ctx.mask

    def weights(self, ctx: LevelContext, mask: PyTree, seed: int) -> PyTree:
        """The weights the run starts from (pruned entries are zeroed by the mask)."""
        if self.fresh_weights:
            return ctx.fresh
        raise NotImplementedError(f"branch {self.name!r} defines no start weights")

    def run(self, job: BranchJob) -> list[dict]:
        """Trains (or evaluates) the branch; returns its rows."""
        return [job.experiment.standard_control(self, job)]

    def start_step(self, rewind_start: int, scratch: frozenset[str]) -> int:
        """The schedule step its run starts at: the ticket's (`rewind_start`), or 0 when
        listed in pruning.controls_from_scratch (`scratch`). The plan's costs and the
        driver's runs both ask here, so the two cannot disagree."""
        return 0 if self.name in scratch else rewind_start

    def costs(self, info: PlanInfo, level: int) -> list[RunCost]:
        """The runs one draw of the branch adds at `level`, for the plan."""
        if not self.trained:
            return [RunCost(self.name, 0, 0)]
        steps = info.total_steps - self.start_step(info.rewind_start,
                                                   from_scratch(info.config))
        return [RunCost(self.name, steps, steps * info.batch_size)]

    def check_config(self, config: "ml_collections.ConfigDict", used: bool) -> None:
        """Raises ConfigError for this branch's own config keys; `used`: some source
        lists the branch."""


def from_scratch(config: "ml_collections.ConfigDict") -> frozenset[str]:
    """The branches of pruning.controls_from_scratch."""
    return frozenset(config_values.names(config.pruning.controls_from_scratch,
                                         "pruning.controls_from_scratch"))


def starting(ctx: LevelContext, params: PyTree) -> PyTree:
    """`params` with the ticket's BatchNorm statistics: a run that starts from the ticket's
    weights, changed."""
    return {"params": params, "batch_stats": ctx.ticket["batch_stats"]}
