"""The IMP driver: sources x replicates x levels x branches, every stage resumable.

Level 0 trains the dense network on the source's task and captures the rewind
snapshot. Level L > 0 prunes the previous level's final weights, rewinds every
parameter and BN statistic to the snapshot (fresh optimizer, schedule resumed at the
rewind step) and trains again. At an evaluated level the ticket (mask, rewind weights)
is trained on the evaluation task, unless the source is the evaluation itself, and
control branches train the level's mask, or a permutation of it, from fresh weights:
from the ticket's start step, or from step 0 for the full duration if listed in
`pruning.controls_from_scratch`; a random control runs `pruning.control_draws`
independent draws, draw 0 being the run of a single draw.

The plan (experiment/plan.py) lists these stages before any compute; `Experiment.run`
is the executor that runs them in order. Each stage's outputs are written once; a
rerun loads every stage whose outputs exist instead of computing it again. Control
branches do their own work (branches/); nothing here names one.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxtickets import branches, checkpoints, compilation_cache, distributed, startup
from jaxtickets.branches import LevelContext
from jaxtickets.config_schema import identity, validate
from jaxtickets.errors import ConfigError
from jaxtickets.analysis.correlation import correlation_indicator, kernel_layers
from jaxtickets.analysis.flops import forward_flops, training_flops
from jaxtickets.experiment import lanes as lanes_lib, results, workdir as workdir_lib
from jaxtickets.experiment.plan import (CONTROL, PRUNE, TICKET, TRAIN, Stage, StageKey,
                                        build_plan, level_dir)
from jaxtickets.experiment.setup import (Schedule, Setup, convert_recipe, describe_rewind,
                                         evaluation_recipe)
from jaxtickets.experiment.sources import (Source, build_sources, evaluation_name,
                                           evaluation_setup, load_evaluation_data,
                                           transfer_mask, transfer_weights)
from jaxtickets.parallel import state_shardings
from jaxtickets.sparsity import actions
from jaxtickets.sparsity import masks as masks_lib
from jaxtickets.sparsity.pruning import one_shot_rate, prune_global, prune_layerwise
from jaxtickets.training.compile_clock import CompileClock
from jaxtickets.training.batches import BatchOrder, device_indices
from jaxtickets.checkpoints import StepCheckpoints
from jaxtickets.training.lanes import Lane, schedule_key, stack, train_lanes
from jaxtickets.training.loop import (Progress, RunPlan, evaluate_untrained, host_copy,
                                     run_start, train_run)
from jaxtickets.training.state import fresh_state

PyTree = Any
REINIT_STREAM = 1_000_003  # PRNG stream ids keep each kind of randomness independent
DATA_STREAM = 2
INIT_STREAM = 1
PLOT_EVERY_SECONDS = 60  # the plot's refresh during a run (Experiment._write)


@functools.partial(jax.jit, static_argnums=0)
def derived_key(seed: int, ids: jax.Array) -> jax.Array:
    """PRNGKey(seed) with each of `ids` (uint32) folded in, in order, as one program:
    done eagerly, every PRNGKey and fold_in is a program of its own to compile (or read
    from the compilation cache) at start-up. Integer operations only, so the key is the
    same bits either way (tests/test_compilation_cache.py)."""
    key = jax.random.PRNGKey(seed)
    for i in range(ids.shape[0]):
        key = jax.random.fold_in(key, ids[i])
    return key


def convert_durations(config: ml_collections.ConfigDict, train_size: int
                      ) -> tuple[Schedule, list[int], int]:
    """The evaluation recipe's durations in steps for `train_size` training images."""
    return convert_recipe(evaluation_recipe(config), train_size)


