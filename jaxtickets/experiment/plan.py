"""The experiment as a plan: every stage, what it reads and writes and what it costs,
built from the validated config and the data sizes before any compute.

A stage is one unit of work with a stable key (source, replicate, level, branch, draw):
`prune` derives a level's mask from an earlier run's final weights, `train` is a
source's own run (its dense level 0, IMP's runs, or the evaluated ticket when the
source is the evaluation), `ticket` trains a transferred ticket on the evaluation
task, `control` trains (or evaluates) one draw of a control branch. The executor
(experiment/driver.py) runs the stages in this order and skips the work of a stage
whose outputs exist; progress, ETA, `--dry_run` and the compute accounting all read
the costs here, so nothing re-derives the control flow.

Costs: steps and examples are exact. FLOPs are the dense-equivalent training FLOPs
(analysis/flops.py's convention: 3 x forward x examples for the unpruned model), known
before any mask exists; results.json's stages record the same quantity as
`train_flops_dense`, next to the masked `train_flops` of the run. The one exception is
a branch with `flops_exact = False` (P3's small-dense network, whose widths follow the
ticket's count): it is priced as the full model, an upper bound.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TYPE_CHECKING

from jaxtickets import branches, checkpoints
from jaxtickets.analysis.flops import forward_flops, training_flops
from jaxtickets.models import abstract_variables

if TYPE_CHECKING:
    from jaxtickets.experiment.driver import Experiment
    from jaxtickets.experiment.setup import Setup
    from jaxtickets.experiment.sources import Source

PRUNE, TRAIN, TICKET, CONTROL = "prune", "train", "ticket", "control"


@dataclasses.dataclass(frozen=True)
class StageKey:
    source: str
    replicate: int
    level: int
    branch: str     # 'mask', 'ticket', 'generation' or a control branch
    draw: int = 0

    def __str__(self) -> str:
        draw = f" draw {self.draw}" if self.draw else ""
        return f"{self.source}/rep{self.replicate}/level{self.level}/{self.branch}{draw}"


@dataclasses.dataclass(frozen=True)
class Stage:
    key: StageKey
    kind: str                             # PRUNE, TRAIN, TICKET or CONTROL
    inputs: tuple[StageKey, ...]          # stages whose outputs this one reads
    outputs: tuple[pathlib.Path, ...]     # what exists once it is done (json or tree)
    steps: int = 0
    examples: int = 0
    flops: float = 0.0                    # dense-equivalent training FLOPs
    evaluated: bool = False               # its level gets rows
    flops_exact: bool = True              # False: an upper bound (P3's small-dense runs)
    ends_level: bool = False              # the last stage of an evaluated level

    def is_done(self) -> bool:
        return all(_exists(p) for p in self.outputs)


def _exists(path: pathlib.Path) -> bool:
    return path.exists() if path.suffix == ".json" else checkpoints.exists(path)


def trains_at(source: "Source", level: int, last_level: int) -> bool:
    """Whether the source trains its own run at `level`: always the dense level 0;
    IMP every level whose final weights give the next mask (the evaluation's own runs
    are its tickets, so also the last); one-shot masks all come from the dense run, so
    only the evaluation's evaluated levels (its tickets, if it has them)."""
    if level == 0:
        return True
    if source.trajectory.schedule == "one_shot":
        return (source.is_evaluation and level in source.evaluate_levels
                and source.trains_ticket(level))
    return source.is_evaluation or level < last_level


def level_dir(source: "Source", replicate: int, level: int) -> pathlib.Path:
    return source.root / f"replicate_{replicate}" / f"level_{level:02d}"


