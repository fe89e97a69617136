"""The IMP driver: replicates x levels x branches, every stage resumable.

Level 0 trains the dense network and captures the rewind snapshot. Level L > 0
prunes the previous level's final weights, rewinds every parameter and BN statistic
to the snapshot (fresh optimizer, schedule resumed at the rewind step) and trains
again. Control branches train the level's mask from other starting weights. Each
stage's outputs are written once; a rerun skips every stage whose outputs exist.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxtickets import checkpoints, durations
from jaxtickets.config_schema import (identity, parse_branches, parse_levels, validate,
                                      validate_steps)
from jaxtickets.errors import ConfigError
from jaxtickets.analysis.flops import forward_flops, training_flops
from jaxtickets.data.datasets import NORMALIZATION, Splits, load_splits
from jaxtickets.experiment import results, workdir as workdir_lib
from jaxtickets.models import create_model
from jaxtickets.parallel import make_mesh, replicated
from jaxtickets.sparsity import masks as masks_lib
from jaxtickets.sparsity.pruning import prune_global, prune_layerwise
from jaxtickets.training.batches import BatchOrder, put_split
from jaxtickets.training.loop import Progress, RunPlan, host_copy, train_run
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.schedules import build_schedule
from jaxtickets.training.state import fresh_state
from jaxtickets.training.steps import InputSpec, make_steps

PyTree = Any
REINIT_STREAM = 1_000_003  # PRNG stream ids keep each kind of randomness independent
DATA_STREAM = 2
INIT_STREAM = 1


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The run's durations, converted to steps once (DESIGN invariant 6)."""

    total: int
    rewind: int
    eval_every: int
    checkpoint_every: int
    steps_per_epoch: int
    rewind_units: dict

    def start_after_rewind(self, restart: bool) -> int:
        return 0 if restart else self.rewind


def convert_durations(config: ml_collections.ConfigDict, train_size: int
                      ) -> tuple[Schedule, list[int], int]:
    t = config.train
    steps_per_epoch = train_size // t.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"train.batch_size: {t.batch_size} exceeds the {train_size} "
                         "training images")
    total = durations.total_steps(t.duration, steps_per_epoch, t.batch_size, "train.duration")
    conv = durations.StepConverter(steps_per_epoch, t.batch_size, total)
    rewind = conv.to_steps(config.pruning.rewind, "pruning.rewind")
    eval_every = conv.to_steps(t.eval_every, "train.eval_every")
    ckpt = conv.to_steps(t.checkpoint_every, "train.checkpoint_every")
    decay_at = [conv.to_steps(p.strip(), "train.decay_at")
                for p in t.decay_at.split(",") if p.strip()]
    warmup = conv.to_steps(t.warmup, "train.warmup")
    validate_steps(total, rewind, eval_every, ckpt, decay_at, warmup)
    return (Schedule(total, rewind, eval_every, ckpt, steps_per_epoch, conv.describe(rewind)),
            decay_at, warmup)


