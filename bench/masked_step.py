r"""Target 1 (issue 6), masking is free: the masked train step over the dense one.

Both variants are jaxtickets' own compiled train chunk (data on the device, indexed
inside the step, `steps_per_call` steps per call with lax.scan) on the same model, batch
and optimizer; the dense one has no prunable leaves (mask tree all None), so it skips
the mask multiply in the forward pass and the zeroing of pruned updates. The masked one
has 20% of each kernel kept (the work is the same dense matmuls either way).

  python -m bench.masked_step [--model lenet300_100] [--batch 60] [--steps 100] \
      [--repeats 7]
Prints one markdown row per model: ms per step for each variant and masked / dense.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.common import interleaved, table
from jaxtickets.data.datasets import IMAGE_SHAPES, NORMALIZATION
from jaxtickets.models import create_model
from jaxtickets.parallel import make_mesh
from jaxtickets.sparsity.masks import PrunablePolicy, init_mask
from jaxtickets.training.batches import BatchOrder, device_indices, put_split
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.state import fresh_state
from jaxtickets.training.steps import InputSpec, make_steps

DATASET = {"lenet300_100": "mnist", "conv2": "cifar10", "conv4": "cifar10",
           "conv6": "cifar10", "conv4_narrow": "cifar10"}


def sparse_mask(params, keep: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda m: None if m is None else rng.random(m.shape) < keep,
        init_mask(params, PrunablePolicy()), is_leaf=lambda x: x is None)


def step_variants(model_name: str, batch: int, steps_per_call: int, calls: int,
                  keep: float = 0.2, examples: int = 2048,
                  cpu_convolutions: str = "ynnpack") -> dict:
    """{'masked': fn, 'dense': fn}, each running `calls` x `steps_per_call` steps on
    random uint8 images shaped like the model's dataset."""
    dataset = DATASET[model_name]
    shape = IMAGE_SHAPES[dataset]
    model = create_model(model_name, 10)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1,) + shape), train=False)["params"]
    mesh = make_mesh(batch)
    rng = np.random.default_rng(0)
    split = put_split(rng.integers(0, 256, (examples,) + shape, dtype=np.uint8),
                      rng.integers(0, 10, examples), mesh)
    mean, std = NORMALIZATION[dataset]
    spec = InputSpec(mean, std)
    tx = build_optimizer("adam", optax.constant_schedule(1.2e-3))
    order = BatchOrder(examples, batch, 0)
    idx = device_indices(order.indices(0, steps_per_call, steps_per_call), mesh, 1)
    dense_mask = jax.tree_util.tree_map(lambda _: None, params)
    variants = {}
    for name, mask in (("masked", sparse_mask(params, keep)), ("dense", dense_mask)):
        steps = make_steps(model, tx, spec, mesh, steps_per_call,
                           cpu_convolutions=cpu_convolutions)
        own = jax.tree_util.tree_map(np.array, params)  # the step donates its state
        holder = {"state": fresh_state(own, {}, mask, tx, 0, jax.random.PRNGKey(1))}

        args = (split.images, split.labels, idx, np.int32(steps_per_call))

        def run(steps=steps, holder=holder, args=args):
            for _ in range(calls):
                holder["state"], out = steps.train_chunk(holder["state"], *args)
            jax.block_until_ready(out["losses"])

        run.holder = holder  # the latest state, for tests
        run.steps, run.args = steps, args  # the compiled steps and their data, to profile
        variants[name] = run
    return variants


def measure(model_name: str, batch: int, steps: int, repeats: int) -> list:
    # XLA:CPU runs convolutions inside a scan much slower, so conv nets take one step
    # per call (as the driver's runtime.steps_per_call does for them on CPU).
    per_call = 1 if model_name.startswith("conv") else steps
    seconds = interleaved(step_variants(model_name, batch, per_call, steps // per_call),
                          repeats)
    per_step = {k: 1e3 * v / steps for k, v in seconds.items()}
    return [model_name, batch, per_step["masked"], per_step["dense"],
            per_step["masked"] / per_step["dense"]]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="repeatable; default lenet300_100, conv4")
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rows = [measure(m, args.batch, args.steps, args.repeats)
            for m in args.model or ["lenet300_100", "conv4"]]
    out = table(["model", "batch", "masked ms/step", "dense ms/step", "masked / dense"], rows)
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