class Planner:
    """Builds the stages of one experiment; FLOPs per example are traced once per model
    and input shape (jax.eval_shape: nothing is computed)."""

    def __init__(self, experiment: "Experiment"):
        self.ex = experiment
        self._forward: dict[int, int] = {}
        ev = experiment.evaluation
        self.info = branches.PlanInfo(experiment.config, ev.schedule.total,
                                      ev.rewind_start, ev.recipe.batch_size)

    def forward(self, setup: "Setup") -> int:
        if id(setup) not in self._forward:
            variables = abstract_variables(setup.model, setup.image_shape)
            extra = {k: v for k, v in variables.items() if k != "params"}
            self._forward[id(setup)] = forward_flops(
                setup.model, variables["params"], None, setup.image_shape,
                extra_variables=extra or None)["dense"]
        return self._forward[id(setup)]

    def cost(self, setup: "Setup", steps: int, examples: int | None = None) -> dict:
        examples = steps * setup.recipe.batch_size if examples is None else examples
        return {"steps": steps, "examples": examples,
                "flops": float(training_flops(self.forward(setup), examples))}

    def stages(self) -> list[Stage]:
        out: list[Stage] = []
        for source in self.ex.sources:
            for replicate in range(self.ex.config.num_replicates):
                for level in self.ex.levels:
                    out.extend(self.level(source, replicate, level))
        return out

    def level(self, source: "Source", replicate: int, level: int) -> list[Stage]:
        last = self.ex.levels[-1]
        ldir = level_dir(source, replicate, level)
        key = lambda branch, lv=level, draw=0: StageKey(source.name, replicate, lv, branch,
                                                        draw)
        gen = source.setup
        own = "ticket" if source.is_evaluation else "generation"
        evaluated = level in source.evaluate_levels
        stages = []
        mask = key("mask") if level > 0 else None
        if level > 0:
            found_by = 0 if source.trajectory.schedule == "one_shot" else level - 1
            outputs = (ldir / "mask",) + ((ldir / "value_mask",)
                                          if source.trajectory.mask0_action != "zero" else ())
            stages.append(Stage(mask, PRUNE, (key(own, found_by),), outputs))
        rewind = key(own, 0)
        if trains_at(source, level, last):
            steps = gen.schedule.total - gen.start_step(level)
            inputs = () if level == 0 else (mask, rewind) + (
                (key(own, level - 1),) if source.trajectory.strategy == "continue" else ())
            stages.append(Stage(key(own), TRAIN, inputs,
                                (ldir / own / "metrics.json", ldir / own / "final"),
                                evaluated=evaluated, **self.cost(gen, steps)))
        if not evaluated:
            return stages
        ticket_inputs = (mask, rewind) if mask else (rewind,)
        if not source.is_evaluation and source.trains_ticket(level):
            ev = self.ex.evaluation
            stages.append(Stage(key("ticket"), TICKET, ticket_inputs,
                                (ldir / "ticket" / "metrics.json",), evaluated=True,
                                **self.cost(ev, ev.schedule.total - ev.rewind_start)))
        for name, draw in self.controls(source, level):
            branch = branches.get(name)
            runs = branch.costs(self.info, level)
            cost = self.cost(self.ex.evaluation, sum(r.steps for r in runs),
                             sum(r.examples for r in runs))
            directory = ldir / branches.run_name(name, draw)
            outputs = tuple(directory.parent / (r.name if len(runs) > 1 or r.name != name
                                                else directory.name) / "metrics.json"
                            for r in runs)
            # A control that starts from the trained ticket reads the ticket's stage:
            # after it in plan order, and in a later wave of lanes, never beside it.
            inputs = ticket_inputs + ((key(branches.TICKET),)
                                      if branch.reads_trained_ticket else ())
            stages.append(Stage(key(name, draw=draw), CONTROL, inputs, outputs,
                                evaluated=True, flops_exact=branch.flops_exact, **cost))
        return stages[:-1] + [dataclasses.replace(stages[-1], ends_level=True)]

    def controls(self, source: "Source", level: int) -> list[tuple[str, int]]:
        """(branch, draw) of the level's controls in run order: draw 0 of every branch
        first, and draw 0 is exactly the single run of control_draws=1. The branches
        that start from the trained ticket come last, so that under lanes the others
        still train beside the ticket (the wave stops at the first stage that must
        wait for it)."""
        names = [b for b in source.branches
                 if b != branches.TICKET and branches.get(b).runs_at(level)]
        count = self.ex.config.pruning.control_draws
        out = []
        for after in (False, True):
            group = [b for b in names if branches.get(b).reads_trained_ticket == after]
            most = max((branches.draws(b, count) for b in group), default=0)
            out += [(b, d) for d in range(most) for b in group
                    if d < branches.draws(b, count)]
        return out


def build_plan(experiment: "Experiment") -> list[Stage]:
    return Planner(experiment).stages()


def totals(stages: list[Stage]) -> dict:
    return {"stages": len(stages), "steps": sum(s.steps for s in stages),
            "examples": sum(s.examples for s in stages),
            "flops": sum(s.flops for s in stages),
            "flops_exact": all(s.flops_exact for s in stages)}
