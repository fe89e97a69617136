"""Settings that depend on the backend or the host are chosen where the run runs.

The backend is faked (a mesh whose devices claim another platform), so the GPU and TPU
choices are checked on CPU: CPU-only XLA options never reach an accelerator, convolutional
models take one step per call only on CPU, reader threads follow the host's cores. The
train step donates its state, and the loop reads the device's results once per stop
(evaluation or checkpoint), not once per call, so an accelerator is never left waiting
for the host between calls.
"""

from __future__ import annotations

import types

import jax
import numpy as np
import pytest

from conftest import load_config, random_cifar_setup, smoke_config
from jaxtickets import host
from jaxtickets.experiment.driver import run_experiment
from jaxtickets.training import backend_defaults, xla_cpu
from jaxtickets.training.backend_defaults import AUTO

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def fake_mesh(platform: str):
    """Just enough of a Mesh for the platform checks: devices that report `platform`."""
    return types.SimpleNamespace(devices=np.array([types.SimpleNamespace(platform=platform)]))


@pytest.mark.parametrize("platform, convolutional, expected", [
    ("cpu", True, backend_defaults.CPU_CONV_STEPS_PER_CALL),
    ("cpu", False, backend_defaults.STEPS_PER_CALL),
    ("gpu", True, backend_defaults.STEPS_PER_CALL),
    ("tpu", True, backend_defaults.STEPS_PER_CALL),
])
def test_auto_steps_per_call_by_backend_and_model(platform, convolutional, expected):
    assert backend_defaults.steps_per_call(AUTO, platform, convolutional) == expected
    assert backend_defaults.steps_per_call(7, platform, convolutional) == 7  # as asked


def test_cpu_convolution_options_never_reach_an_accelerator():
    assert xla_cpu.compiler_options(fake_mesh("cpu"), "eigen") != {}
    for platform in ("gpu", "tpu"):
        assert xla_cpu.compiler_options(fake_mesh(platform), "eigen") == {}


def test_reader_threads_follow_the_host(monkeypatch):
    monkeypatch.setattr(host.os, "sched_getaffinity", lambda _: set(range(12)), raising=False)
    assert host.host_cores() == 12
    assert backend_defaults.reader_threads(AUTO) == 12
    assert backend_defaults.reader_threads(3) == 3
    assert backend_defaults.reader_threads(AUTO, cores=0) == 1


def _conv2_setup(monkeypatch, platform: str):
    """The driver's evaluation Setup of configs/cifar10_conv.py:conv2 on random images,
    as if the devices were `platform`'s."""
    monkeypatch.setattr(backend_defaults, "platform", lambda mesh: platform)
    return random_cifar_setup(load_config("cifar10_conv", "conv2,smoke"), 120, 60)


@pytest.mark.parametrize("platform, expected", [("cpu", 1), ("gpu", 100), ("tpu", 100)])
def test_driver_resolves_steps_per_call_for_its_backend(monkeypatch, platform, expected):
    """Conv-2's config leaves runtime.steps_per_call at auto; the Setup compiles the
    chunk length of the backend it runs on."""
    assert load_config("cifar10_conv", "conv2").runtime.steps_per_call == AUTO
    assert _conv2_setup(monkeypatch, platform).steps.steps_per_call == expected


def test_no_shipped_config_pins_a_cpu_choice():
    """Runtime keys whose best value depends on the backend stay at auto in the configs."""
    import pathlib

    for path in sorted(pathlib.Path(__file__).parents[1].glob("configs/*.py")):
        text = path.read_text()
        for key in ("runtime.steps_per_call", "runtime.reader_threads"):
            assert key not in text, f"{path.name} sets {key}"


def test_train_step_donates_its_state():
    from bench.masked_step import step_variants

    run = step_variants("lenet300_100", 12, 2, 1)["masked"]
    before = run.holder["state"]
    run()
    leaves = jax.tree_util.tree_leaves(before)
    assert leaves and all(leaf.is_deleted() for leaf in leaves
                          if isinstance(leaf, jax.Array))


def test_loop_reads_results_once_per_stop(monkeypatch, tmp_path):
    """One step per call, evaluation every 100 steps: the 100 calls' metrics come back in
    one transfer at each evaluation, never one call at a time."""
    fetched = []
    real = jax.device_get

    def counting(tree):
        if isinstance(tree, list) and tree and isinstance(tree[0], dict) and "losses" in tree[0]:
            fetched.append(len(tree))
        return real(tree)

    monkeypatch.setattr(jax, "device_get", counting)
    config = smoke_config(runtime__steps_per_call=1, pruning__levels=0, runtime__plot=False)
    run_experiment(config, tmp_path / "run")
    assert fetched == [100, 100, 100]  # 300 steps, evaluated at 100, 200 and 300