class Experiment:
    """Everything built once per experiment: data on device, model, compiled steps."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        validate(config)
        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.id = identity(config)
        self.resuming = workdir_lib.check_identity(self.workdir, config)
        d = config.data
        self.splits: Splits = load_splits(d.dataset, d.source, d.data_dir, d.validation_size,
                                          d.train_size, d.test_size, d.split_seed)
        self.schedule, decay_at, warmup = convert_durations(config, len(self.splits.train))
        t = config.train
        self.mesh = make_mesh(t.batch_size)
        self.eval_batch = -(-t.eval_batch_size // self.mesh.size) * self.mesh.size
        self.model = create_model(config.model.name, self.splits.num_classes,
                                  config.model.dropout)
        lr = build_schedule(t.schedule, t.learning_rate, self.schedule.total, warmup,
                            decay_at, t.decay_factor)
        self.tx = build_optimizer(t.optimizer, lr, t.weight_decay, t.momentum,
                                  nesterov=t.nesterov)
        mean, std = NORMALIZATION[d.dataset]
        self.steps = make_steps(self.model, self.tx, InputSpec(mean, std, d.pad_crop, d.flip),
                                self.mesh, config.runtime.steps_per_call, learning_rate=lr)
        self.train = put_split(self.splits.train.images, self.splits.train.labels, self.mesh)
        self.validation = put_split(self.splits.validation.images,
                                    self.splits.validation.labels, self.mesh)
        self.test = put_split(self.splits.test.images, self.splits.test.labels, self.mesh)
        p = config.pruning
        self.policy = masks_lib.PrunablePolicy(**p.prune.to_dict())
        self.levels = list(range(p.levels + 1))
        self.evaluate_levels = set(parse_levels(p.evaluate_levels, p.levels))
        self.branches = parse_branches(config.branches)

    # ---- randomness -------------------------------------------------------------------
    def _key(self, replicate: int, *stream: int) -> jax.Array:
        key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), replicate)
        for s in stream:
            key = jax.random.fold_in(key, s)
        return key

    def _init(self, key: jax.Array) -> tuple[PyTree, PyTree]:
        sample = jnp.zeros((1,) + self.splits.train.images.shape[1:], jnp.float32)
        variables = self.model.init({"params": key, "dropout": key}, sample, train=False)
        return host_copy(variables["params"]), host_copy(variables.get("batch_stats", {}))

    # ---- stages -----------------------------------------------------------------------
    def _planned_steps(self) -> int:
        runs = sum(1 + (len(self.branches) - 1) * (lv in self.evaluate_levels and lv > 0)
                   for lv in self.levels)
        start = self.schedule.start_after_rewind(self.config.pruning.restart_schedule)
        per_run = self.schedule.total - start
        return self.config.num_replicates * (self.schedule.total + (runs - 1) * per_run)

    def run(self) -> dict:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with workdir_lib.WorkdirLock(self.workdir):
            if self.resuming:
                for path in workdir_lib.remove_stale_temporaries(self.workdir):
                    print(f"removed the unfinished {path} left by an interrupted run")
            else:
                workdir_lib.write_config(self.workdir, self.config)
            self.progress = Progress(self._planned_steps(),
                                     self.config.runtime.log_every_seconds)
            rows: list[dict] = []
            self.stages: list[dict] = []  # the cost of every trained run, evaluated or not
            started = time.time()
            for replicate in range(self.config.num_replicates):
                self._replicate(replicate, rows)
            out = self._write(rows)
            print(results.format_table(rows), flush=True)
            print(f"done in {time.time() - started:.1f}s; results in "
                  f"{self.workdir / results.RESULTS_FILE}", flush=True)
            return out

    def _write(self, rows: list[dict]) -> dict:
        """Writes the rows computed so far, keeping rows of stages not yet reached in this
        process, so an interrupted rerun never shrinks an existing results.json."""
        stored = self._stored_results()
        rows = self._merged(stored, rows, "rows")
        extra = {"stages": self._merged(stored, self.stages, "stages"),
                 "compilations": dict(self.steps.traces),
                 "rewind": {"step": self.schedule.rewind, **self.schedule.rewind_units},
                 "total_steps": self.schedule.total}
        results.write_results(self.workdir, self.id, rows, extra)
        if self.config.runtime.plot and rows:
            results.plot_accuracy(rows, self.workdir / results.PLOT_FILE)
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
        key = lambda r: (r["replicate"], r["level"], r["branch"])  # noqa: E731
        merged = {key(r): r for r in stored.get(field, [])}
        merged.update({key(r): r for r in fresh})
        return list(merged.values())

    def _replicate(self, replicate: int, rows: list[dict]) -> None:
        rdir = self.workdir / f"replicate_{replicate}"
        theta0_path = rdir / "theta_0"
        params0, stats0 = self._init(self._key(replicate, INIT_STREAM))
        init = {"params": params0, "batch_stats": stats0}
        if checkpoints.exists(theta0_path):
            init = checkpoints.load_tree(theta0_path, init)
        else:
            checkpoints.save_tree(theta0_path, init)
        mask = masks_lib.init_mask(init["params"], self.policy)
        rewind_path = rdir / "rewind"
        previous_final = None
        for level in self.levels:
            ldir = rdir / f"level_{level:02d}"
            if level > 0:
                mask = self._level_mask(ldir, previous_final, mask, replicate, level)
            if level > 0 and not checkpoints.exists(rewind_path):
                self._recover_rewind(rewind_path, init, rdir)
            if level == 0:
                start = (init, 0)
            else:
                start = (checkpoints.load_tree(rewind_path, init),
                         self.schedule.start_after_rewind(self.config.pruning.restart_schedule))
            capture = rewind_path if level == 0 and not checkpoints.exists(rewind_path) else None
            label = f"rep {replicate} level {level}/{self.levels[-1]} ticket"
            summary, previous_final = self._train(ldir / "ticket", label, start, mask,
                                                  replicate, capture)
            row = self._row(replicate, level, "ticket", mask, init["params"], summary)
            self.stages.append(stage_cost(row))
            if level not in self.evaluate_levels:
                continue
            rows.append(row)
            for branch in self.branches:
                if branch == "ticket" or level == 0:
                    continue
                params, stats = self._init(self._key(replicate, REINIT_STREAM, level))
                label = f"rep {replicate} level {level}/{self.levels[-1]} {branch}"
                summary, _ = self._train(ldir / branch, label,
                                         ({"params": params, "batch_stats": stats}, start[1]),
                                         mask, replicate, None)
                rows.append(self._row(replicate, level, branch, mask, init["params"], summary))
                self.stages.append(stage_cost(rows[-1]))
            self._write(rows)

    def _recover_rewind(self, rewind_path: pathlib.Path, init: PyTree,
                        rdir: pathlib.Path) -> None:
        """A rewind snapshot lost after level 0: theta_0 itself, or level 0 must rerun."""
        if self.schedule.rewind == 0:
            checkpoints.save_tree(rewind_path, init)
            return
        raise checkpoints.CheckpointError(
            f"{rewind_path} is missing; delete {rdir / 'level_00' / 'ticket'} to retrain "
            "level 0 and capture it again")

    def _level_mask(self, ldir: pathlib.Path, previous_final: PyTree, mask: PyTree,
                    replicate: int, level: int) -> PyTree:
        path = ldir / "mask"
        if checkpoints.exists(path):
            return checkpoints.load_tree(path, mask)
        p = self.config.pruning
        seed = int(np.random.SeedSequence([self.config.seed, replicate, level]).generate_state(1)[0])
        if p.method == "global":
            new = prune_global(previous_final["params"], mask, p.rate, seed)
        else:
            new = prune_layerwise(previous_final["params"], mask, p.rates.to_dict(), seed)
        checkpoints.save_tree(path, new)
        return new

    def _train(self, run_dir: pathlib.Path, label: str, start: tuple[PyTree, int],
               mask: PyTree, replicate: int, capture_path) -> tuple[dict, PyTree]:
        """Trains one run (or loads it if finished); returns its summary and final weights."""
        weights, start_step = start
        metrics_path = run_dir / "metrics.json"
        final_path = run_dir / "final"
        if metrics_path.exists() and checkpoints.exists(final_path):
            return (checkpoints.read_json(metrics_path)["summary"],
                    checkpoints.load_tree(final_path, weights))
        state = fresh_state(weights["params"], weights["batch_stats"], mask, self.tx,
                            start_step, self._key(replicate, DATA_STREAM))
        state = jax.device_put(state, replicated(self.mesh))
        plan = RunPlan(label, run_dir, start_step, self.schedule.total,
                       self.schedule.eval_every, self.schedule.checkpoint_every,
                       self.schedule.rewind if capture_path else None)

        def capture(s):
            checkpoints.save_tree(capture_path, {"params": host_copy(s.params),
                                                 "batch_stats": host_copy(s.batch_stats)})

        order = BatchOrder(len(self.splits.train), self.config.train.batch_size,
                           int(np.random.SeedSequence([self.config.seed, replicate,
                                                       DATA_STREAM]).generate_state(1)[0]))
        outcome = train_run(plan, state, self.steps, self.train, order, self.validation,
                            self.test, self.eval_batch, self.progress,
                            capture if capture_path else None)
        final = {"params": host_copy(outcome.state.params),
                 "batch_stats": host_copy(outcome.state.batch_stats)}
        checkpoints.save_tree(final_path, final)
        summary = {**outcome.summary(), "start_step": start_step,
                   "train_steps": self.schedule.total - start_step}
        checkpoints.write_json(metrics_path, {"summary": summary, "history": outcome.history})
        return summary, final

    def _row(self, replicate: int, level: int, branch: str, mask: PyTree, params: PyTree,
             summary: dict) -> dict:
        remaining, total = masks_lib.remaining_and_total(mask)
        examples = summary["train_steps"] * self.config.train.batch_size
        flops = forward_flops(self.model, params, mask, self.splits.train.images.shape[1:])
        return {
            "replicate": replicate, "level": level, "branch": branch,
            "source": f"labels:{self.config.data.dataset}",
            "density": remaining / total,
            "kernel_density": masks_lib.kernel_density(mask, params),
            "remaining_weights": remaining, "prunable_weights": total,
            "examples_seen": examples,
            "forward_flops_dense": flops["dense"], "forward_flops": flops["masked"],
            "train_flops": training_flops(flops["masked"], examples),
            **summary,
        }


STAGE_KEYS = ("replicate", "level", "branch", "source", "density", "wall_seconds",
              "train_steps", "examples_seen", "forward_flops", "train_flops")


def stage_cost(row: dict) -> dict:
    """What a training run cost; results.json lists one per run, evaluated level or not."""
    return {k: row[k] for k in STAGE_KEYS}


def run_experiment(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    return Experiment(config, workdir).run()
