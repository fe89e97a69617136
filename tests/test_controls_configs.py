"""The shipped control configs run: P4's MNIST configs in their smoke form (default), the
CIFAR-10 and P3 configs on real CIFAR-10 images (slow), and the P4 reproductions on the
full MNIST (slow, the issue's must-show numbers)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from conftest import SHARED_DATA, load_config, shared_to_tfds
from jaxtickets.analysis import p3_conditions, supermask_table
from jaxtickets.experiment.driver import run_experiment


def _by(rows, *keys):
    out = collections.defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def test_mnist_supermask_smoke_gives_every_table_column(tmp_path):
    results = run_experiment(load_config("mnist_supermask", "smoke"), tmp_path / "run")
    cells = supermask_table.best_cells(results["rows"])
    assert set(cells) == {title for title, _ in supermask_table.COLUMNS}
    rows = _by(results["rows"], "source_name", "level", "branch")
    # Level 0 is the untrained, unpruned network: P4's untrained baseline is near chance.
    assert rows[("large_final", 0, "supermask_init")][0]["test_accuracy"] < 0.3
    # The same masks, evaluated without training, on both trajectories and every level.
    for source in ("large_final", "large_final_same_sign"):
        for level in (1, 2):
            init, const = (rows[(source, level, b)][0]
                           for b in ("supermask_init", "supermask_constant"))
            assert init["train_steps"] == const["train_steps"] == 0
            assert init["remaining_weights"] == const["remaining_weights"]
            assert (source, level, "ticket") not in rows  # P4's sweep trains no pruned net
        assert rows[(source, 0, "ticket")][0]["train_steps"] == 200  # the trained baseline


def test_mnist_criteria_smoke_runs_every_trajectory(tmp_path):
    config = load_config("mnist_criteria", "smoke")
    results = run_experiment(config, tmp_path / "run")
    tickets = _by(results["rows"], "source_name", "branch")
    for name in config.generation.keys():
        levels = sorted(r["level"] for r in tickets[(name, "ticket")])
        assert levels == [0, 1, 2], name
    # Every trajectory prunes to the same per-level densities.
    densities = {(r["level"], round(r["density"], 9)) for r in results["rows"]
                 if r["branch"] == "ticket"}
    assert len(densities) == 3
    assert "frozen_weights" in tickets[("m0_hybrid", "ticket")][-1]


# ---- slow: the CIFAR-10 configs on real images ------------------------------------------
def _cifar_subset(tmp_path, n_train=300, n_test=100):
    return shared_to_tfds("cifar10", tmp_path / "tfds", n_train, n_test)


needs_cifar = pytest.mark.skipif(not (SHARED_DATA / "cifar10_jpeg.npz").exists(),
                                 reason="../shared/data not present")


@pytest.mark.slow
@needs_cifar
def test_cifar10_conv_controls_smoke_on_real_images(tmp_path):
    config = load_config("cifar10_conv_controls", "conv4,smoke")
    config.data.data_dir = _cifar_subset(tmp_path, 2500, 500)
    results = run_experiment(config, tmp_path / "run")
    branches = {r["branch"] for r in results["rows"]}
    assert {"ticket", "supermask_init", "supermask_constant", "learned_supermask_1"} <= branches
    # 40 Adam steps on 2,000 images of all 10 classes. Seeds 0-2: every trained row
    # 0.27-0.40 (chance 0.1; a one-class subset gives 1.0), so in (0.2, 0.6).
    trained = [r["test_accuracy"] for r in results["rows"] if r["branch"] == "ticket"]
    assert len(trained) == 8 and all(0.2 < a < 0.6 for a in trained), trained


@pytest.mark.slow
@needs_cifar
def test_p3_configs_smoke_and_conditions_checker(tmp_path):
    """LT and WR workdirs of configs/p3_resnet20.py (ResNet-20, IMP and OMP, RR and
    SDT controls) on real CIFAR-10 images, then the conditions checker over both."""
    data_dir = _cifar_subset(tmp_path, 1500, 500)
    runs = []
    for arg in ("0.1,smoke", "0.1,wr,smoke"):
        config = load_config("p3_resnet20", arg)
        config.data.data_dir = data_dir
        workdir = tmp_path / arg.replace(",", "_")
        results = run_experiment(config, workdir)
        rows = _by(results["rows"], "source_name", "level", "branch")
        for source in ("imp", "omp"):
            for branch in ("ticket", "random_reinit", "small_dense"):
                assert (source, 2, branch) in rows, (arg, source, branch)
            sdt = rows[(source, 2, "small_dense")][0]
            assert sdt["remaining_weights"] == pytest.approx(
                sdt["small_dense_target_weights"], rel=0.01)
        runs.append(p3_conditions.load_run(workdir))
    assert runs[1]["results"]["sources"]["imp"]["rewind"]["step"] > 0
    checked = p3_conditions.check_conditions(runs)
    assert {"imp", "omp"} <= set(checked["sources"])
    assert checked["sources"]["imp"]["levels"][0]["lth"][0]["tests"]["beats_rr"][
        "holds"] is not None


# ---- slow: the P4 reproductions on the full MNIST (README, P4 section) --------------------
needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist.npz").exists(),
                                 reason="../shared/data not present")


def _full_mnist(tmp_path):
    return shared_to_tfds("mnist", tmp_path / "tfds")


@pytest.mark.slow
@needs_mnist
def test_mnist_supermask_reproduces_p4_table_1(tmp_path):
    """P4 Table 1's MNIST FC row as P4's code runs it (one dense network per replicate,
    50,000 steps, one-shot masks at 24 levels, [0, 1] inputs, 5 replicates; ~32 min on
    one core): every cell within 3 points of 79.3, 86.3, 95.3, 97.7 as the mean of each
    replicate's best level, and the signed constant above the initial weights (P4's
    finding). Measured (README): 77.07, 85.91, 93.70, 98.17."""
    config = load_config("mnist_supermask")
    config.data.data_dir = _full_mnist(tmp_path)
    cells = supermask_table.best_cells(run_experiment(config, tmp_path / "run")["rows"])
    best = {title: 100 * cells[title]["replicate_best"] for title in cells}
    for title, target in (("mask x initial weights", 79.3), ("mask x signed constant", 86.3),
                          ("learned mask x initial weights", 95.3), ("trained network", 97.7)):
        assert abs(best[title] - target) <= 3.0, (title, cells[title])
    assert best["mask x signed constant"] > best["mask x initial weights"] + 3.0


@pytest.mark.slow
@needs_mnist
def test_mnist_criteria_reproduces_p4_orderings(tmp_path):
    """P4 Figs. 3-5's orderings at 4.4% remaining (level 7), replicate means (~60 min).
    Accuracies are fractions: 0.01 is one point."""
    config = load_config("mnist_criteria")
    config.data.data_dir = _full_mnist(tmp_path)
    rows = run_experiment(config, tmp_path / "run")["rows"]
    acc = {name: float(np.mean([r["early_stop_test_accuracy"] for r in members]))
           for (name, level, branch), members in
           _by(rows, "source_name", "level", "branch").items()
           if level == 7 and branch == "ticket"}
    assert acc["large_final"] > acc["random"] and acc["magnitude_increase"] > acc["random"]
    assert acc["small_final"] < acc["random"] and acc["small_init"] < acc["random"]
    # README's run (2 replicates, s.e. 0.03-0.10 points): the signed actions 0.06-0.07
    # points below rewind (98.12), their sign-free versions 1.9 points below; hybrid 0.01
    # above zero. So: signed within 1 point of rewind, sign-free more than 1 point below;
    # hybrid at most 0.2 points below zero (~3 s.e. of the difference, 0.06).
    for action in ("reshuffle", "constant"):
        assert acc[f"m1_{action}_sign"] > acc[f"m1_{action}"]
        assert acc[f"m1_{action}_sign"] >= acc["large_final"] - 0.01  # close to rewind
        assert acc[f"m1_{action}"] < acc["large_final"] - 0.01  # the sign carries it
    assert acc["m0_hybrid"] >= acc["large_final"] - 0.002  # at least as good as zero


@pytest.mark.slow
@needs_mnist
def test_mnist_p2_controls_reproduce_p2_orderings(tmp_path):
    """P2's controls at 10.7% remaining (level 10), replicate means (~25 min): the ticket
    beats random reinit, D_m reinit, the random sparse network and pruning at iteration
    0; noise of 3 sigma still beats random reinit (App. F.7); IMP beats one-shot."""
    config = load_config("mnist_p2_controls")
    config.data.data_dir = _full_mnist(tmp_path)
    rows = run_experiment(config, tmp_path / "run")["rows"]
    acc = {(name, branch): float(np.mean([r["early_stop_test_accuracy"] for r in members]))
           for (name, level, branch), members in
           _by(rows, "source_name", "level", "branch").items() if level == 10}
    ticket = acc[("imp", "ticket")]
    for branch in ("random_reinit", "reinit_dm", "random_ticket_local", "prune_at_init"):
        assert ticket > acc[("imp", branch)], branch
    assert acc[("imp", "noise_3")] > acc[("imp", "random_reinit")]
    assert ticket > acc[("one_shot", "ticket")]