class Experiment:
    """Everything built once per experiment: data on device, models, compiled steps."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                 label_cache: str | pathlib.Path | None = None):
        """`label_cache`: where label indexes go (default: the workdir's; --dry_run
        passes a temporary directory, so that it writes nothing to the workdir)."""
        validate(config)
        compilation_cache.configure(config.runtime.compilation_cache)  # before any compile
        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.id = identity(config)
        self.resuming = workdir_lib.check_identity(self.workdir, config)
        label_cache = pathlib.Path(label_cache or self.workdir / workdir_lib.LABEL_INDEX_DIR)
        startup.begin_experiment()
        with startup.loading_data():
            self.splits, full = load_evaluation_data(config, label_cache)
        self.evaluation: Setup = evaluation_setup(config, self.splits)
        self.schedule = self.evaluation.schedule
        with startup.loading_data():
            self.sources: list[Source] = build_sources(config, self.workdir, self.evaluation,
                                                       full, label_cache)
        p = config.pruning
        self.policy = masks_lib.PrunablePolicy(**p.prune.to_dict())
        self.levels = list(range(p.levels + 1))
        self._model_setups: dict[Any, Setup] = {}  # other models (setup_with_model)
        self.from_scratch = branches.from_scratch(config)
        self.compile_clock = CompileClock()  # XLA compile seconds of this process
        # runtime.lanes: how many independent runs may train as one program.
        self.lane_cap = lanes_lib.lane_cap(config.runtime.lanes, jax.default_backend())
        self._collecting: Optional[list] = None  # the lanes executor's requests
        self.plan: list[Stage] = build_plan(self)

    @property
    def steps(self):
        return self.evaluation.steps

    # ---- randomness -------------------------------------------------------------------
    def key(self, replicate: int, *stream: int) -> jax.Array:
        """PRNGKey(seed) with the replicate and then each stream id folded in."""
        return derived_key(self.config.seed, np.asarray((replicate, *stream), np.uint32))

    def seed(self, replicate: int, *stream: int) -> int:
        return int(np.random.SeedSequence([self.config.seed, replicate, *stream])
                   .generate_state(1)[0])

    @staticmethod
    def draw_stream(draw: int) -> tuple[int, ...]:
        """What a control's draw adds to its keys and seeds: nothing for draw 0, so it is
        the run made before draws existed; (DRAW_STREAM, d) for d > 0, never a trailing
        0 (SeedSequence pads entropy with zeros: [a, b, 0] seeds like [a, b])."""
        return () if draw == 0 else (DRAW_STREAM, draw)

    @staticmethod
    def init_weights(setup: Setup, key: jax.Array) -> dict:
        """Initial variables; Flax derives each layer's key from its name, and
        initialize_kernels (model.init) each kernel's from its path, as
        initialize_batchnorm (model.bn_init) each BatchNorm scale's, so the layers that
        two setups' models share get the same values from the same key."""
        from jaxtickets.models.initializers import initialize_batchnorm, initialize_kernels

        sample = jnp.zeros((1,) + setup.image_shape, jnp.float32)
        variables = setup.model.init({"params": key, "dropout": key}, sample, train=False)
        params = initialize_kernels(setup.init, variables["params"], key)
        params = initialize_batchnorm(setup.bn_init, params,
                                      variables.get("batch_stats", {}), key)
        return {"params": host_copy(params),
                "batch_stats": host_copy(variables.get("batch_stats", {}))}

    # ---- the executor ------------------------------------------------------------------
    def run(self) -> dict:
        """Runs every stage of the plan in order; a stage whose outputs exist is loaded,
        not recomputed, so a rerun resumes where the last one stopped."""
        distributed.on_primary(lambda: self.workdir.mkdir(parents=True, exist_ok=True),
                               f"creating {self.workdir}")
        with workdir_lib.WorkdirLock(self.workdir), self.compile_clock:
            if self.resuming:
                for path in workdir_lib.remove_stale_temporaries(self.workdir):
                    distributed.primary_print(f"removed the unfinished {path} left by an "
                                              "interrupted run")
            else:
                workdir_lib.write_config(self.workdir, self.config)
            todo = sum(s.steps for s in self.plan if not s.is_done())
            self.progress = Progress(todo, self.config.runtime.log_every_seconds,
                                     first_step=self._print_startup)
            self.stages: list[dict] = []  # the cost of every trained run, evaluated or not
            started = self._plotted = time.time()
            rows = self._run_in_order() if self.lane_cap == 1 else self._run_in_waves()
            out = self._write(rows, final=True)
            distributed.primary_print(results.format_table(out["rows"]) if len(self.sources) == 1
                  else results.sources_table(self.workdir), flush=True)
            distributed.primary_print(f"done in {time.time() - started:.1f}s; results in "
                  f"{self.workdir / results.RESULTS_FILE}", flush=True)
            return out

    def _print_startup(self) -> None:
        """The start-up line (startup.py), once, when the first train steps are done."""
        distributed.primary_print(
            startup.line(sum(self.compile_clock.seconds.values())), flush=True)

    def _run_in_order(self) -> list[dict]:
        """runtime.lanes = 1: every stage in plan order, every run trained alone."""
        rows: list[dict] = []
        state = None
        for stage in self.plan:
            key = stage.key
            if state is None or (state.source.name, state.replicate) != (
                    key.source, key.replicate):
                state = self._replicate_state(self._source(key.source), key.replicate)
            rows.extend(self._RUNNERS[stage.kind](self, state, stage))
            if stage.ends_level:
                self._write(rows)
        return rows

    def _run_in_waves(self) -> list[dict]:
        """runtime.lanes > 1: the plan in waves of independent stages whose runs train
        as lanes (experiment/lanes.py); rows and costs are kept in plan order."""
        states: dict[tuple[str, int], ReplicateState] = {}
        done: dict[StageKey, tuple[list[dict], list[dict]]] = {}  # rows, costs

        def state_of(stage: Stage) -> ReplicateState:
            key = (stage.key.source, stage.key.replicate)
            if key not in states:
                states[key] = self._replicate_state(self._source(key[0]), key[1])
            return states[key]

        def run(stage: Stage) -> None:
            first = len(self.stages)
            rows = self._RUNNERS[stage.kind](self, state_of(stage), stage)
            done[stage.key] = (rows, self.stages[first:])
            del self.stages[first:]

        def in_plan_order() -> list[dict]:
            ran = [done[s.key] for s in self.plan if s.key in done]
            self.stages = [cost for _, costs in ran for cost in costs]
            return [row for rows, _ in ran for row in rows]

        queues = lanes_lib.stage_queues(self.plan)
        while any(queues.values()):
            wave = lanes_lib.next_wave(queues, set(done))
            for stage in wave:
                if stage.kind == PRUNE:
                    run(stage)
            trains = [s for s in wave if s.kind != PRUNE]
            self._train_as_lanes(self._collect(trains, state_of))
            for stage in trains:
                run(stage)
            self._write(in_plan_order())
        return in_plan_order()

    def _collect(self, stages: list[Stage], state_of) -> list[lanes_lib.TrainRequest]:
        """The runs the stages would train, found by running each stage with
        Experiment.train collecting (Deferred ends the stage at its first unfinished
        run). What a stage does before it (drawing and storing a mask, building the
        level's context) is done again alike in the stage's own turn."""
        requests: list[lanes_lib.TrainRequest] = []
        self._collecting = requests
        try:
            for stage in stages:
                if stage.is_done() or (stage.kind == CONTROL and not branches.get(
                        stage.key.branch).trains_in_lanes):
                    continue
                first = len(self.stages)
                try:
                    self._RUNNERS[stage.kind](self, state_of(stage), stage)
                except lanes_lib.Deferred:
                    pass
                del self.stages[first:]
        finally:
            self._collecting = None
        return requests

    def _train_as_lanes(self, requests: list[lanes_lib.TrainRequest]) -> None:
        """Trains the requested runs that can share a program in groups of lanes and
        writes each one's outputs; a run left without a partner trains in its turn."""
        buckets: dict[tuple, list] = {}
        for request in requests:
            if lanes_lib.lane_capable(request):
                plan, state, order, capture = self._prepared(request)
                key = (id(request.setup), plan.start_step, plan.end_step, plan.capture_step)
                buckets.setdefault(key, []).append((request, plan, state, order, capture))
        keyed, sizes = [], {}
        for key, runs in buckets.items():
            starts = common_start([(plan, state) for _, plan, state, _, _ in runs])
            lanes = [Lane(plan, order, start, capture)
                     for (_, plan, _, order, capture), start in zip(runs, starts)]
            sizes[key] = self._lanes_that_fit(runs[0][0].setup, lanes[0])
            keyed.extend((key, (run[0], lane)) for run, lane in zip(runs, lanes))
        for group in lanes_lib.groups(keyed, sizes):
            if len(group) < 2:
                continue
            setup = group[0][0].setup
            outcomes = train_lanes([lane for _, lane in group], setup.steps, setup.train,
                                   setup.validation, setup.test, setup.eval_batch,
                                   self.progress)
            for (request, _), outcome in zip(group, outcomes):
                self._finish(request, outcome)

    def _lanes_that_fit(self, setup: Setup, lane: Lane) -> int:
        """runtime.lanes' cap, lowered to what the device's memory holds."""
        if self.lane_cap == 1 or jax.default_backend() == "cpu":
            return self.lane_cap
        mesh = setup.steps.mesh
        idx = np.zeros((1, setup.steps.steps_per_call, setup.recipe.batch_size), np.int32)
        fit = lanes_lib.memory_fit(setup.steps, stack([lane.start.state], mesh), setup.train,
                                   device_indices(idx, mesh, 2))
        return self.lane_cap if fit is None else min(self.lane_cap, fit)

    def _write(self, rows: list[dict], final: bool = False) -> dict:
        """Writes the rows computed so far (results.write_merged keeps those of stages
        not yet reached in this process) with the experiment's summary. The plot is
        redrawn at the end and, during the run, at most every PLOT_EVERY_SECONDS: drawing
        it costs about 0.4 s, a sixth to a tenth of a LeNet level on a CPU."""
        traces: dict[str, int] = {}
        setups = {id(s.setup): s.setup for s in self.sources}
        setups[id(self.evaluation)] = self.evaluation
        setups.update({id(s): s for s in self._model_setups.values()})
        for setup in setups.values():
            for kind, count in setup.steps.traces.items():
                traces[kind] = traces.get(kind, 0) + count
        # The lanes' programs are listed when some run trained as a lane.
        extra = {"compilations": {kind: n for kind, n in traces.items()
                                  if n or kind in ("train", "eval")},
                 "compile_seconds": self.compile_clock.summary(),
                 "rewind": describe_rewind(self.evaluation),
                 "total_steps": self.schedule.total,
                 "sources": {s.name: {"description": s.description,
                                      "task": s.setup.task.name,
                                      "is_evaluation": s.is_evaluation,
                                      "rewind": describe_rewind(s.setup),
                                      "total_steps": s.setup.schedule.total,
                                      "batch_size": s.setup.recipe.batch_size,
                                      "optimizer": s.setup.recipe.optimizer,
                                      **s.selection}
                             for s in self.sources}}
        plot = self.config.runtime.plot and (
            final or time.time() - self._plotted >= PLOT_EVERY_SECONDS)
        if plot:
            self._plotted = time.time()
        return results.write_merged(self.workdir, self.id, rows, self.stages, extra, plot)

    # ---- stage runners: each returns the rows its stage yields ------------------------
    def _source(self, name: str) -> Source:
        return next(s for s in self.sources if s.name == name)

    def _replicate_state(self, source: Source, replicate: int) -> "ReplicateState":
        """theta_0 of the source's model (stored, so a resumed run starts alike) and of
        the evaluation model, and the all-ones mask pruning starts from."""
        rdir = source.root / f"replicate_{replicate}"
        init = self.init_weights(source.setup, self.key(replicate, INIT_STREAM))
        if checkpoints.exists(rdir / "theta_0"):
            init = checkpoints.load_tree(rdir / "theta_0", init)
        else:
            checkpoints.save_tree(rdir / "theta_0", init)
        eval_init = init if source.is_evaluation else self.init_weights(
            self.evaluation, self.key(replicate, INIT_STREAM))
        full_mask = self._full_mask(init["params"], source.setup)
        return ReplicateState(source, replicate, rdir, init, eval_init, full_mask,
                              mask=full_mask, rewind=init)

    def _label(self, state: "ReplicateState", level: int, name: str, draw: int = 0) -> str:
        tag = f"{state.source.name} " if len(self.sources) > 1 else ""
        return (f"{tag}rep {state.replicate} level {level}/{self.levels[-1]} "
                f"{branches.run_label(name, draw)}")

    def _prune_stage(self, state: "ReplicateState", stage: Stage) -> list[dict]:
        """Level L's mask from the previous level's final weights (the dense run's for
        one-shot pruning), after loading the rewind weights the level trains from."""
        level, rewind_path = stage.key.level, state.rdir / "rewind"
        if not checkpoints.exists(rewind_path):
            self._recover_rewind(rewind_path, state.init, state.rdir, state.source.setup)
        state.rewind = checkpoints.load_tree(rewind_path, state.init)
        base = ((state.dense_final, state.full_mask, None)
                if state.source.trajectory.schedule == "one_shot"
                else (state.previous_final, state.mask, state.values))
        state.mask, state.values = self._level_mask(
            state.source, level_dir(state.source, state.replicate, level), base,
            state.rewind, state.replicate, level)
        state.found_by, state.context = state.generation_row, None
        return []

    def _train_stage(self, state: "ReplicateState", stage: Stage) -> list[dict]:
        """The source's own run at a level (its tickets when it is the evaluation); the
        dense level 0 captures the rewind weights."""
        source, level, name = state.source, stage.key.level, stage.key.branch
        rewind_path = state.rdir / "rewind"
        capture = rewind_path if level == 0 and not checkpoints.exists(rewind_path) else None
        start = self._start_weights(source, level, state.rewind, state.previous_final,
                                    state.mask, state.init, state.replicate)
        gen = source.setup
        summary, state.previous_final = self.train(
            gen, level_dir(source, state.replicate, level) / name,
            self._label(state, level, name), (start, gen.start_step(level)), state.mask,
            state.replicate, capture, state.values)
        state.generation_row = self.row(source, gen, state.replicate, level, name,
                                        state.mask, state.init, summary, state.values)
        self.stages.append(stage_cost(state.generation_row))
        if level == 0:  # the dense run found itself (and the rewind weights)
            state.found_by, state.dense_final = state.generation_row, state.previous_final
        if stage.evaluated and source.is_evaluation and source.trains_ticket(level):
            return [state.generation_row]
        return []

    def _level_context(self, state: "ReplicateState", level: int) -> LevelContext:
        """The level's ticket on the evaluation model: the source's own mask and rewind
        weights, or both transferred (rewind weights at every level, level 0 included,
        so training starts at the evaluation's rewind step)."""
        if state.context is not None:
            return state.context
        source, ev_init = state.source, state.eval_init
        if source.is_evaluation:
            eval_mask, ticket = state.mask, state.rewind
        else:
            generated = (state.rewind if level > 0 else
                         checkpoints.load_tree(state.rdir / "rewind", state.init))
            ticket, _ = transfer_weights(generated, ev_init)
            eval_mask = transfer_mask(state.mask, ev_init["params"], self.policy)
        dense = state.dense_final
        if dense is not None and not source.is_evaluation:
            dense = transfer_weights(dense, ev_init)[0]
        ticket_run = (level_dir(source, state.replicate, level) / branches.TICKET
                      if source.trains_ticket(level) else None)
        state.context = LevelContext(ticket, eval_mask, ev_init, None, dense,
                                     self.config.pruning.natural_zero_threshold, ticket_run)
        return state.context

    def _ticket_stage(self, state: "ReplicateState", stage: Stage) -> list[dict]:
        """A transferred ticket trained with the evaluation's recipe; its row names the
        generation run that found its mask."""
        level = stage.key.level
        ctx = self._level_context(state, level)
        summary, _ = self.train(self.evaluation,
                                level_dir(state.source, state.replicate, level) / "ticket",
                                self._label(state, level, "ticket"),
                                (ctx.ticket, self.evaluation.rewind_start), ctx.mask,
                                state.replicate, None)
        row = self.row(state.source, self.evaluation, state.replicate, level, "ticket",
                       ctx.mask, ctx.initial, summary)
        row["generation"] = {k: state.found_by[k] for k in GENERATION_KEYS}
        self.stages.append(stage_cost(row))
        return [row]

    def _control_stage(self, state: "ReplicateState", stage: Stage) -> list[dict]:
        """One draw of one control branch; the branch does its own work (branches/)."""
        key = stage.key
        branch = branches.get(key.branch)
        ctx = self._level_context(state, key.level)
        stream = self.draw_stream(key.draw)
        if branch.fresh_weights and state.fresh_for != (key.level, key.draw):
            # One fresh initialization per level and draw, shared by the draw's controls
            # (paired: draw d of random_reinit and random_ticket start alike).
            ctx.fresh = self.init_weights(self.evaluation,
                                          self.key(state.replicate, REINIT_STREAM,
                                                   key.level, *stream))
            state.fresh_for = (key.level, key.draw)
        job = branches.BranchJob(
            self, state.source, ctx,
            level_dir(state.source, state.replicate, key.level)
            / branches.run_name(key.branch, key.draw),
            self._label(state, key.level, key.branch, key.draw), state.replicate,
            key.level, key.draw)
        rows = branch.run(job)
        self.stages.extend(stage_cost(r) for r in rows)
        return rows

    _RUNNERS = {PRUNE: _prune_stage, TRAIN: _train_stage, TICKET: _ticket_stage,
                CONTROL: _control_stage}

    # ---- what branches use -------------------------------------------------------------
    def control_start(self, name: str) -> int:
        """The schedule step a trained control starts at (Branch.start_step): the
        ticket's (the rewind step unless the schedule restarts), or 0 for a branch
        trained from scratch (P3 App. B: RR and SDT train the full T while the ticket
        trains T - t from theta_t) or from a start of its own at step 0."""
        return branches.get(name).start_step(self.evaluation.rewind_start, self.from_scratch)

    def standard_control(self, branch: branches.Branch, job: branches.BranchJob) -> dict:
        """A control's stored mask, start weights, run (or evaluation) and row."""
        ctx = job.ctx
        mask = self._stored_mask(job.run_dir / "mask", branch, ctx,
                                 job.seed(branches.PERMUTATION_STREAM))
        weights = branch.weights(ctx, mask, job.seed(branches.ACTION_STREAM))
        if branch.trained:
            summary, _ = self.train(self.evaluation, job.run_dir, job.label,
                                    (weights, self.control_start(branch.name)), mask,
                                    job.replicate, None)
        else:
            summary = self._evaluate_untrained(self.evaluation, job.run_dir, weights, mask,
                                               job.replicate)
        return self.row(job.source, self.evaluation, job.replicate, job.level, branch.name,
                        mask, ctx.initial, summary, draw=job.draw)

    def setup_with_model(self, key: Any, model) -> Setup:
        """The evaluation's data and recipe with another model, compiled once per `key`
        (P3's small-dense networks: one per size, shared by its draws)."""
        if key not in self._model_setups:
            self._model_setups[key] = self.evaluation.with_model(model)
        return self._model_setups[key]

    def _stored_mask(self, path: pathlib.Path, branch: branches.Branch, ctx: LevelContext,
                     seed: int) -> PyTree:
        """A control's drawn mask, computed once and stored beside its run."""
        if not branch.draws_mask:
            return ctx.mask
        if checkpoints.exists(path):
            return checkpoints.load_tree(path, ctx.mask)
        drawn = branch.mask(ctx, seed)
        checkpoints.save_tree(path, drawn)
        return drawn

    def _start_weights(self, source: Source, level: int, rewind: PyTree,
                       previous_final: PyTree, mask: PyTree, init: PyTree,
                       replicate: int) -> PyTree:
        """What a trajectory's run at `level` starts from: the dense init at level 0, the
        previous level's final weights under strategy 2, else the rewind weights after
        the mask-1 action (rewind keeps them)."""
        trajectory = source.trajectory
        if level == 0:
            return init
        if trajectory.strategy == "continue":
            return previous_final
        if trajectory.mask1_action == "rewind":
            return rewind
        fresh = (self.init_weights(source.setup, self.key(replicate, MASK1_STREAM, level))
                 if actions.needs_fresh(trajectory.mask1_action) else None)
        params = actions.mask1_weights(
            trajectory.mask1_action, rewind["params"], fresh and fresh["params"], mask,
            actions.layer_sigmas(init["params"], mask),
            self.seed(replicate, level, MASK1_STREAM))
        return {"params": params, "batch_stats": rewind["batch_stats"]}

    def _full_mask(self, params: PyTree, setup: Setup) -> PyTree:
        """The all-ones mask over the prunable set (the first n convs if so configured)."""
        mask = masks_lib.init_mask(params, self.policy)
        n = self.config.pruning.first_conv_layers
        if n:
            from jaxtickets.sparsity.layer_order import first_conv_layers, restrict_mask
            try:
                allowed = first_conv_layers(setup.model, setup.image_shape, n)
            except ValueError as err:
                raise ConfigError(f"pruning.first_conv_layers: {err}") from err
            mask = restrict_mask(mask, allowed)
        return mask

    def _recover_rewind(self, rewind_path: pathlib.Path, init: PyTree,
                        rdir: pathlib.Path, setup: Setup) -> None:
        """A rewind snapshot lost after level 0: theta_0 itself, or level 0 must rerun."""
        if setup.schedule.rewind == 0:
            checkpoints.save_tree(rewind_path, init)
            return
        raise checkpoints.CheckpointError(
            f"{rewind_path} is missing; delete {rdir / 'level_00'} to retrain "
            "level 0 and capture it again")

    def _level_mask(self, source: Source, ldir: pathlib.Path,
                    base: tuple[PyTree, PyTree, PyTree], rewind: PyTree, replicate: int,
                    level: int) -> tuple[PyTree, PyTree]:
        """The level's trainable mask and, under a mask-0 action, its value mask (both
        stored). `base` = (final weights, mask, value mask) pruning starts from: the
        previous level's, or the dense run's for one-shot pruning."""
        final, previous, previous_values = base
        p, trajectory = self.config.pruning, source.trajectory
        path = ldir / "mask"
        if checkpoints.exists(path):
            new = checkpoints.load_tree(path, previous)
        else:
            seed = self.seed(replicate, level)
            one_shot = trajectory.schedule == "one_shot"
            kwargs = {"criterion": trajectory.criterion, "init": rewind["params"]}
            if p.method == "global":
                rate = one_shot_rate(p.rate, level, p.one_shot_spacing) if one_shot else p.rate
                new = prune_global(final["params"], previous, rate, seed, **kwargs)
            else:
                rates = {k: one_shot_rate(r, level, p.one_shot_spacing) if one_shot else r
                         for k, r in p.rates.to_dict().items() if self.policy.allows(k)}
                new = prune_layerwise(final["params"], previous, rates, seed, **kwargs)
            checkpoints.save_tree(path, new)
        if trajectory.mask0_action == "zero":
            return new, None
        values_path = ldir / "value_mask"
        if checkpoints.exists(values_path):
            return new, checkpoints.load_tree(values_path, new)
        values = actions.value_mask(trajectory.mask0_action, new, previous, previous_values,
                                    rewind["params"], final["params"])
        checkpoints.save_tree(values_path, values)
        return new, values

    def train(self, setup: Setup, run_dir: pathlib.Path, label: str,
               start: tuple[PyTree, int], mask: PyTree, replicate: int,
               capture_path, values: PyTree = None) -> tuple[dict, PyTree]:
        """Trains one run (or loads it if finished); returns its summary and final weights.
        `values` is the value mask of a mask-0 action (None: the mask itself). While the
        lanes executor collects a wave's runs, records the run and raises Deferred."""
        weights, start_step = start
        finished = self._finished(run_dir, weights)
        if finished is not None:
            return finished
        request = lanes_lib.TrainRequest(setup, run_dir, label, weights, start_step, mask,
                                         replicate, capture_path, values)
        if self._collecting is not None:
            self._collecting.append(request)
            raise lanes_lib.Deferred(str(run_dir))
        plan, state, order, capture = self._prepared(request)
        outcome = train_run(plan, state, setup.steps, setup.train, order, setup.validation,
                            setup.test, setup.eval_batch, self.progress, capture)
        return self._finish(request, outcome)

    @staticmethod
    def _finished(run_dir: pathlib.Path, like: PyTree) -> Optional[tuple[dict, PyTree]]:
        """A finished run's summary and final weights; None if it has not finished."""
        metrics_path, final_path = run_dir / "metrics.json", run_dir / "final"
        if metrics_path.exists() and checkpoints.exists(final_path):
            return (checkpoints.read_json(metrics_path)["summary"],
                    checkpoints.load_tree(final_path, like))
        return None

    def _prepared(self, request: lanes_lib.TrainRequest):
        """(plan, fresh train state, batch order, capture callback) of a run."""
        setup, r = request.setup, request
        state = self.device_state(setup, r.weights, r.mask, r.start_step, r.replicate,
                                  r.values)
        plan = RunPlan(r.label, r.run_dir, r.start_step, setup.schedule.total,
                       setup.schedule.eval_every, setup.schedule.checkpoint_every,
                       setup.schedule.rewind if r.capture_path else None)

        def capture(s):
            checkpoints.save_tree(r.capture_path, {"params": host_copy(s.params),
                                                   "batch_stats": host_copy(s.batch_stats)})

        order = BatchOrder(len(setup.splits.train), setup.recipe.batch_size,
                           self.seed(r.replicate, DATA_STREAM))
        return plan, state, order, capture if r.capture_path else None

    def _finish(self, request: lanes_lib.TrainRequest, outcome) -> tuple[dict, PyTree]:
        """Writes a trained run's final weights and metrics.json; its summary and final."""
        final = {"params": host_copy(outcome.state.params),
                 "batch_stats": host_copy(outcome.state.batch_stats)}
        checkpoints.save_tree(request.run_dir / "final", final)
        summary = {**outcome.summary(), "start_step": request.start_step,
                   "train_steps": request.setup.schedule.total - request.start_step,
                   "init_final_correlation": start_final_correlation(request.weights, final,
                                                                     request.mask)}
        checkpoints.write_json(request.run_dir / "metrics.json",
                               {"summary": summary, "history": outcome.history})
        return summary, final

    def device_state(self, setup: Setup, weights: PyTree, mask: PyTree, step: int,
                      replicate: int, values: PyTree = None):
        """A fresh TrainState from `weights` at `step`, replicated over the setup's mesh."""
        state = fresh_state(weights["params"], weights["batch_stats"], mask, setup.tx, step,
                            self.key(replicate, DATA_STREAM), values)
        return jax.device_put(state, state_shardings(state, setup.mesh, setup.fsdp))

    def _evaluate_untrained(self, setup: Setup, run_dir: pathlib.Path, weights: PyTree,
                            mask: PyTree, replicate: int) -> dict:
        """Evaluates the network as given, without training (P4's supermasks)."""
        metrics_path = run_dir / "metrics.json"
        if metrics_path.exists():
            return checkpoints.read_json(metrics_path)["summary"]
        if self._collecting is not None:  # evaluated in the stage's own turn
            raise lanes_lib.Deferred(str(run_dir))
        state = self.device_state(setup, weights, mask, 0, replicate)
        outcome = evaluate_untrained(state, setup.steps, setup.validation, setup.test,
                                     setup.eval_batch)
        summary = {**outcome.summary(), "start_step": 0, "train_steps": 0}
        checkpoints.write_json(metrics_path, {"summary": summary, "history": outcome.history})
        return summary

    def row(self, source: Source, setup: Setup, replicate: int, level: int, branch: str,
             mask: PyTree, variables: PyTree, summary: dict, values: PyTree = None,
             draw: int = 0) -> dict:
        """One run's row; (source, replicate, level, branch, draw) identifies it
        (results.run_key), `draw` > 0 only for the further draws of a random control."""
        remaining, total = masks_lib.remaining_and_total(mask)
        examples = summary["train_steps"] * setup.recipe.batch_size
        params = variables["params"]
        stats = variables.get("batch_stats") or {}
        flops = forward_flops(setup.model, params, mask, setup.image_shape,
                              extra_variables={"batch_stats": stats} if stats else None)
        return {
            "replicate": replicate, "level": level, "branch": branch, "draw": draw,
            "source": source.description, "source_name": source.name,
            "evaluation": f"{setup.task.name}:" + (evaluation_name(self.config)
                                                   if setup.splits is self.evaluation.splits
                                                   else source.selection["dataset"]),
            "density": remaining / total,
            "kernel_density": masks_lib.kernel_density(mask, params),
            "remaining_weights": remaining, "prunable_weights": total,
            "examples_seen": examples,
            "forward_flops_dense": flops["dense"], "forward_flops": flops["masked"],
            "train_flops": training_flops(flops["masked"], examples),
            **({"frozen_weights": masks_lib.remaining_and_total(values)[0] - remaining}
               if values is not None else {}),
            **summary,
        }


