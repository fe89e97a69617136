r"""Target 7 (issue 6): the CIFAR-10 input pipeline against the train step it feeds.

jaxtickets keeps the uint8 training images on the device; each step gathers its batch,
pads by 4 and crops back at a random offset, flips at random and normalizes, all inside
the jitted step. Here that path alone (jitted, batch 60) is timed beside the masked
Conv-4 train step that consumes it, interleaved in one process: delivered batches per
second over consumed steps per second.

  python -m bench.input_pipeline [--model conv4] [--repeats 5]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from bench.common import interleaved, table
from bench.masked_step import step_variants
from jaxtickets.data.datasets import NORMALIZATION
from jaxtickets.tasks.base import LabelsTask
from jaxtickets.training.steps import InputSpec

BATCH, EXAMPLES = 60, 2048


def pipeline(calls: int, seed: int = 0):
    """A callable producing `calls` augmented, normalized CIFAR-shaped batches."""
    rng = np.random.default_rng(seed)
    images = jax.device_put(rng.integers(0, 256, (EXAMPLES, 32, 32, 3), dtype=np.uint8))
    labels = jax.device_put(rng.integers(0, 10, EXAMPLES).astype(np.int32))
    spec = InputSpec(*NORMALIZATION["cifar10"], pad_crop=4, flip=True)
    task = LabelsTask()

    @jax.jit
    def batch(idx, key):
        return task.train_inputs(images[idx], labels[idx], key, spec)

    order = [jax.device_put(rng.permutation(EXAMPLES)[:BATCH].astype(np.int32))
             for _ in range(calls)]

    def run():
        for i, idx in enumerate(order):
            x, _ = batch(idx, jax.random.PRNGKey(i))
        jax.block_until_ready(x)

    run.batch = batch  # for tests
    return run


def measure(model: str, calls: int, repeats: int) -> list:
    step = step_variants(model, BATCH, 1, calls)["masked"]
    seconds = interleaved({"pipeline": pipeline(calls), "step": step}, repeats)
    delivered, consumed = calls / seconds["pipeline"], calls / seconds["step"]
    return [model, BATCH, delivered, consumed, delivered / consumed]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv4")
    parser.add_argument("--calls", type=int, default=5, help="batches per timed sample")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    out = table(["model", "batch", "batches delivered/s", "steps consumed/s",
                 "delivered / consumed"], [measure(args.model, args.calls, args.repeats)])
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
