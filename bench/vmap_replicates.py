r"""Target 4 (issue 6): N replicates of LeNet-300-100 trained side by side in one program
with `jax.vmap`, against the same N trained one after another.

Each replicate has its own initialization, mask (20% kept) and batch order; both ways
run jaxtickets' compiled train chunk (`--steps` steps per call, `lax.scan`), the vmapped
one over states stacked on a leading axis. Throughput = replicate-steps per second.

  python -m bench.vmap_replicates [--replicates 8] [--steps 200] [--repeats 5]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.common import interleaved, table
from bench.masked_step import sparse_mask
from jaxtickets.models import create_model
from jaxtickets.parallel import make_mesh
from jaxtickets.training.batches import BatchOrder, device_indices, put_split
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.state import fresh_state
from jaxtickets.training.steps import InputSpec, make_steps

BATCH, EXAMPLES = 60, 2048


def _states(model, tx, n: int):
    states = []
    for r in range(n):
        params = model.init(jax.random.PRNGKey(r), jnp.zeros((1, 28, 28, 1)),
                            train=False)["params"]
        states.append(fresh_state(params, {}, sparse_mask(params, 0.2, seed=r), tx, 0,
                                  jax.random.PRNGKey(100 + r)))
    return states


def variants(n: int, steps: int) -> dict:
    """{'vmap': fn, 'sequential': fn}: each call trains all n replicates `steps` steps."""
    model = create_model("lenet300_100", 10)
    tx = build_optimizer("adam", optax.constant_schedule(1.2e-3))
    mesh = make_mesh(BATCH)
    rng = np.random.default_rng(0)
    split = put_split(rng.integers(0, 256, (EXAMPLES, 28, 28, 1), dtype=np.uint8),
                      rng.integers(0, 10, EXAMPLES), mesh)
    compiled = make_steps(model, tx, InputSpec((0.1307,), (0.3081,)), mesh, steps)
    idx = [device_indices(BatchOrder(EXAMPLES, BATCH, r).indices(0, steps, steps), mesh, 1)
           for r in range(n)]
    count = np.int32(steps)

    sequential = {"states": _states(model, tx, n)}

    def run_sequential():
        for r in range(n):
            sequential["states"][r], out = compiled.train_chunk(
                sequential["states"][r], split.images, split.labels, idx[r], count)
        jax.block_until_ready(out["losses"])

    chunk = jax.jit(jax.vmap(compiled.train_chunk, in_axes=(0, None, None, 0, None)),
                    donate_argnums=(0,))
    stacked = {"state": jax.tree_util.tree_map(lambda *xs: jnp.stack(xs),
                                               *_states(model, tx, n)),
               "idx": jnp.stack(idx)}

    def run_vmap():
        stacked["state"], out = chunk(stacked["state"], split.images, split.labels,
                                      stacked["idx"], count)
        jax.block_until_ready(out["losses"])

    run_sequential.holder, run_vmap.holder = sequential, stacked  # for tests
    return {"vmap": run_vmap, "sequential": run_sequential}


def measure(n: int, steps: int, repeats: int) -> list:
    seconds = interleaved(variants(n, steps), repeats)
    rate = {k: n * steps / v for k, v in seconds.items()}
    return [n, steps, rate["vmap"], rate["sequential"], rate["vmap"] / rate["sequential"]]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200, help="steps per call")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    out = table(["replicates", "steps per call", "vmap replicate-steps/s",
                 "sequential replicate-steps/s", "vmap / sequential"],
                [measure(args.replicates, args.steps, args.repeats)])
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
