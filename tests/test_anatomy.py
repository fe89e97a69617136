"""Ticket anatomy (P2 App. F) on hand-made trees, run artifacts, and the CLI on a run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jaxtickets.analysis import anatomy
from jaxtickets.analysis.artifacts import RunArtifacts
from jaxtickets.checkpoints import CheckpointError

HAND_MASK = np.array([[1, 0, 1],
                      [1, 1, 0],
                      [0, 0, 0],
                      [1, 1, 1]], dtype=bool)  # [in=4, out=3]


def test_connectivity_fractions_exact_on_hand_made_mask():
    conn = anatomy.unit_connectivity(HAND_MASK)
    np.testing.assert_array_equal(conn["incoming"], [3 / 4, 2 / 4, 2 / 4])   # per output unit
    np.testing.assert_array_equal(conn["outgoing"], [2 / 3, 2 / 3, 0, 1])    # per input unit

    rng = np.random.default_rng(0)
    conv = rng.random((3, 3, 2, 4)) < 0.4  # [kh, kw, in, out]
    c = anatomy.unit_connectivity(conv)
    np.testing.assert_array_equal(c["incoming"], [conv[..., o].sum() / 18 for o in range(4)])
    np.testing.assert_array_equal(c["outgoing"], [conv[:, :, i, :].sum() / 36 for i in range(2)])

    tree = anatomy.connectivity({"hidden_0": {"kernel": HAND_MASK, "bias": None}})
    assert list(tree) == ["hidden_0/kernel"]


def _hand_tree():
    theta0 = {"hidden_0": {"kernel": np.arange(1, 13, dtype=np.float32).reshape(4, 3) / 10,
                           "bias": np.zeros(3, np.float32)},
              "output": {"kernel": np.array([[-0.5, 0.25]], np.float32),
                         "bias": np.zeros(2, np.float32)}}
    theta0["hidden_0"]["kernel"][~HAND_MASK] *= -1  # pruned weights negative, kept positive
    mask = {"hidden_0": {"kernel": HAND_MASK, "bias": None},
            "output": {"kernel": np.array([[True, False]]), "bias": None}}
    return theta0, mask


def test_surviving_init_histogram_uses_exactly_the_kept_weights():
    theta0, mask = _hand_tree()
    kept = anatomy.surviving_init(theta0, mask)
    w = theta0["hidden_0"]["kernel"]
    np.testing.assert_array_equal(kept["hidden_0/kernel"], w[HAND_MASK])
    np.testing.assert_array_equal(anatomy.pruned_init(theta0, mask)["hidden_0/kernel"],
                                  w[~HAND_MASK])
    np.testing.assert_array_equal(kept["output/kernel"], [-0.5])

    hists = anatomy.init_histograms(theta0, mask, bins=24)
    density, edges = hists["hidden_0/kernel"]
    assert edges[0] == pytest.approx(-1.2) and edges[-1] == pytest.approx(1.2)   # +-max|theta_0| of the layer
    widths = np.diff(edges)
    assert np.sum(density * widths) == pytest.approx(1.0)           # area 1
    counts = np.rint(density * widths * HAND_MASK.sum()).astype(int)
    np.testing.assert_array_equal(counts, np.histogram(w[HAND_MASK], edges)[0])
    assert counts.sum() == 7 and counts[edges[1:] <= 0].sum() == 0  # no pruned (negative) value


def test_movement_split_equals_direct_numpy():
    rng = np.random.default_rng(1)
    wi = {"hidden_0": {"kernel": rng.normal(size=(4, 3)).astype(np.float32),
                       "bias": np.zeros(3, np.float32)}}
    wf = {"hidden_0": {"kernel": rng.normal(size=(4, 3)).astype(np.float32),
                       "bias": np.ones(3, np.float32)}}
    mask = {"hidden_0": {"kernel": HAND_MASK, "bias": None}}
    mv = anatomy.movement(wi, wf, mask)["hidden_0/kernel"]
    a = wi["hidden_0"]["kernel"].astype(np.float64)
    b = wf["hidden_0"]["kernel"].astype(np.float64)
    np.testing.assert_array_equal(mv["abs_in"], np.abs(b - a)[HAND_MASK])
    np.testing.assert_array_equal(mv["abs_out"], np.abs(b - a)[~HAND_MASK])
    np.testing.assert_array_equal(mv["growth_in"], (np.abs(b) - np.abs(a))[HAND_MASK])
    np.testing.assert_array_equal(mv["growth_out"], (np.abs(b) - np.abs(a))[~HAND_MASK])

    s = anatomy.level_summary(wi, wf, mask)["layers"]["hidden_0/kernel"]
    assert (s["kept"], s["total"]) == (7, 12)
    assert s["mean_abs_init_kept"] == pytest.approx(np.abs(a[HAND_MASK]).mean())
    assert s["mean_abs_init_pruned"] == pytest.approx(np.abs(a[~HAND_MASK]).mean())
    assert s["mean_abs_movement_out"] == pytest.approx(np.abs(b - a)[~HAND_MASK].mean())
    assert s["incoming"]["mean"] == pytest.approx(HAND_MASK.mean(axis=0).mean())
    assert s["outgoing"]["units_with_none_kept"] == 1


def test_run_artifacts_load_and_fail_clearly(smoke_run, tmp_path):
    workdir, results = smoke_run
    art = RunArtifacts.open(workdir)
    assert art.levels(0) == [0, 1, 2]
    assert art.branches(0, 1) == ["random_reinit", "ticket"]
    theta0, rewind = art.theta_0(0), art.rewind(0)
    np.testing.assert_array_equal(theta0["params"]["hidden_0"]["kernel"],
                                  rewind["params"]["hidden_0"]["kernel"])  # rewind '0st'
    row = next(r for r in results["rows"] if r["level"] == 2 and r["branch"] == "ticket")
    mask = art.mask(0, 2)
    assert sum(int(np.count_nonzero(m)) for m in [mask["hidden_0"]["kernel"],
               mask["hidden_1"]["kernel"], mask["output"]["kernel"]]) == row["remaining_weights"]
    assert mask["hidden_0"]["bias"] is None
    assert art.mask(0, 0)["output"]["kernel"].all()

    with pytest.raises(CheckpointError, match="level_05"):
        art.final(0, 5)
    with pytest.raises(CheckpointError, match="replicate_3"):
        art.theta_0(3)
    with pytest.raises(FileNotFoundError, match="config.json"):
        RunArtifacts.open(tmp_path / "nowhere")
    # A workdir whose config names another model: the stored shapes do not fit.
    other = tmp_path / "other"
    shutil.copytree(workdir / "replicate_0" / "theta_0", other / "replicate_0" / "theta_0")
    config = json.loads((workdir / "config.json").read_text())
    config["config"]["model"]["name"] = "conv2"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="theta_0"):
        RunArtifacts.open(other).theta_0(0)


def test_cli_on_smoke_run(smoke_run, tmp_path):
    workdir, results = smoke_run
    out = tmp_path / "anatomy"
    assert anatomy.main(["--workdir", str(workdir), "--levels", "1,2", "--out", str(out)]) == 0
    for name in (anatomy.INIT_PLOT, anatomy.MOVEMENT_PLOT, anatomy.CONNECTIVITY_PLOT):
        assert (out / name).stat().st_size > 5000, name
    report = json.loads((out / anatomy.JSON_FILE).read_text())
    assert sorted(report["levels"]) == ["1", "2"]
    for level in (1, 2):
        row = next(r for r in results["rows"] if r["level"] == level and r["branch"] == "ticket")
        entry = report["levels"][str(level)]
        assert entry["kept"] == row["remaining_weights"]
        hidden = entry["layers"]["hidden_0/kernel"]
        assert hidden["total"] == 784 * 300
        assert hidden["incoming"]["units"] == 300 and hidden["outgoing"]["units"] == 784
        assert hidden["mean_abs_movement_out"] is not None

    dense = anatomy.analyze(workdir, [0])["levels"]["0"]["layers"]["hidden_1/kernel"]
    assert dense["kept"] == dense["total"] and dense["mean_abs_movement_out"] is None
