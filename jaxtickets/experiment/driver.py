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
Each stage's outputs are written once; a rerun skips every stage whose outputs exist.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxtickets import checkpoints, distributed
from jaxtickets.config_schema import identity, parse_logit_inits, validate
from jaxtickets.errors import ConfigError
from jaxtickets.analysis.correlation import correlation_indicator, kernel_layers
from jaxtickets.analysis.flops import forward_flops, training_flops
from jaxtickets.experiment import controls, results, workdir as workdir_lib
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
from jaxtickets.training.batches import BatchOrder
from jaxtickets.training.loop import (Progress, RunPlan, evaluate_untrained, host_copy,
                                     train_run)
from jaxtickets.training.state import fresh_state

PyTree = Any
REINIT_STREAM = 1_000_003  # PRNG stream ids keep each kind of randomness independent
DATA_STREAM = 2
INIT_STREAM = 1


def convert_durations(config: ml_collections.ConfigDict, train_size: int
                      ) -> tuple[Schedule, list[int], int]:
    """The evaluation recipe's durations in steps for `train_size` training images."""
    return convert_recipe(evaluation_recipe(config), train_size)


class Experiment:
    """Everything built once per experiment: data on device, models, compiled steps."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        validate(config)
        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.id = identity(config)
        self.resuming = workdir_lib.check_identity(self.workdir, config)
        label_cache = self.workdir / workdir_lib.LABEL_INDEX_DIR
        self.splits, full = load_evaluation_data(config, label_cache)
        self.evaluation: Setup = evaluation_setup(config, self.splits)
        self.schedule = self.evaluation.schedule
        self.sources: list[Source] = build_sources(config, self.workdir, self.evaluation, full,
                                                   label_cache)
        p = config.pruning
        self.policy = masks_lib.PrunablePolicy(**p.prune.to_dict())
        self.levels = list(range(p.levels + 1))
        self.extra_setups: list[Setup] = []  # small-dense models, compiled as needed
        self._small_dense_setups: dict[int, Setup] = {}  # by target count: draws share one
        self.from_scratch = controls.from_scratch(p.controls_from_scratch)
        self.compile_clock = CompileClock()  # XLA compile seconds of this process

    @property
    def steps(self):
        return self.evaluation.steps

    # ---- randomness -------------------------------------------------------------------
    def _key(self, replicate: int, *stream: int) -> jax.Array:
        key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), replicate)
        for s in stream:
            key = jax.random.fold_in(key, s)
        return key

    def _seed(self, replicate: int, *stream: int) -> int:
        return int(np.random.SeedSequence([self.config.seed, replicate, *stream])
                   .generate_state(1)[0])

    @staticmethod
    def _draw_stream(draw: int) -> tuple[int, ...]:
        """What a control's draw adds to its keys and seeds: nothing for draw 0, so it is
        the run made before draws existed; (DRAW_STREAM, d) for d > 0, never a trailing
        0 (SeedSequence pads entropy with zeros: [a, b, 0] seeds like [a, b])."""
        return () if draw == 0 else (DRAW_STREAM, draw)

    def _control_start(self, branch: str) -> int:
        """The schedule step a trained control starts at: the ticket's (the rewind step
        unless the schedule restarts), or 0 for a branch trained from scratch (P3 App. B:
        RR and SDT train the full T while the ticket trains T - t from theta_t)."""
        return 0 if branch in self.from_scratch else self.evaluation.rewind_start

    @staticmethod
    def _init(setup: Setup, key: jax.Array) -> dict:
        """Initial variables; Flax derives each layer's key from its name, and
        initialize_kernels (model.init) each kernel's from its path, so the layers that
        two setups' models share get the same values from the same key."""
        from jaxtickets.models.initializers import initialize_kernels

        sample = jnp.zeros((1,) + setup.image_shape, jnp.float32)
        variables = setup.model.init({"params": key, "dropout": key}, sample, train=False)
        params = initialize_kernels(setup.init, variables["params"], key)
        return {"params": host_copy(params),
                "batch_stats": host_copy(variables.get("batch_stats", {}))}

    # ---- stages -----------------------------------------------------------------------
    def _planned_steps(self) -> int:
        restart = self.config.pruning.restart_schedule
        supermask = self.config.supermask
        total = 0
        for src in self.sources:
            gen = src.setup
            runs = sum(self._trains_at(src, lv, lv in src.evaluate_levels)
                       for lv in self.levels)
            total += gen.schedule.total + max(runs - 1, 0) * (
                gen.schedule.total - gen.schedule.start_after_rewind(restart))
            per_eval = self.schedule.total - self.schedule.start_after_rewind(restart)
            draws = self.config.pruning.control_draws
            for lv in src.evaluate_levels:
                trained = [b for b in src.branches if b != "ticket" and controls.runs_at(b, lv)
                           and controls.is_trained(b)]
                ticket = 0 if src.is_evaluation or not src.trains_ticket(lv) else 1
                total += per_eval * ticket
                for b in trained:
                    if b == "learned_supermask":
                        total += supermask.steps * len(parse_logit_inits(supermask.logit_inits))
                    else:
                        total += controls.draws(b, draws) * (self.schedule.total
                                                             - self._control_start(b))
        return self.config.num_replicates * total

    def run(self) -> dict:
        distributed.on_primary(lambda: self.workdir.mkdir(parents=True, exist_ok=True),
                               f"creating {self.workdir}")
        with workdir_lib.WorkdirLock(self.workdir), self.compile_clock:
            if self.resuming:
                for path in workdir_lib.remove_stale_temporaries(self.workdir):
                    distributed.primary_print(f"removed the unfinished {path} left by an "
                                              "interrupted run")
            else:
                workdir_lib.write_config(self.workdir, self.config)
            self.progress = Progress(self._planned_steps(),
                                     self.config.runtime.log_every_seconds)
            rows: list[dict] = []
            self.stages: list[dict] = []  # the cost of every trained run, evaluated or not
            started = time.time()
            for source in self.sources:
                for replicate in range(self.config.num_replicates):
                    self._replicate(source, replicate, rows)
            out = self._write(rows)
            distributed.primary_print(results.format_table(out["rows"]) if len(self.sources) == 1
                  else results.sources_table(self.workdir), flush=True)
            distributed.primary_print(f"done in {time.time() - started:.1f}s; results in "
                  f"{self.workdir / results.RESULTS_FILE}", flush=True)
            return out

    def _write(self, rows: list[dict]) -> dict:
        """Writes the rows computed so far, keeping rows of stages not yet reached in this
        process, so an interrupted rerun never shrinks an existing results.json."""
        stored = self._stored_results()
        rows = self._merged(stored, rows, "rows")
        traces: dict[str, int] = {}
        setups = {id(s.setup): s.setup for s in self.sources}
        setups[id(self.evaluation)] = self.evaluation
        setups.update({id(s): s for s in self.extra_setups})
        for setup in setups.values():
            for kind, count in setup.steps.traces.items():
                traces[kind] = traces.get(kind, 0) + count
        extra = {"stages": self._merged(stored, self.stages, "stages"),
                 "compilations": traces,
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
        results.write_results(self.workdir, self.id, rows, extra)
        if self.config.runtime.plot and rows:
            distributed.on_primary(
                lambda: results.plot_accuracy(rows, self.workdir / results.PLOT_FILE),
                f"plotting {self.workdir / results.PLOT_FILE}")
        return checkpoints.read_json(self.workdir / results.RESULTS_FILE)

    def _stored_results(self) -> dict:
        path = self.workdir / results.RESULTS_FILE
        try:
            stored = checkpoints.read_json(path) if path.exists() else {}
        except checkpoints.CheckpointError:
            return {}  # rebuilt from the stages' metrics.json files
        return stored if stored.get("experiment") == self.id else {}

    @staticmethod
    def _merged(stored: dict, fresh: list[dict], field: str) -> list[dict]:
        key = results.run_key
        merged = {key(r): r for r in stored.get(field, [])}
        merged.update({key(r): r for r in fresh})
        return list(merged.values())

    def _replicate(self, source: Source, replicate: int, rows: list[dict]) -> None:
        gen, trajectory = source.setup, source.trajectory
        rdir = source.root / f"replicate_{replicate}"
        theta0_path = rdir / "theta_0"
        init = self._init(gen, self._key(replicate, INIT_STREAM))
        if checkpoints.exists(theta0_path):
            init = checkpoints.load_tree(theta0_path, init)
        else:
            checkpoints.save_tree(theta0_path, init)
        eval_init = init if source.is_evaluation else self._init(
            self.evaluation, self._key(replicate, INIT_STREAM))
        full_mask = self._full_mask(init["params"], gen)
        mask, values = full_mask, None
        rewind_path = rdir / "rewind"
        previous_final = dense_final = generation_row = None
        tag = f"{source.name} " if len(self.sources) > 1 else ""
        last = self.levels[-1]
        for level in self.levels:
            ldir = rdir / f"level_{level:02d}"
            if level > 0 and not checkpoints.exists(rewind_path):
                self._recover_rewind(rewind_path, init, rdir, gen)
            rewind = init if level == 0 else checkpoints.load_tree(rewind_path, init)
            if level > 0:
                base = (dense_final, full_mask, None) if trajectory.schedule == "one_shot" \
                    else (previous_final, mask, values)
                mask, values = self._level_mask(source, ldir, base, rewind, replicate, level)
            label = f"{tag}rep {replicate} level {level}/{last}"
            evaluated = level in source.evaluate_levels
            found_by = generation_row  # the run whose final weights gave this level's mask
            if self._trains_at(source, level, evaluated):
                capture = rewind_path if level == 0 and not checkpoints.exists(
                    rewind_path) else None
                branch = "ticket" if source.is_evaluation else "generation"
                start = self._start_weights(source, level, rewind, previous_final, mask,
                                            init, replicate)
                summary, previous_final = self._train(
                    gen, ldir / branch, f"{label} {branch}", (start, gen.start_step(level)),
                    mask, replicate, capture, values)
                generation_row = self._row(source, gen, replicate, level, branch, mask,
                                           init, summary, values)
                self.stages.append(stage_cost(generation_row))
                if level == 0:  # the dense run found itself (and the rewind weights)
                    found_by, dense_final = generation_row, previous_final
            if not evaluated:
                continue
            if source.is_evaluation:
                if source.trains_ticket(level):
                    rows.append(generation_row)
                eval_mask, ticket = mask, rewind
            else:
                # Rewind weights at every level, level 0 included, so training starts at
                # the evaluation's rewind step.
                generated = rewind if level > 0 else checkpoints.load_tree(rewind_path, init)
                ticket, _ = transfer_weights(generated, eval_init)
                eval_mask = transfer_mask(mask, eval_init["params"], self.policy)
                if source.trains_ticket(level):
                    self._transferred_ticket(source, ldir, label, replicate, level,
                                             (ticket, eval_mask, eval_init), found_by, rows)
            ctx = controls.LevelContext(
                ticket, eval_mask, eval_init, None,
                dense_final if dense_final is None or source.is_evaluation
                else transfer_weights(dense_final, eval_init)[0],
                self.config.pruning.natural_zero_threshold)
            self._controls(source, ctx, ldir, label, replicate, level, rows)
            self._write(rows)

    def _transferred_ticket(self, source: Source, ldir: pathlib.Path, label: str,
                            replicate: int, level: int, start: tuple, found_by: dict,
                            rows: list[dict]) -> None:
        """Trains a transferred ticket (start = weights, mask, evaluation theta_0) with
        the evaluation's recipe; its row names the generation run that found its mask."""
        ticket, eval_mask, eval_init = start
        summary, _ = self._train(self.evaluation, ldir / "ticket", f"{label} ticket",
                                 (ticket, self.evaluation.rewind_start), eval_mask,
                                 replicate, None)
        row = self._row(source, self.evaluation, replicate, level, "ticket", eval_mask,
                        eval_init, summary)
        row["generation"] = {k: found_by[k] for k in GENERATION_KEYS}
        rows.append(row)
        self.stages.append(stage_cost(row))

    def _trains_at(self, source: Source, level: int, evaluated: bool) -> bool:
        """Whether the source trains its own run at `level`: always the dense level 0;
        IMP every level whose final weights give the next mask (the evaluation's own
        runs are its tickets, so also the last); one-shot masks all come from the dense
        run, so only the evaluation's evaluated levels (its tickets, if it has them)."""
        if level == 0:
            return True
        if source.trajectory.schedule == "one_shot":
            return source.is_evaluation and evaluated and source.trains_ticket(level)
        return source.is_evaluation or level < self.levels[-1]

    def _controls(self, source: Source, ctx: controls.LevelContext, ldir: pathlib.Path,
                  label: str, replicate: int, level: int, rows: list[dict]) -> None:
        """Trains (or evaluates) the level's control branches from the ticket's mask:
        each random control `pruning.control_draws` times, each draw with keys and seeds
        of its own; the deterministic ones once. Draws run in order, draw 0 of every
        branch first, and draw 0 is exactly the single run of `control_draws=1`."""
        names = [b for b in source.branches if b != "ticket" and controls.runs_at(b, level)]
        count = self.config.pruning.control_draws
        for draw in range(max((controls.draws(b, count) for b in names), default=0)):
            todo = [b for b in names if draw < controls.draws(b, count)]
            stream = self._draw_stream(draw)
            if any(b in controls.FRESH_WEIGHTS for b in todo):
                # One fresh initialization per level and draw, shared by the draw's
                # controls (paired: draw d of random_reinit and random_ticket start alike).
                ctx.fresh = self._init(self.evaluation,
                                       self._key(replicate, REINIT_STREAM, level, *stream))
            for branch in todo:
                self._control(source, ctx, ldir, label, replicate, level, branch, draw, rows)

    def _control(self, source: Source, ctx: controls.LevelContext, ldir: pathlib.Path,
                 label: str, replicate: int, level: int, branch: str, draw: int,
                 rows: list[dict]) -> None:
        """One draw of one control branch (its stored mask, start weights, run, row)."""
        bdir = ldir / controls.run_name(branch, draw)
        if branch == "learned_supermask":
            self._learned_supermasks(source, ctx, bdir, replicate, rows)
            return
        if branch == "small_dense":
            self._small_dense(source, ctx, bdir, label, replicate, level, draw, rows)
            return
        stream = self._draw_stream(draw)
        run_label = f"{label} {branch}" + (f" draw {draw}" if draw else "")
        seed = self._seed(replicate, level, PERMUTATION_STREAM, *stream)
        branch_mask = self._stored_mask(bdir / "mask", branch, ctx, seed)
        weights = controls.control_weights(branch, ctx, branch_mask,
                                           self._seed(replicate, level, ACTION_STREAM, *stream))
        if controls.is_trained(branch):
            summary, _ = self._train(self.evaluation, bdir, run_label,
                                     (weights, self._control_start(branch)),
                                     branch_mask, replicate, None)
        else:
            summary = self._evaluate_untrained(self.evaluation, bdir, weights,
                                               branch_mask, replicate)
        rows.append(self._row(source, self.evaluation, replicate, level, branch,
                              branch_mask, ctx.initial, summary, draw=draw))
        self.stages.append(stage_cost(rows[-1]))

    def _stored_mask(self, path: pathlib.Path, branch: str, ctx: controls.LevelContext,
                     seed: int) -> PyTree:
        """A control's drawn mask, computed once and stored beside its run."""
        if branch not in controls.DRAWN_MASKS:
            return ctx.mask
        if checkpoints.exists(path):
            return checkpoints.load_tree(path, ctx.mask)
        drawn = controls.control_mask(branch, ctx, seed)
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
        fresh = (self._init(source.setup, self._key(replicate, MASK1_STREAM, level))
                 if trajectory.mask1_action.startswith("reinit") else None)
        params = actions.mask1_weights(
            trajectory.mask1_action, rewind["params"], fresh and fresh["params"], mask,
            actions.layer_sigmas(init["params"], mask),
            self._seed(replicate, level, MASK1_STREAM))
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
            seed = self._seed(replicate, level)
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

    def _train(self, setup: Setup, run_dir: pathlib.Path, label: str,
               start: tuple[PyTree, int], mask: PyTree, replicate: int,
               capture_path, values: PyTree = None) -> tuple[dict, PyTree]:
        """Trains one run (or loads it if finished); returns its summary and final weights.
        `values` is the value mask of a mask-0 action (None: the mask itself)."""
        weights, start_step = start
        metrics_path = run_dir / "metrics.json"
        final_path = run_dir / "final"
        if metrics_path.exists() and checkpoints.exists(final_path):
            return (checkpoints.read_json(metrics_path)["summary"],
                    checkpoints.load_tree(final_path, weights))
        state = self._device_state(setup, weights, mask, start_step, replicate, values)
        plan = RunPlan(label, run_dir, start_step, setup.schedule.total,
                       setup.schedule.eval_every, setup.schedule.checkpoint_every,
                       setup.schedule.rewind if capture_path else None)

        def capture(s):
            checkpoints.save_tree(capture_path, {"params": host_copy(s.params),
                                                 "batch_stats": host_copy(s.batch_stats)})

        order = BatchOrder(len(setup.splits.train), setup.recipe.batch_size,
                           self._seed(replicate, DATA_STREAM))
        outcome = train_run(plan, state, setup.steps, setup.train, order, setup.validation,
                            setup.test, setup.eval_batch, self.progress,
                            capture if capture_path else None)
        final = {"params": host_copy(outcome.state.params),
                 "batch_stats": host_copy(outcome.state.batch_stats)}
        checkpoints.save_tree(final_path, final)
        summary = {**outcome.summary(), "start_step": start_step,
                   "train_steps": setup.schedule.total - start_step,
                   "init_final_correlation": start_final_correlation(weights, final, mask)}
        checkpoints.write_json(metrics_path, {"summary": summary, "history": outcome.history})
        return summary, final

    def _device_state(self, setup: Setup, weights: PyTree, mask: PyTree, step: int,
                      replicate: int, values: PyTree = None):
        """A fresh TrainState from `weights` at `step`, replicated over the setup's mesh."""
        state = fresh_state(weights["params"], weights["batch_stats"], mask, setup.tx, step,
                            self._key(replicate, DATA_STREAM), values)
        return jax.device_put(state, state_shardings(state, setup.mesh, setup.fsdp))

    def _evaluate_untrained(self, setup: Setup, run_dir: pathlib.Path, weights: PyTree,
                            mask: PyTree, replicate: int) -> dict:
        """Evaluates the network as given, without training (P4's supermasks)."""
        metrics_path = run_dir / "metrics.json"
        if metrics_path.exists():
            return checkpoints.read_json(metrics_path)["summary"]
        state = self._device_state(setup, weights, mask, 0, replicate)
        outcome = evaluate_untrained(state, setup.steps, setup.validation, setup.test,
                                     setup.eval_batch)
        summary = {**outcome.summary(), "start_step": 0, "train_steps": 0}
        checkpoints.write_json(metrics_path, {"summary": summary, "history": outcome.history})
        return summary

    def _small_dense(self, source: Source, ctx: controls.LevelContext, bdir: pathlib.Path,
                     label: str, replicate: int, level: int, draw: int,
                     rows: list[dict]) -> None:
        """P3's SDT: the same architecture, every width shrunk so its kernel weights
        match the ticket's remaining ones (prunable kept + unpruned kernels), trained
        dense from a fresh initialization (one per draw) with the evaluation recipe."""
        from jaxtickets.sparsity.small_dense import kernel_weight_count, small_dense_model

        ev = self.evaluation
        full = kernel_weight_count(ev.model, ev.image_shape)
        target = round(masks_lib.kernel_density(ctx.mask, ctx.initial["params"]) * full)
        model, count = small_dense_model(ev.model, target, ev.image_shape)
        setup = self._small_dense_setups.get(target)
        if setup is None:  # compiled once per model (the target fixes it), not per draw
            setup = ev.with_model(model)
            self._small_dense_setups[target] = setup
            self.extra_setups.append(setup)
        weights = self._init(setup, self._key(replicate, SMALL_DENSE_STREAM, level,
                                              *self._draw_stream(draw)))
        dense_mask = masks_lib.init_mask(weights["params"], self.policy)
        summary, _ = self._train(setup, bdir,
                                 f"{label} small_dense" + (f" draw {draw}" if draw else ""),
                                 (weights, self._control_start("small_dense")), dense_mask,
                                 replicate, None)
        row = self._row(source, setup, replicate, level, "small_dense", dense_mask, weights,
                        summary, draw=draw)
        row.update({"density": masks_lib.density(ctx.mask), "remaining_weights": count,
                    "kernel_density": count / full, "small_dense_target_weights": target})
        rows.append(row)
        self.stages.append(stage_cost(row))

    def _learned_supermasks(self, source: Source, ctx: controls.LevelContext,
                            bdir: pathlib.Path, replicate: int, rows: list[dict]) -> None:
        """P4 Sec. 5.1: one learned supermask per logit initialization, on theta_0."""
        from jaxtickets.supermask.learned import SupermaskRecipe, train_supermask

        m = self.config.supermask
        for value in parse_logit_inits(m.logit_inits):
            branch = f"learned_supermask_{value:g}"
            run_dir = bdir.parent / branch
            metrics_path = run_dir / "metrics.json"
            if metrics_path.exists():
                summary = checkpoints.read_json(metrics_path)["summary"]
            else:
                recipe = SupermaskRecipe(value, m.steps, m.learning_rate, m.momentum,
                                         m.batch_size, m.eval_every, m.eval_samples)
                summary, history = train_supermask(
                    self.evaluation, ctx.initial, ctx.mask, recipe,
                    self._seed(replicate, SUPERMASK_STREAM))
                checkpoints.write_json(metrics_path, {"summary": summary,
                                                      "history": history})
            row = self._row(source, self.evaluation, replicate, 0, branch, ctx.mask,
                            ctx.initial, summary)
            row["examples_seen"] = m.steps * m.batch_size
            row["remaining_weights"] = round(summary["density"] * row["prunable_weights"])
            rows.append(row)
            self.stages.append(stage_cost(row))

    def _row(self, source: Source, setup: Setup, replicate: int, level: int, branch: str,
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


def start_final_correlation(start: PyTree, final: PyTree, mask: PyTree) -> float:
    """P3 App. G's R_p(theta_start * m, theta_final * m) at p = CORRELATION_P over the
    run's remaining prunable weights: near p, the run moved away from its start; near 1,
    it stayed close (P3: a sign of too low a learning rate)."""
    first, masks = kernel_layers(start["params"], mask)
    second, _ = kernel_layers(final["params"], mask)
    return correlation_indicator(first, second, CORRELATION_P, masks)


CORRELATION_P = 0.5  # P3 Fig. G.1's example
PERMUTATION_STREAM = 3
ACTION_STREAM = 4       # noise and D_m draws of the control branches
MASK1_STREAM = 5        # the mask-1 actions' draws (and the reinit action's weights)
SMALL_DENSE_STREAM = 6
SUPERMASK_STREAM = 7
DRAW_STREAM = 8         # marks the further draws of a random control (Experiment._draw_stream)
# The generation run that found a transferred ticket (level L-1 for level L's mask, the
# dense run for level 0) is recorded in the ticket's row under "generation".
GENERATION_KEYS = ("level", "density", "evaluation", "early_stop_step", "early_stop_validation_loss",
                   "early_stop_test_accuracy", "test_accuracy", "test_loss",
                   "train_accuracy", "train_steps", "wall_seconds")
STAGE_KEYS = ("replicate", "level", "branch", "draw", "source", "density", "wall_seconds",
              "train_steps", "examples_seen", "forward_flops", "train_flops")


def stage_cost(row: dict) -> dict:
    """What a training run cost; results.json lists one per run, evaluated level or not."""
    return {k: row[k] for k in STAGE_KEYS}


def run_experiment(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    return Experiment(config, workdir).run()
