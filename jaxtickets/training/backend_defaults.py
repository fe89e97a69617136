"""Runtime settings whose best value depends on the backend or on the host.

A config leaves them at `AUTO` (0) and the run resolves them where it runs, so one config
runs well on a laptop CPU and on a GPU or TPU without edits:

- `runtime.steps_per_call`: XLA:CPU runs convolutions inside a while loop (`lax.scan`)
  about 13x slower than in a plain jitted step (BENCHMARKS.md), so convolutional models
  on CPU take one step per call. Everywhere else a call runs a chunk of steps on the
  device, which saves a Python dispatch per step; on an accelerator that dispatch
  costs more than a small network's whole step.
- `runtime.reader_threads`: the streamed input pipeline decodes JPEGs on the host, so it
  uses every core this process may run on.

XLA:CPU's own compiler options (training/xla_cpu.py) are chosen by the same platform test.
"""

from __future__ import annotations

import flax.linen as nn
import jax
from jax.sharding import Mesh

from jaxtickets.host import host_cores
from jaxtickets.models import abstract_variables

AUTO = 0
STEPS_PER_CALL = 100          # steps per call of the train chunk, where scans are cheap
CPU_CONV_STEPS_PER_CALL = 1   # convolutional models on XLA:CPU


def platform(mesh: Mesh) -> str:
    """'cpu', 'gpu' or 'tpu': where the mesh's devices compute."""
    return mesh.devices.flat[0].platform


def has_convolutions(model: nn.Module, image_shape: tuple[int, ...]) -> bool:
    """Whether any parameter of the model is a 4-D convolution kernel (shapes only)."""
    params = abstract_variables(model, image_shape)["params"]
    return any(len(leaf.shape) == 4 for leaf in jax.tree_util.tree_leaves(params))


def steps_per_call(requested: int, platform_name: str, convolutional: bool) -> int:
    """`requested`, or for AUTO one step per call for conv nets on CPU, else a chunk."""
    if requested != AUTO:
        return requested
    if platform_name == "cpu" and convolutional:
        return CPU_CONV_STEPS_PER_CALL
    return STEPS_PER_CALL


def reader_threads(requested: int, cores: int | None = None) -> int:
    """`requested`, or for AUTO one JPEG-decoding thread per core of this host."""
    if requested != AUTO:
        return requested
    return max(1, cores if cores is not None else host_cores())
