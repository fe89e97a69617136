"""learned_supermask (P4 Sec. 5.1): a mask learned on theta_0 by gradient descent on
Bernoulli mask logits, one per logit initialization in supermask.logit_inits, on the
dense level 0 only (it finds its own mask). Its keys live under supermask.*."""

from __future__ import annotations

import math

from jaxtickets import config_values
from jaxtickets.branches.base import Branch, BranchJob, PlanInfo, RunCost
from jaxtickets.errors import ConfigError

SUPERMASK_STREAM = 7


def parse_logit_inits(spec: tuple) -> list[float]:
    values = config_values.numbers(spec, "supermask.logit_inits")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"supermask.logit_inits: expected finite numbers, got {spec!r}")
    return values


class LearnedSupermask(Branch):
    name = "learned_supermask"
    description = "a mask learned on theta_0 (per logit init)"
    trains_in_lanes = False  # supermask/learned.py's own training loop

    def runs_at(self, level):
        return level == 0

    @staticmethod
    def run_names(config) -> list[tuple[float, str]]:
        return [(v, f"learned_supermask_{v:g}")
                for v in parse_logit_inits(config.supermask.logit_inits)]

    def costs(self, info: PlanInfo, level: int) -> list[RunCost]:
        m = info.config.supermask
        return [RunCost(name, m.steps, m.steps * m.batch_size)
                for _, name in self.run_names(info.config)]

    def run(self, job: BranchJob) -> list[dict]:
        from jaxtickets import checkpoints
        from jaxtickets.supermask.learned import SupermaskRecipe, train_supermask

        ex, ctx = job.experiment, job.ctx
        m = ex.config.supermask
        rows = []
        for value, branch in self.run_names(ex.config):
            metrics_path = job.run_dir.parent / branch / "metrics.json"
            if metrics_path.exists():
                summary = checkpoints.read_json(metrics_path)["summary"]
            else:
                recipe = SupermaskRecipe(value, m.steps, m.learning_rate, m.momentum,
                                         m.batch_size, m.eval_every, m.eval_samples)
                summary, history = train_supermask(
                    ex.evaluation, ctx.initial, ctx.mask, recipe,
                    ex.seed(job.replicate, SUPERMASK_STREAM))
                checkpoints.write_json(metrics_path, {"summary": summary,
                                                      "history": history})
            row = ex.row(job.source, ex.evaluation, job.replicate, 0, branch, ctx.mask,
                         ctx.initial, summary)
            row["examples_seen"] = m.steps * m.batch_size
            row["remaining_weights"] = round(summary["density"] * row["prunable_weights"])
            rows.append(row)
        return rows

    def check_config(self, config, used: bool) -> None:
        from jaxtickets.data.datasets import STREAMED_CLASSES

        if used and config.data.dataset in STREAMED_CLASSES:
            raise ConfigError(f"branches: learned_supermask is not supported with the "
                              f"streamed dataset {config.data.dataset} yet (it has a "
                              "training loop of its own)")
        m = config.supermask
        if not used:
            for key in m.keys():
                config_values.refuse_unread(config, f"supermask.{key}", "only read by the "
                                            "learned_supermask branch, which no trajectory "
                                            "runs")
        inits = parse_logit_inits(m.logit_inits)
        if used and not inits:
            raise ConfigError("supermask.logit_inits: the learned_supermask branch needs at "
                              "least one mask-logit initialization, e.g. '-1,0,1'")
        for field in ("steps", "batch_size", "eval_every", "eval_samples"):
            if m[field] < 1:
                raise ConfigError(f"supermask.{field}: must be >= 1, got {m[field]}")
        if m.learning_rate <= 0:
            raise ConfigError(f"supermask.learning_rate: must be > 0, got {m.learning_rate}")
        if not 0.0 <= m.momentum < 1.0:
            raise ConfigError(f"supermask.momentum: must lie in [0, 1), got {m.momentum}")
