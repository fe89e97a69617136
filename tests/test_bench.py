"""The benchmark scripts run (shortened) so they cannot rot; their numbers are in
BENCHMARKS.md, measured side by side by the full runs, never asserted as times here."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from bench import common, masked_step, prune_scale


def test_interleaved_runs_every_variant_and_reports_medians():
    calls = {"a": 0, "b": 0}

    def bump(name):
        def fn():
            calls[name] += 1
        return fn

    seconds = common.interleaved({"a": bump("a"), "b": bump("b")}, repeats=3, warmup=2)
    assert calls == {"a": 5, "b": 5} and set(seconds) == {"a", "b"}
    assert all(v >= 0 for v in seconds.values())


def test_masked_step_benchmark_prints_a_ratio():
    row = masked_step.measure("lenet300_100", batch=12, steps=4, repeats=1)
    assert row[:2] == ["lenet300_100", 12]
    assert all(math.isfinite(v) and v > 0 for v in row[2:])
    assert row[4] == pytest.approx(row[2] / row[3])


def test_masked_step_variants_train_the_same_model_both_ways():
    """Both variants really step: the masked one keeps its pruned weights at zero."""
    variants = masked_step.step_variants("lenet300_100", batch=12, steps_per_call=2, calls=1)
    assert set(variants) == {"masked", "dense"}
    starts = {k: np.array(fn.holder["state"].params["hidden_0"]["kernel"])
              for k, fn in variants.items()}
    for fn in variants.values():
        fn()
    for name, fn in variants.items():
        state = fn.holder["state"]
        kernel = np.asarray(state.params["hidden_0"]["kernel"])
        assert int(state.step) == 2 and not np.array_equal(kernel, starts[name])
    masked = variants["masked"].holder["state"]
    keep = np.asarray(masked.mask["hidden_0"]["kernel"])
    assert 0.15 < keep.mean() < 0.25
    assert (np.asarray(masked.params["hidden_0"]["kernel"])[~keep] == 0).all()
    assert variants["dense"].holder["state"].mask["hidden_0"]["kernel"] is None


def test_prune_scale_counts_are_exact():
    rows = prune_scale.measure("lenet300_100", repeats=1)
    assert [r[3] for r in rows] == [1, 2]
    first, second = rows
    assert first[5] == first[4] - round(0.2 * first[4])  # kept after = exact count
    assert second[4] == first[5]


def test_torch_reference_does_the_masked_work():
    """The PyTorch loop trains: loss-driven weights move, pruned ones stay exactly 0."""
    import torch

    from bench import lenet_vs_torch

    run = lenet_vs_torch.torch_loop(steps=3)
    before = [k.detach().clone() for k in run.kernels]
    run()
    for k, m, k0 in zip(run.kernels, run.masks, before):
        assert torch.all(k[m == 0] == 0)
        assert not torch.equal(k[m == 1], k0[m == 1])
    assert 0.15 < float(run.masks[0].mean()) < 0.25


def test_lenet_vs_torch_benchmark_prints_a_ratio():
    from bench import lenet_vs_torch

    row = lenet_vs_torch.measure(steps=3, repeats=1)
    assert row[:2] == [60, 3]
    assert all(math.isfinite(v) and v > 0 for v in row[2:])
    assert row[4] == pytest.approx(row[2] / row[3])


def test_lanes_train_like_sequential_runs():
    """The lanes benchmark trains real, independent runs: after the same steps each
    lane matches its sequential twin (same init, mask and batches)."""
    from bench import lanes

    fns = lanes.variants("lenet300_100", n=3, steps=2)
    fns["lanes"]()
    fns["sequential"]()
    stacked = fns["lanes"].holder["state"]
    for r, state in enumerate(fns["sequential"].holder["states"]):
        a = np.asarray(state.params["hidden_0"]["kernel"])
        b = np.asarray(stacked.params["hidden_0"]["kernel"][r])
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert (a[~np.asarray(state.mask["hidden_0"]["kernel"])] == 0).all()
    first, second = (np.asarray(stacked.params["hidden_0"]["kernel"][r]) for r in (0, 1))
    assert not np.allclose(first, second)  # different seeds, different networks
    row = lanes.measure("lenet300_100", 2, 2, 1)
    assert row[:3] == ["lenet300_100", 2, 2] and row[5] == pytest.approx(row[3] / row[4])


def test_input_pipeline_benchmark_delivers_augmented_batches():
    from bench import input_pipeline

    run = input_pipeline.pipeline(calls=2)
    run()
    idx = np.arange(60, dtype=np.int32)
    import jax
    a, labels = run.batch(idx, jax.random.PRNGKey(0))
    b, _ = run.batch(idx, jax.random.PRNGKey(1))
    assert a.shape == (60, 32, 32, 3) and labels.shape == (60,)
    assert not np.array_equal(np.asarray(a), np.asarray(b))  # random crops and flips
    assert abs(float(np.mean(np.asarray(a)))) < 1.0  # normalized, not raw pixels
    row = input_pipeline.measure("conv2", calls=1, repeats=1)
    assert row[4] == pytest.approx(row[2] / row[3])


def test_conv_reference_does_the_masked_work():
    """The PyTorch Conv reference trains its masked kernels and keeps pruned ones at 0;
    the jaxtickets/PyTorch ratio is printed (Conv-2 here, to stay short)."""
    import torch

    from bench import conv4_vs_torch

    run = conv4_vs_torch.torch_loop(steps=1, widths=(64,))
    before = [k.detach().clone() for k in run.kernels]
    run()
    for k, m, k0 in zip(run.kernels, run.masks, before):
        assert torch.all(k[m == 0] == 0)
        assert not torch.equal(k[m == 1], k0[m == 1])
    row = conv4_vs_torch.measure(steps=1, repeats=1, model="conv2")
    assert row[:2] == ["conv2", 60] and len(row) == 7
    assert row[5:] == pytest.approx([row[2] / row[4], row[3] / row[4]])


def test_step_profile_finds_every_convolution_of_the_step():
    """Conv-2's step has 2 forward convolutions, 1 input gradient (the first layer's
    input needs none) and 2 kernel gradients; the profile must file each XLA op under
    its kind, and PyTorch's profile must see its convolutions too."""
    from bench import step_profile

    ms, ops, wall = step_profile.jax_profile("conv2", steps=1)
    kinds = step_profile.KINDS
    assert [ops.get(k, 0) for k in kinds[:3]] == [2, 1, 2]
    assert ops[kinds[3]] >= 3  # the three dense layers' forward dots, at least
    assert all(ms[k] > 0 for k in kinds[:4])
    # Independent ops may run at once on XLA's CPU threads, so the summed op time is
    # bounded by the wall time of every core together, not by one core's.
    assert 0 < sum(ms.values()) <= wall * len(os.sched_getaffinity(0))
    torch_ms, torch_wall = step_profile.torch_profile("conv2", steps=1)
    assert torch_ms[kinds[0]] > 0 and torch_ms[step_profile.BACKWARD] > 0
    rows = step_profile.rows(ms, ops, wall, torch_ms, torch_wall)
    assert [r[0] for r in rows[:6]] == list(kinds) and rows[1][3] == "-"
    assert rows[6][2] == pytest.approx(ms[kinds[1]] + ms[kinds[2]])


