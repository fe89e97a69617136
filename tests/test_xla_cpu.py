"""runtime.cpu_convolutions: XLA:CPU's convolutions in YNNPACK (default) or Eigen.

The choice must reach the compiled steps (the HLO shows which library runs each
convolution), leave models without convolutions bit for bit alone, and change nothing
but float rounding in a conv net: same losses to float tolerance, pruned weights zero.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bench.masked_step import step_variants
from bench.step_profile import compiled_hlo, parse_hlo, with_fused_body
from jaxtickets import parallel
from jaxtickets.errors import ConfigError
from jaxtickets.training import xla_cpu

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def _ynn_convolutions(hlo: str) -> int:
    """YNNPACK fusions that hold a convolution (in their fused computations)."""
    lines, bodies = parse_hlo(hlo)
    return sum(any(" convolution(" in c for c in with_fused_body(line, bodies)[1:])
               for line in lines.values() if '"__ynn_fusion"' in line)


def test_options_are_empty_by_default_and_checked():
    mesh = parallel.make_mesh(1)
    assert xla_cpu.compiler_options(mesh, "ynnpack") == {}
    assert list(xla_cpu.compiler_options(mesh, "eigen")) == [
        "xla_cpu_experimental_ynn_fusion_type"]
    with pytest.raises(ConfigError, match="runtime.cpu_convolutions.*'mkl'"):
        xla_cpu.compiler_options(mesh, "mkl")


def test_eigen_takes_every_convolution_away_from_ynnpack():
    """Conv-2's step: 5 convolutions (2 forward, 1 input and 2 kernel gradients) run
    in YNNPACK by default and none with 'eigen'."""
    runs = {lib: step_variants("conv2", 60, 1, 2, examples=128, cpu_convolutions=lib)
            ["masked"] for lib in xla_cpu.CPU_CONVOLUTIONS}
    assert _ynn_convolutions(compiled_hlo(runs["ynnpack"])) == 5
    assert _ynn_convolutions(compiled_hlo(runs["eigen"])) == 0
    states = {}
    for lib, run in runs.items():
        run()
        states[lib] = run.holder["state"]
    for lib, state in states.items():  # pruned weights exactly zero either way
        mask = jax.tree_util.tree_leaves(state.mask, is_leaf=lambda m: m is None)
        pruned = [(p, m) for p, m in zip(jax.tree_util.tree_leaves(state.params), mask)
                  if m is not None]
        assert len(pruned) == 5  # two convs, three dense kernels
        for p, m in pruned:
            assert np.all(np.asarray(p)[~np.asarray(m, bool)] == 0), lib
    for a, b in zip(jax.tree_util.tree_leaves(states["ynnpack"].params),
                    jax.tree_util.tree_leaves(states["eigen"].params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_lenet_compiles_the_same_program_either_way():
    """No convolutions: 'eigen' must not touch LeNet's dots, so not a bit changes."""
    texts = {lib: compiled_hlo(step_variants("lenet300_100", 60, 10, 1, examples=256,
                                               cpu_convolutions=lib)["masked"])
             for lib in xla_cpu.CPU_CONVOLUTIONS}
    strip = [line for line in texts["eigen"].splitlines() if "HloModule" not in line]
    assert strip == [line for line in texts["ynnpack"].splitlines() if "HloModule" not in line]


def test_the_config_key_reaches_every_compiled_step(monkeypatch):
    """runtime.cpu_convolutions travels config -> Setup -> make_steps."""
    from conftest import smoke_config
    from jaxtickets.data.datasets import load_splits
    from jaxtickets.experiment import setup as setup_lib
    from jaxtickets.experiment.sources import evaluation_setup

    seen = []
    real = setup_lib.make_steps

    def spy(*args, **kwargs):
        seen.append(kwargs["cpu_convolutions"])
        return real(*args, **kwargs)

    monkeypatch.setattr(setup_lib, "make_steps", spy)
    config = smoke_config(runtime__cpu_convolutions="eigen")
    d = config.data
    splits = load_splits(d.dataset, d.source, d.data_dir, d.validation_size, d.train_size,
                         d.test_size)
    setup = evaluation_setup(config, splits)
    setup.with_model(setup.model)  # P3's small-dense network compiles its own steps
    assert seen == ["eigen", "eigen"]
