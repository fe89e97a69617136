r"""Lanes against runs one after another (runtime.lanes, jaxtickets/training/lanes.py).

N independent runs (own initialization, 20%-kept mask, batch order and dropout
stream) of one model each take the same steps, either as N lanes of one compiled
program (CompiledSteps.train_lanes, what the driver calls with runtime.lanes > 1) or
one after another with the lone train chunk (runtime.lanes = 1). Both gather their
batches by index from the same data on the device (random uint8 images shaped like
the model's dataset: the speed does not depend on the pixels). Throughput is
run-steps per second; the ratio lanes / sequential > 1 means lanes are faster.

  python -m bench.lanes [--models lenet300_100,conv2] [--lanes 1,4,16,64] \
      [--steps 100] [--repeats 3]
`--steps` is the steps of each run per measured call, in chunks of the backend's
steps per call (training/backend_defaults.py: 1 for convolutional models on CPU).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.common import interleaved, table
from bench.masked_step import DATASET, sparse_mask
from jaxtickets.data.datasets import IMAGE_SHAPES, NORMALIZATION
from jaxtickets.models import create_model
from jaxtickets.parallel import make_mesh
from jaxtickets.training import backend_defaults
from jaxtickets.training.batches import BatchOrder, device_indices, put_split
from jaxtickets.training.lanes import stack
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.state import fresh_state
from jaxtickets.training.steps import InputSpec, make_steps

BATCH, EXAMPLES = 60, 2048


def _states(model, shape, tx, n: int) -> list:
    states = []
    for r in range(n):
        params = model.init(jax.random.PRNGKey(r), jnp.zeros((1,) + shape),
                            train=False)["params"]
        states.append(fresh_state(params, {}, sparse_mask(params, 0.2, seed=r), tx, 0,
                                  jax.random.PRNGKey(100 + r)))
    return states


def variants(model_name: str, n: int, steps: int) -> dict:
    """{'lanes': fn, 'sequential': fn}: each call trains all n runs `steps` steps."""
    dataset = DATASET[model_name]
    shape = IMAGE_SHAPES[dataset]
    model = create_model(model_name, 10)
    tx = build_optimizer("adam", optax.constant_schedule(1.2e-3))
    mesh = make_mesh(BATCH)
    rng = np.random.default_rng(0)
    split = put_split(rng.integers(0, 256, (EXAMPLES,) + shape, dtype=np.uint8),
                      rng.integers(0, 10, EXAMPLES), mesh)
    convolutional = backend_defaults.has_convolutions(model, shape)
    per_call = min(steps, backend_defaults.steps_per_call(
        0, backend_defaults.platform(mesh), convolutional))
    compiled = make_steps(model, tx, InputSpec(*NORMALIZATION[dataset]), mesh, per_call)
    orders = [BatchOrder(EXAMPLES, BATCH, r) for r in range(n)]
    calls = [(start, min(per_call, steps - start)) for start in range(0, steps, per_call)]
    lone_idx = [[device_indices(o.indices(s, c, per_call), mesh, 1) for s, c in calls]
                for o in orders]
    lane_idx = [device_indices(np.stack([o.indices(s, c, per_call) for o in orders]), mesh, 2)
                for s, c in calls]
    sequential = {"states": _states(model, shape, tx, n)}
    stacked = {"state": stack(_states(model, shape, tx, n), mesh)}

    def run_sequential():
        for r in range(n):
            for (_, count), idx in zip(calls, lone_idx[r]):
                sequential["states"][r], out = compiled.train_chunk(
                    sequential["states"][r], split.images, split.labels, idx,
                    np.int32(count))
        jax.block_until_ready(out["losses"])

    def run_lanes():
        for (_, count), idx in zip(calls, lane_idx):
            stacked["state"], out = compiled.train_lanes(
                stacked["state"], split.images, split.labels, idx, np.int32(count))
        jax.block_until_ready(out["losses"])

    run_sequential.holder, run_lanes.holder = sequential, stacked  # for tests
    return {"lanes": run_lanes, "sequential": run_sequential}


def measure(model_name: str, n: int, steps: int, repeats: int) -> list:
    seconds = interleaved(variants(model_name, n, steps), repeats)
    rate = {k: n * steps / v for k, v in seconds.items()}
    return [model_name, n, steps, rate["lanes"], rate["sequential"],
            rate["lanes"] / rate["sequential"]]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet300_100,conv2")
    parser.add_argument("--lanes", default="1,4,16,64")
    parser.add_argument("--steps", type=int, default=100, help="steps of each run per call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [measure(model, int(n), args.steps, args.repeats)
            for model in args.models.split(",") for n in args.lanes.split(",")]
    out = table(["model", "lanes", "steps", "lanes run-steps/s", "sequential run-steps/s",
                 "lanes / sequential"], rows)
    print(f"backend {jax.default_backend()}, {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}\n{out}", flush=True)
    return out


if __name__ == "__main__":
    main()