def test_mixed_precision_benchmark_times_both_dtypes():
    from bench import mixed_precision

    row = mixed_precision.measure("lenet300_100", image=28, batch=12, steps=2, repeats=1)
    assert row[:3] == ["lenet300_100", 28, 12]
    assert all(math.isfinite(v) and v > 0 for v in row[3:])
    assert row[5] == pytest.approx(row[4] / row[3])


def test_imagenet_pipeline_benchmark_decodes_real_jpegs():
    from bench import imagenet_pipeline

    jpeg = imagenet_pipeline.synthetic_jpegs(1)[0]
    assert jpeg[:2] == b"\xff\xd8"  # a JPEG stream
    row = imagenet_pipeline.measure(images=16, batch=8, threads=1, size=32, repeats=1,
                                    model="lenet300_100")
    assert row[:4] == ["lenet300_100", 32, 8, 1]
    assert all(math.isfinite(v) and v > 0 for v in row[4:])
    assert row[6] == pytest.approx(row[4] / row[5])


def test_p2_protocol_benchmark_fits_and_projects_the_wall_time():
    from bench import p2_protocol

    rows = p2_protocol.measure(short=100, long=200, data_dir="", source="embedded",
                               cadences=("every 100 (P2)",))
    [[name, setup, per_run, per_1k, hours, parallel, floor]] = rows
    assert name == "every 100 (P2)"
    assert all(math.isfinite(v) for v in (setup, per_run, per_1k, hours, parallel))
    costs = {"setup": setup, "per_run": per_run, "per_iteration": per_1k / 1000}
    assert hours == pytest.approx(p2_protocol.projected_seconds(costs, 1) / 3600)
    assert parallel == pytest.approx(p2_protocol.projected_seconds(costs, 2) / 3600)
    assert 0 < floor < 10  # hours: 1.5e15 FLOPs over tens of GFLOP/s per core
    assert p2_protocol.PROTOCOL_RUN_ITERATIONS == 5 * 41 * 50_000


def test_p2_protocol_cost_model_and_flops_by_hand():
    from bench import p2_protocol

    costs = {"setup": 10.0, "per_run": 2.0, "per_iteration": 1e-3}
    # 1 process: all 205 runs; 2 processes: the slower one has 3 replicates (123 runs).
    assert p2_protocol.projected_seconds(costs, 1) == pytest.approx(10 + 205 * (2 + 50))
    assert p2_protocol.projected_seconds(costs, 2) == pytest.approx(10 + 123 * (2 + 50))
    assert p2_protocol.projected_seconds({**costs, "per_run": -1.0}, 1) == pytest.approx(
        10 + 205 * 50)
    forward = 2 * (784 * 300 + 300 * 100 + 100 * 10)
    train = 2 * forward + 2 * (300 * 100 + 100 * 10)  # no input gradient for the images
    runs = 5 * 41
    assert p2_protocol.protocol_flops(100) == pytest.approx(
        runs * 50_000 * 60 * train + runs * 500 * 15_000 * forward)
    assert p2_protocol.protocol_flops(None) == pytest.approx(
        runs * 50_000 * 60 * train + runs * 15_000 * forward)
