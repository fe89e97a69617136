"""docs/extending.md's worked examples, run: a control branch and a source task defined
here, registered, and run end to end by the unchanged driver and schema."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import smoke_config
from jaxtickets import branches, checkpoints, tasks
from jaxtickets.config_schema import add_source, validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment
from jaxtickets.tasks.base import LabelsTask, normalize


# ---- the docs' toy branch: the ticket's own start weights, signs flipped ------------
class NegatedTicket(branches.Branch):
    """The ticket's mask on its rewind weights times -1 (a toy control)."""

    name = "negated_ticket"
    description = "the ticket's weights, negated"

    def weights(self, ctx, mask, seed):
        params = jax.tree_util.tree_map(lambda w: -w, ctx.ticket["params"])
        return {"params": params, "batch_stats": ctx.ticket["batch_stats"]}


# ---- the docs' toy task: label classification of colour-inverted images -------------
@dataclasses.dataclass(frozen=True)
class InvertedLabelsTask(LabelsTask):
    name: str = "inverted_labels"

    def train_inputs(self, raw, labels, rng, spec):
        return normalize(255 - raw, spec), labels

    def eval_inputs(self, raw, labels, spec):
        return normalize(255 - raw, spec), labels


@pytest.fixture
def registered():
    branches.register(NegatedTicket())
    tasks.register(tasks.TaskKind("inverted_labels", lambda rotations: InvertedLabelsTask()))
    yield
    branches.unregister("negated_ticket")
    tasks.unregister("inverted_labels")


def _config():
    config = smoke_config(pruning__levels=1, train__duration="40st", train__eval_every="20st",
                          train__checkpoint_every="40st", runtime__plot=False,
                          branches=("ticket", "negated_ticket"))
    add_source(config, "labels")
    add_source(config, "inverted", task="inverted_labels")
    return config


def test_unknown_names_are_refused_before_registration():
    with pytest.raises(ConfigError, match="unknown branch 'negated_ticket'"):
        validate(smoke_config(branches=("ticket", "negated_ticket")))
    config = smoke_config()
    add_source(config, "inverted", task="inverted_labels")
    with pytest.raises(ConfigError, match="generation.inverted.task: unknown task"):
        validate(config)


def test_a_registered_branch_and_task_run_end_to_end(registered, tmp_path):
    exp = Experiment(_config(), tmp_path / "run")
    results = exp.run()
    rows = {(r["source_name"], r["level"], r["branch"]): r for r in results["rows"]}
    assert set(rows) == {("labels", 0, "ticket"), ("labels", 1, "ticket"),
                         ("labels", 1, "negated_ticket"), ("inverted", 0, "ticket"),
                         ("inverted", 1, "ticket"),
                         ("inverted", 1, "negated_ticket")}
    assert rows[("inverted", 1, "ticket")]["source"] == "inverted_labels:mnist"
    # The control kept the ticket's mask: the same count of weights.
    for source in ("labels", "inverted"):
        ticket, negated = rows[(source, 1, "ticket")], rows[(source, 1, "negated_ticket")]
        assert negated["remaining_weights"] == ticket["remaining_weights"]
        assert negated["train_steps"] == ticket["train_steps"]
    # It trained from the negated rewind weights: its first evaluation is not the ticket's.
    ldir = tmp_path / "run" / "source_labels" / "replicate_0" / "level_01"
    first = [checkpoints.read_json(ldir / b / "metrics.json")["history"][0]["test_loss"]
             for b in ("ticket", "negated_ticket")]
    assert first[0] != first[1]
    # The inverted source trained on inverted images: its dense run differs from labels'.
    gen = {s["source"]: s for s in results["stages"] if s["level"] == 0}
    assert gen["inverted_labels:mnist"]["train_flops"] == gen["labels:mnist"]["train_flops"]
    dense = [checkpoints.read_json(tmp_path / "run" / f"source_{s}" / "replicate_0" / "level_00"
                                   / b / "metrics.json")["summary"]["test_loss"]
             for s, b in (("labels", "ticket"), ("inverted", "generation"))]
    assert dense[0] != dense[1]
    # The plan priced the new branch like any control.
    planned = {str(s.key): s.steps for s in exp.plan}
    assert planned["labels/rep0/level1/negated_ticket"] == rows[
        ("labels", 1, "negated_ticket")]["train_steps"]


@pytest.fixture
def registered_model_criterion_action():
    from jaxtickets.models import register_model, unregister_model
    from jaxtickets.models.lenet import LeNet
    from jaxtickets.sparsity import actions, criteria

    register_model("lenet500_300", lambda num_classes, dropout:
                   LeNet(num_classes, (500, 300), dropout))
    criteria.register("small_movement", lambda w_init, w_final: -np.abs(w_final - w_init))
    actions.register_mask1("halved", lambda kept, fresh, sigma, rng: kept / 2)
    yield
    unregister_model("lenet500_300")
    criteria.unregister("small_movement")
    actions.unregister_mask1("halved")


def test_a_registered_model_criterion_and_mask1_action_run(registered_model_criterion_action,
                                                           tmp_path):
    """docs/extending.md's model, criterion and action, in one IMP trajectory: the model
    has 500 x 300 hidden units, the mask keeps the weights that moved least, and the
    level-1 run starts from half the rewind values."""
    config = smoke_config(pruning__levels=1, train__duration="30st",
                          train__eval_every="30st", train__checkpoint_every="30st",
                          runtime__plot=False, model__name="lenet500_300",
                          pruning__criterion="small_movement",
                          pruning__mask1_action="halved")
    exp = Experiment(config, tmp_path / "run")
    rows = exp.run()["rows"]
    assert rows[0]["prunable_weights"] == 784 * 500 + 500 * 300 + 300 * 10
    rep = tmp_path / "run" / "replicate_0"
    like = exp.init_weights(exp.evaluation, exp.key(0, 1))
    from jaxtickets.sparsity.masks import init_mask

    mask = checkpoints.load_tree(rep / "level_01" / "mask", init_mask(like["params"],
                                                                      exp.policy))
    theta0 = checkpoints.load_tree(rep / "theta_0", like)["params"]
    final = checkpoints.load_tree(rep / "level_00" / "ticket" / "final", like)["params"]
    moved = np.abs(final["hidden_0"]["kernel"] - theta0["hidden_0"]["kernel"])
    kept = np.asarray(mask["hidden_0"]["kernel"], bool)
    assert moved[kept].max() <= moved[~kept].min()  # the smallest movements stayed
    start = exp._start_weights(exp.sources[0], 1, {"params": theta0, "batch_stats": {}},
                               None, mask, {"params": theta0, "batch_stats": {}}, 0)
    np.testing.assert_array_equal(start["params"]["hidden_0"]["kernel"][kept],
                                  theta0["hidden_0"]["kernel"][kept] / 2)


def test_registered_names_are_unique(registered):
    with pytest.raises(ValueError, match="negated_ticket"):
        branches.register(NegatedTicket())
    with pytest.raises(ValueError, match="inverted_labels"):
        tasks.register(tasks.TaskKind("inverted_labels", lambda r: InvertedLabelsTask()))


def test_inverted_inputs_are_the_images_inverted():
    task, spec = InvertedLabelsTask(), _Spec()
    raw = jnp.asarray(np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3))
    x, _ = task.eval_inputs(raw, jnp.zeros(1, jnp.int32), spec)
    np.testing.assert_allclose(np.asarray(x), (255.0 - np.asarray(raw)) / 255.0)


@dataclasses.dataclass(frozen=True)
class _Spec:
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
