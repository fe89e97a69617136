"""Natural sparsity (P0 Sec. 4.5): exact counts on a hand-made tree, and the CLI on a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxtickets.analysis import natural_sparsity as ns

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

EPS = np.float32(ns.EPS32)


def _tree():
    f32 = lambda *v: np.array(v, dtype=np.float32)  # noqa: E731
    below_eps = np.nextafter(EPS, np.float32(0))
    return {
        # 9 entries; below eps: 0, eps/2, -eps/2, 1e-8, nextafter(eps, 0) -> 5.
        # Not below: eps and -eps (exactly at the threshold), -1e-3, 0.5.
        "hidden_0": {"kernel": f32(0.0, EPS, -EPS, EPS / 2, -EPS / 2, 1e-8, -1e-3, 0.5,
                                   below_eps).reshape(3, 3),
                     "bias": f32(0.0, 1e-9, 0.3)},              # 2 below
        # 8 entries; below: 0, -0, 1e-7, 1e-30 -> 4 (2e-7 is above eps).
        "conv_0": {"kernel": f32(0.0, -0.0, 1e-7, -2e-7, 1.0, -1.0, 1e-30, 0.1
                                 ).reshape(2, 2, 1, 2),
                   "bias": f32(0.0, 2e-7)},                     # 1 below
        # 'subnet' contains 'bn' but is not a normalization layer: counted (1 of 2).
        "subnet": {"kernel": f32(1.0, 0.0).reshape(1, 2)},
        # Normalization parameters: all zeros, never counted.
        "BatchNorm_0": {"scale": np.zeros(4, np.float32), "bias": np.zeros(4, np.float32)},
        "bn1": {"scale": np.zeros(2, np.float32), "bias": np.zeros(2, np.float32)},
        "block": {"LayerNorm_0": {"scale": np.zeros(3, np.float32),
                                  "bias": np.zeros(3, np.float32)},
                  "dense": {"kernel": f32(0.0, 3.0).reshape(2, 1)}},  # 1 of 2
        # The last layer: all zeros, excluded by default.
        "output": {"kernel": np.zeros((3, 2), np.float32), "bias": np.zeros(2, np.float32)},
    }


def test_fraction_is_exact_on_a_constructed_tree():
    out = ns.natural_sparsity(_tree())
    assert (out["below"], out["total"]) == (5 + 4 + 1 + 1, 9 + 8 + 2 + 2)
    assert out["fraction"] == 11 / 21
    assert out["layers"]["hidden_0/kernel"] == {"below": 5, "total": 9, "fraction": 5 / 9}
    assert out["layers"]["conv_0/kernel"]["below"] == 4
    assert out["exact_zeros"] == 1 + 2 + 1 + 1  # conv_0 holds 0 and -0
    assert out["excluded"] == {
        "BatchNorm_0/bias": "normalization", "BatchNorm_0/scale": "normalization",
        "bn1/bias": "normalization", "bn1/scale": "normalization",
        "block/LayerNorm_0/bias": "normalization", "block/LayerNorm_0/scale": "normalization",
        "conv_0/bias": "bias", "hidden_0/bias": "bias",
        "output/bias": "output", "output/kernel": "output"}
    assert json.loads(json.dumps(out)) == out  # JSON-ready


def test_flags_biases_output_and_threshold():
    with_bias = ns.natural_sparsity(_tree(), include_biases=True)
    assert (with_bias["below"], with_bias["total"]) == (11 + 2 + 1, 21 + 3 + 2)
    with_output = ns.natural_sparsity(_tree(), exclude_output=False)
    assert (with_output["below"], with_output["total"]) == (11 + 6, 21 + 6)
    both = ns.natural_sparsity(_tree(), exclude_output=False, include_biases=True)
    assert (both["below"], both["total"]) == (14 + 8, 26 + 8)
    # Strict comparison at a custom threshold: -1e-3 itself is not below 1e-3 (float32
    # 1e-3 is 1.00000005e-3 > 1e-3, so pass the stored value to test "exactly at").
    at = float(np.float32(1e-3))
    assert ns.natural_sparsity(_tree(), threshold=at)["layers"]["hidden_0/kernel"]["below"] == 7
    with pytest.raises(ValueError):
        ns.natural_sparsity(_tree(), threshold=0.0)


def test_normalization_and_output_detection():
    assert ns.is_normalization("BatchNorm_0/bias")
    assert ns.is_normalization("block_1/bn2/bias")
    assert ns.is_normalization("stem/conv_bn/kernel")
    assert ns.is_normalization("anything/scale")
    assert ns.is_normalization("GroupNorm_0/bias")
    assert not ns.is_normalization("subnet/kernel")
    assert not ns.is_normalization("hidden_0/bias")
    assert ns.is_output("output/kernel") and not ns.is_output("outputs_x/kernel")


def test_mask_counts_and_sorted_magnitudes():
    tree = _tree()
    mask = {k: {leaf: None for leaf in v} for k, v in tree.items() if k != "block"}
    mask["block"] = {"LayerNorm_0": {"scale": None, "bias": None}, "dense": {"kernel": None}}
    keep = np.ones((3, 3), bool)
    keep[0, 0] = keep[2, 2] = keep[2, 1] = False  # prunes 0, nextafter(eps) and 0.5
    mask["hidden_0"]["kernel"] = keep
    out = ns.natural_sparsity(tree, mask=mask)
    assert out["pruned_by_mask"] == 3
    assert out["below_unpruned"] == 11 - 2
    assert out["fraction_unpruned"] == 9 / 18

    mags = ns.sorted_magnitudes(tree)
    assert mags.size == 21 and np.all(np.diff(mags) >= 0)
    assert np.searchsorted(mags, ns.EPS32, side="left") / mags.size == 11 / 21


def test_cli_on_smoke_run(smoke_run, tmp_path):
    workdir, _ = smoke_run
    out = tmp_path / "ns"
    assert ns.main(["--workdir", str(workdir), "--out", str(out)]) == 0
    report = json.loads((out / ns.JSON_FILE).read_text())
    (run,) = report["runs"]
    assert run["total"] == 784 * 300 + 300 * 100  # kernels, output layer excluded
    assert run["model"] == "lenet300_100"
    # Counted here from the dense run's trained hidden kernels (the output layer excluded).
    from jaxtickets.analysis.artifacts import RunArtifacts

    params = RunArtifacts.open(workdir).final(0, 0, "ticket")["params"]
    kernels = [np.abs(np.asarray(params[layer]["kernel"])) for layer in ("hidden_0", "hidden_1")]
    below = sum(int(np.sum(k < EPS)) for k in kernels)
    assert (run["below"], run["fraction"]) == (below, below / run["total"])
    # A threshold that some trained weights fall under: the count is not trivially 0.
    assert ns.main(["--workdir", str(workdir), "--threshold", "1e-3",
                    "--out", str(tmp_path / "ns_1e-3")]) == 0
    (run,) = json.loads((tmp_path / "ns_1e-3" / ns.JSON_FILE).read_text())["runs"]
    below = sum(int(np.sum(k < np.float32(1e-3))) for k in kernels)
    assert below > 0 and (run["below"], run["fraction"]) == (below, below / run["total"])
    assert (out / ns.PLOT_FILE).stat().st_size > 5000

    # Level 2: the 36% pruned hidden weights are exact zeros; two curves in one plot.
    out2 = tmp_path / "ns2"
    assert ns.main(["--workdir", str(workdir), "--workdir", str(workdir), "--level", "2",
                    "--out", str(out2)]) == 0
    report = json.loads((out2 / ns.JSON_FILE).read_text())
    assert len(report["runs"]) == 2
    run = report["runs"][0]
    assert run["pruned_by_mask"] == round(0.36 * run["total"])
    assert run["below"] == run["pruned_by_mask"] + run["below_unpruned"]
    assert (out2 / ns.PLOT_FILE).stat().st_size > 5000