def common_start(runs: list[tuple[RunPlan, Any]]) -> list:
    """Where each run of a lanes bucket starts: the latest step checkpoint that all of
    them have (their plan's start if none). A kill while a group saved its lanes' step
    checkpoints one by one leaves some a checkpoint ahead; resuming all at the common
    step makes the same groups as the uninterrupted run (on CPU, a convolution's float
    rounding depends on the lanes beside it), so the rows come out the same."""
    stores = [StepCheckpoints(plan.directory / "steps") for plan, _ in runs]
    starts = [run_start(plan, state, store) for (plan, state), store in zip(runs, stores)]
    while len({start.step for start in starts}) > 1:
        common = min(start.step for start in starts)
        starts = [start if start.step == common else run_start(plan, state, store, common)
                  for start, (plan, state), store in zip(starts, runs, stores)]
    for store in stores:
        store.close()
    return starts


def start_final_correlation(start: PyTree, final: PyTree, mask: PyTree) -> float:
    """P3 App. G's R_p(theta_start * m, theta_final * m) at p = CORRELATION_P over the
    run's remaining prunable weights: near p, the run moved away from its start; near 1,
    it stayed close (P3: a sign of too low a learning rate)."""
    first, masks = kernel_layers(start["params"], mask)
    second, _ = kernel_layers(final["params"], mask)
    return correlation_indicator(first, second, CORRELATION_P, masks)


