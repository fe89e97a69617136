"""OpenLTH's randomly_prune as the random_prune_<strategy>[_at_<start>] family: the
masks' promised counts on real multi-layer masks, the names, and an experiment on
embedded MNIST (rows, stored masks and checkpoints, start steps against the plan, the
identity at rewind equal to the ticket, the start from the trained ticket, lanes'
ordering and a resumption)."""

from __future__ import annotations

import math
import shutil

import jax
import numpy as np
import pytest

from conftest import comparable_rows, smoke_config, with_overrides
from jaxtickets import branches, checkpoints
from jaxtickets.config_schema import validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment import lanes as lanes_lib
from jaxtickets.experiment.driver import Experiment, run_experiment, start_final_correlation
from jaxtickets.experiment.plan import CONTROL
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.sparsity import baselines
from jaxtickets.sparsity.masks import (PrunablePolicy, init_mask, layer_counts,
                                       prunable_leaves, remaining_and_total)
from jaxtickets.sparsity.pruning import prune_global, prune_layerwise

pytestmark = pytest.mark.fast  # about 20 s on 2 cores, most of it the experiments

RANDOM = ("layerwise", "global", "even")


# ---- masks ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conv_masks():
    """conv4_narrow's masks (4 conv and 2 dense layers prunable, the output left out
    by the policy) after 3 levels of layer-wise pruning at very different rates per kind, and after 2
    levels of global pruning."""
    shapes = abstract_variables(create_model("conv4_narrow", 10), (32, 32, 3))["params"]
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(
        lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
    full = init_mask(params, PrunablePolicy(output=False))
    layerwise = full
    for level in range(3):
        layerwise = prune_layerwise(params, layerwise, {"conv": 0.1, "dense": 0.6}, level)
    globally = full
    for level in range(2):
        globally = prune_global(params, globally, 0.5, level)
    return {"layerwise": layerwise, "global": globally}


def _counts(mask):
    return {name: kept for name, (kept, _) in layer_counts(mask).items()}


def _none_leaves(mask):
    flat, _ = jax.tree_util.tree_flatten_with_path(mask, is_leaf=lambda x: x is None)
    return [jax.tree_util.keystr(p) for p, m in flat if m is None]


def _branch_mask(strategy, mask, seed):
    return branches.get(f"random_prune_{strategy}").mask(
        branches.LevelContext(None, mask, None, None, None, 0.0), seed)


@pytest.mark.parametrize("which", ["layerwise", "global"])
def test_layerwise_keeps_every_layer_count_and_global_the_total(conv_masks, which):
    ticket = conv_masks[which]
    local, spread = (_branch_mask(s, ticket, 7) for s in ("layerwise", "global"))
    assert _counts(local) == _counts(ticket)
    assert remaining_and_total(spread) == remaining_and_total(ticket)
    for drawn in (local, spread):
        assert _none_leaves(drawn) == _none_leaves(ticket) != []  # output unpruned
        assert any(not np.array_equal(a, b) for (_, a), (_, b)
                   in zip(prunable_leaves(drawn), prunable_leaves(ticket)))


def test_global_moves_weights_between_layers_of_very_different_densities(conv_masks):
    ticket = conv_masks["layerwise"]
    densities = [kept / total for kept, total in layer_counts(ticket).values()]
    assert max(densities) > 3 * min(densities)
    spread = _branch_mask("global", ticket, 7)
    assert _counts(spread) != _counts(ticket)
    # Uniform over the prunable set: every layer near the overall density.
    overall = remaining_and_total(ticket)[0] / remaining_and_total(ticket)[1]
    for kept, total in layer_counts(spread).values():
        assert abs(kept / total - overall) < 0.1


def _largest_remainder(kept, sizes):
    """The even counts from exact fractions, written independently of baselines.py."""
    from fractions import Fraction

    total = sum(sizes.values())
    quotas = {n: Fraction(kept * s, total) for n, s in sizes.items()}
    counts = {n: math.floor(q) for n, q in quotas.items()}
    extra = kept - sum(counts.values())
    by_remainder = sorted(sizes, key=lambda n: (-(quotas[n] - counts[n]),
                                                list(sizes).index(n)))
    for n in by_remainder[:extra]:
        counts[n] += 1
    return counts


@pytest.mark.parametrize("which", ["layerwise", "global"])
def test_even_gives_every_layer_the_tickets_density_by_largest_remainder(conv_masks, which):
    ticket = conv_masks[which]
    kept, total = remaining_and_total(ticket)
    sizes = {name: size for name, (_, size) in layer_counts(ticket).items()}
    even = _branch_mask("even", ticket, 3)
    counts = _counts(even)
    assert counts == _largest_remainder(kept, sizes) == baselines.even_counts(ticket)
    for name, size in sizes.items():
        assert counts[name] in (math.floor(kept * size / total), math.ceil(kept * size / total))
    assert sum(counts.values()) == kept  # within one per layer of the ticket's: exactly
    assert _none_leaves(even) == _none_leaves(ticket)
    assert counts != _counts(ticket)


def test_even_counts_break_ties_to_the_earlier_layer():
    mask = {"a": {"kernel": np.ones(3, bool)}, "b": {"kernel": np.zeros(3, bool)},
            "c": {"kernel": np.zeros(3, bool)}, "d": {"kernel": np.array([1, 0, 0], bool)}}
    # K = 4 of 12: each layer's quota is exactly 1, no remainders.
    assert baselines.even_counts(mask) == {"a/kernel": 1, "b/kernel": 1, "c/kernel": 1,
                                           "d/kernel": 1}
    mask["d"]["kernel"][1] = True  # K = 5: quotas 1.25 each, the first layer gets the 2
    assert baselines.even_counts(mask) == {"a/kernel": 2, "b/kernel": 1, "c/kernel": 1,
                                           "d/kernel": 1}


def test_identity_is_the_tickets_mask_and_deterministic(conv_masks):
    ticket = conv_masks["layerwise"]
    identity = branches.get("random_prune_identity_at_init")
    assert not identity.random and not identity.draws_mask
    assert identity.mask(branches.LevelContext(None, ticket, None, None, None, 0.0), 5) \
        is ticket


@pytest.mark.parametrize("strategy", RANDOM)
def test_draws_differ_and_a_seed_repeats_its_mask(conv_masks, strategy):
    ticket = conv_masks["layerwise"]
    first, again, other = (_branch_mask(strategy, ticket, s) for s in (11, 11, 12))
    same = lambda a, b: all(np.array_equal(x, y) for (_, x), (_, y)
                            in zip(prunable_leaves(a), prunable_leaves(b)))
    assert same(first, again) and not same(first, other)
    assert branches.get(f"random_prune_{strategy}_at_end").random


def test_start_weights_are_masked_and_read_the_right_weights(tmp_path):
    rng = np.random.default_rng(0)
    like = lambda: {"params": {"hidden": {"kernel": rng.normal(size=(6, 5)).astype(np.float32),
                                          "bias": rng.normal(size=5).astype(np.float32)}},
                    "batch_stats": {}}
    initial, ticket, final = like(), like(), like()
    checkpoints.save_tree(tmp_path / "ticket" / "final", final)
    mask = {"hidden": {"kernel": rng.random((6, 5)) < 0.4, "bias": None}}
    ctx = branches.LevelContext(ticket, mask, initial, None, None, 0.0, tmp_path / "ticket")
    drawn = {"hidden": {"kernel": rng.random((6, 5)) < 0.4, "bias": None}}
    for start, source in (("init", initial), ("rewind", ticket), ("end", final)):
        out = branches.get(f"random_prune_global_at_{start}").weights(ctx, drawn, 0)
        kernel, keep = out["params"]["hidden"]["kernel"], drawn["hidden"]["kernel"]
        assert np.all(kernel[~keep] == 0)
        np.testing.assert_array_equal(kernel[keep], source["params"]["hidden"]["kernel"][keep])
        np.testing.assert_array_equal(out["params"]["hidden"]["bias"],
                                      source["params"]["hidden"]["bias"])
    missing = branches.LevelContext(ticket, mask, initial, None, None, 0.0, tmp_path / "x")
    with pytest.raises(ValueError, match="trained ticket"):
        branches.get("random_prune_identity_at_end").weights(missing, mask, 0)


# ---- names ---------------------------------------------------------------------------
def test_names_parse_into_strategy_and_start():
    for strategy in ("layerwise", "global", "even", "identity"):
        assert branches.get(f"random_prune_{strategy}").start == "rewind"
        for start in ("init", "rewind", "end"):
            branch = branches.get(f"random_prune_{strategy}_at_{start}")
            assert (branch.strategy, branch.start) == (strategy, start)
            assert branch.reads_trained_ticket == (start == "end")
    info = branches.PlanInfo(smoke_config(), 300, 20, 60)
    steps = {start: branches.get(f"random_prune_even_at_{start}").costs(info, 1)[0].steps
             for start in ("init", "rewind", "end")}
    assert steps == {"init": 300, "rewind": 280, "end": 300}


@pytest.mark.parametrize("name", ["random_prune_foo", "random_prune_global_at_midway",
                                  "random_prune_", "random_prune_global_at_",
                                  "random_prune_global_rewind"])
def test_bad_names_are_refused_by_validate_with_the_choices(name):
    config = smoke_config(branches=("ticket", name))
    with pytest.raises(ConfigError) as err:
        validate(config)
    message = str(err.value)
    assert message.startswith("branches: unknown branch")
    for word in ("layerwise", "global", "even", "identity", "init", "rewind", "end"):
        assert word in message


def test_a_start_from_the_trained_ticket_needs_the_ticket():
    config = smoke_config(pruning__schedule="one_shot",
                          branches=("random_prune_global_at_end",))
    with pytest.raises(ConfigError, match="branches: 'random_prune_global_at_end' starts "
                                          "from the level's trained ticket"):
        validate(config)
    validate(with_overrides(config, branches=("random_prune_global_at_init",)))


# ---- an experiment ------------------------------------------------------------------------
E2E = ("ticket", "random_prune_layerwise", "random_prune_global_at_init",
       "random_prune_identity_at_end", "random_prune_identity")
CONTROLS = E2E[1:]


def _config(**overrides):
    settings = dict(pruning__levels=2, pruning__rewind="20st", branches=E2E,
                    train__duration="120st", train__eval_every="60st",
                    train__checkpoint_every="60st", runtime__plot=False)
    return smoke_config(**{**settings, **overrides})


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("random_prune") / "run"
    config = _config()
    exp = Experiment(config, workdir)
    return config, workdir, exp.plan, exp.run()


def _rows(results):
    return {(r["level"], r["branch"]): r for r in results["rows"]}


def _level(workdir, level):
    return workdir / "replicate_0" / f"level_{level:02d}"


def test_every_branch_gives_a_row_at_every_pruned_level(experiment):
    _, _, _, results = experiment
    rows = _rows(results)
    for level in (1, 2):
        for branch in E2E:
            assert (level, branch) in rows, (level, branch)
        assert rows[(level, "random_prune_layerwise")]["density"] == \
            rows[(level, "ticket")]["density"] < 1


def test_start_steps_follow_the_start_and_the_plan(experiment):
    _, _, plan, results = experiment
    rows = _rows(results)
    planned = {(s.key.level, s.key.branch): s.steps for s in plan if s.kind == CONTROL}
    expected = {"random_prune_layerwise": 20, "random_prune_identity": 20,
                "random_prune_global_at_init": 0, "random_prune_identity_at_end": 0}
    for level in (1, 2):
        assert rows[(level, "ticket")]["start_step"] == 20
        for branch, start in expected.items():
            row = rows[(level, branch)]
            assert (row["start_step"], row["train_steps"]) == (start, 120 - start)
            assert planned[(level, branch)] == 120 - start == \
                sum(s["train_steps"] for s in results["stages"]
                    if (s["level"], s["branch"]) == (level, branch))


def test_stored_masks_keep_their_counts_and_pruned_weights_stay_zero(experiment):
    config, workdir, _, _ = experiment
    exp = Experiment(config, workdir)
    weights = exp.init_weights(exp.evaluation, exp.key(0, 1))
    m_like = init_mask(weights["params"], exp.policy)
    for level in (1, 2):
        ticket = checkpoints.load_tree(_level(workdir, level) / "mask", m_like)
        stored = {b: checkpoints.load_tree(_level(workdir, level) / b / "mask", m_like)
                  for b in ("random_prune_layerwise", "random_prune_global_at_init")}
        assert _counts(stored["random_prune_layerwise"]) == _counts(ticket)
        assert remaining_and_total(stored["random_prune_global_at_init"]) == \
            remaining_and_total(ticket)
        assert _counts(stored["random_prune_global_at_init"]) != _counts(ticket)
        for name in ("random_prune_identity", "random_prune_identity_at_end"):
            assert not (_level(workdir, level) / name / "mask").exists()
            stored[name] = ticket
        for name, mask in stored.items():
            final = checkpoints.load_tree(_level(workdir, level) / name / "final", weights)
            for (_, keep), (_, w) in zip(prunable_leaves(mask),
                                         prunable_leaves(_aligned(final["params"], mask))):
                assert np.all(np.asarray(w)[~np.asarray(keep)] == 0), name


def _aligned(params, mask):
    return jax.tree_util.tree_map(lambda p, m: None if m is None else p, params, mask,
                                  is_leaf=lambda x: x is None)


def test_identity_at_rewind_trains_exactly_as_the_ticket(experiment):
    """Same mask, start weights, step, data order and dropout key: the same run."""
    _, _, _, results = experiment
    rows = _rows(results)
    skip = ("branch", "wall_seconds")
    for level in (1, 2):
        ticket, twin = rows[(level, "ticket")], rows[(level, "random_prune_identity")]
        assert {k: v for k, v in ticket.items() if k not in skip} == \
            {k: v for k, v in twin.items() if k not in skip}
    # ... while the start from the trained ticket does not repeat it.
    assert rows[(2, "random_prune_identity_at_end")]["test_loss"] != rows[(2, "ticket")][
        "test_loss"]


def _assert_starts_from_the_trained_ticket(config, workdir, results, levels):
    """The row's R_0.5(start, final) is the one recomputed with the ticket's final
    weights as its start (and not the one from its rewind weights)."""
    exp = Experiment(config, workdir)
    weights = exp.init_weights(exp.evaluation, exp.key(0, 1))
    m_like = init_mask(weights["params"], exp.policy)
    rewind = checkpoints.load_tree(workdir / "replicate_0" / "rewind", weights)
    for level in levels:
        load = lambda name: checkpoints.load_tree(_level(workdir, level) / name, weights)
        mask = checkpoints.load_tree(_level(workdir, level) / "mask", m_like)
        final = load("random_prune_identity_at_end/final")
        row = _rows(results)[(level, "random_prune_identity_at_end")]
        assert row["init_final_correlation"] == start_final_correlation(
            load("ticket/final"), final, mask) != start_final_correlation(rewind, final, mask)


def test_the_start_from_the_trained_ticket_is_the_tickets_final_weights(experiment):
    config, workdir, _, results = experiment
    _assert_starts_from_the_trained_ticket(config, workdir, results, (1, 2))


def test_a_lanes_run_trains_the_start_from_the_trained_ticket_after_the_ticket(tmp_path):
    """runtime.lanes: the ticket and the layer-wise shuffle train as two lanes; the
    start from the trained ticket waits for the next wave and finds it there."""
    config = _config(pruning__levels=1, runtime__lanes="4",
                     branches=("ticket", "random_prune_identity_at_end",
                               "random_prune_layerwise"))
    results = run_experiment(config, tmp_path / "run")
    assert results["compilations"]["train_lanes"] == 1
    assert {r["branch"] for r in results["rows"] if r["level"] == 1} == set(config.branches)
    _assert_starts_from_the_trained_ticket(config, tmp_path / "run", results, (1,))


def test_lanes_run_a_start_from_the_trained_ticket_in_a_later_wave(tmp_path):
    exp = Experiment(_config(num_replicates=2, runtime__lanes="4"), tmp_path / "run")
    queues = lanes_lib.stage_queues(exp.plan)
    wave_of, ran, count = {}, set(), 0
    while any(queues.values()):
        wave = lanes_lib.next_wave(queues, ran)
        wave_of.update({s.key: count for s in wave})
        ran.update(s.key for s in wave)
        count += 1
    for key, wave in wave_of.items():
        if key.branch == "random_prune_identity_at_end":
            ticket = next(k for k in wave_of if (k.replicate, k.level, k.branch) ==
                          (key.replicate, key.level, "ticket"))
            assert wave > wave_of[ticket], key
        elif key.branch in CONTROLS:  # the others stay beside the ticket
            ticket = next(k for k in wave_of if (k.replicate, k.level, k.branch) ==
                          (key.replicate, key.level, "ticket"))
            assert wave == wave_of[ticket], key


def test_a_resumed_run_finds_the_trained_ticket_and_gives_the_same_rows(experiment, tmp_path):
    """As if killed after level 2's ticket finished: its controls are gone, the ticket's
    run is on disk; a new process (a new Experiment) trains them again from it."""
    config, workdir, _, results = experiment
    resumed = tmp_path / "run"
    shutil.copytree(workdir, resumed)
    for name in CONTROLS:
        shutil.rmtree(_level(resumed, 2) / name)
    (resumed / "results.json").unlink()
    assert comparable_rows(run_experiment(config, resumed)) == comparable_rows(results)
