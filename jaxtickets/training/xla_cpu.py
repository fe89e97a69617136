"""Which library runs XLA:CPU's convolutions, chosen per compiled step.

jaxlib 0.10 hands every float32 convolution to YNNPACK. On this project's 2-core CPU its
kernel-gradient convolutions take about 1.5x as long as XLA's own Eigen ones in Conv-4's
train step (184 against 123 ms; `python -m bench.step_profile`), while ResNet-20 trains
faster with YNNPACK. So it is a runtime option rather than a fixed flag: 'ynnpack' passes
nothing (XLA's default program, bit for bit), 'eigen' leaves YNNPACK its dots and
reductions and gives the convolutions back to Eigen. Accelerators ignore it.
"""

from __future__ import annotations

from jax.sharding import Mesh

from jaxtickets.errors import ConfigError

CPU_CONVOLUTIONS = ("ynnpack", "eigen")
# jaxlib 0.10's default YNNPACK fusions are these two plus INDIVIDUAL_CONVOLUTION.
_YNN_FUSIONS_WITHOUT_CONVOLUTIONS = ("LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,"
                                     "LIBRARY_FUSION_TYPE_REDUCE")


def check_cpu_convolutions(name: str, key: str = "runtime.cpu_convolutions") -> None:
    if name not in CPU_CONVOLUTIONS:
        raise ConfigError(f"{key}: must be one of {CPU_CONVOLUTIONS}, got {name!r}")


def compiler_options(mesh: Mesh, cpu_convolutions: str) -> dict:
    """jax.jit's `compiler_options` for the steps compiled on `mesh`."""
    check_cpu_convolutions(cpu_convolutions)
    if cpu_convolutions == "ynnpack" or mesh.devices.flat[0].platform != "cpu":
        return {}
    return {"xla_cpu_experimental_ynn_fusion_type": _YNN_FUSIONS_WITHOUT_CONVOLUTIONS}