CORRELATION_P = 0.5  # P3 Fig. G.1's example
# Streams 3, 4, 6 and 7 belong to the branches (branches/base.py, small_dense.py,
# learned_supermask.py).
MASK1_STREAM = 5        # the mask-1 actions' draws (and the reinit action's weights)
DRAW_STREAM = 8         # marks the further draws of a random control (Experiment.draw_stream)
# The generation run that found a transferred ticket (level L-1 for level L's mask, the
# dense run for level 0) is recorded in the ticket's row under "generation".
GENERATION_KEYS = ("level", "density", "evaluation", "early_stop_step", "early_stop_validation_loss",
                   "early_stop_test_accuracy", "test_accuracy", "test_loss",
                   "train_accuracy", "train_steps", "wall_seconds")
STAGE_KEYS = ("replicate", "level", "branch", "draw", "source", "density", "wall_seconds",
              "train_steps", "examples_seen", "forward_flops", "train_flops")


def stage_cost(row: dict) -> dict:
    """What a training run cost; results.json lists one per run, evaluated level or not,
    with the dense-equivalent FLOPs that the plan (and --dry_run) predicts for it."""
    return {**{k: row[k] for k in STAGE_KEYS},
            "train_flops_dense": training_flops(row["forward_flops_dense"],
                                                row["examples_seen"])}


@dataclasses.dataclass
class ReplicateState:
    """What the stages of one source's replicate pass on to each other, in order."""

    source: Source
    replicate: int
    rdir: pathlib.Path
    init: PyTree                      # theta_0 of the source's model
    eval_init: PyTree                 # theta_0 of the evaluation model
    full_mask: PyTree                 # all ones over the prunable set
    mask: PyTree                      # the current level's
    rewind: PyTree                    # the weights the current level rewinds to
    values: PyTree = None             # a mask-0 action's value mask
    previous_final: PyTree = None     # the last trained run's final weights
    dense_final: PyTree = None        # the dense run's
    generation_row: Optional[dict] = None
    found_by: Optional[dict] = None   # the run whose final weights gave the level's mask
    context: Optional[LevelContext] = None  # the current evaluated level's
    fresh_for: Optional[tuple[int, int]] = None  # (level, draw) of context.fresh


def run_experiment(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    return Experiment(config, workdir).run()
