r"""Mixed precision (issue 5): the masked train step in bf16 compute vs float32, side by side.

Both variants are jaxtickets' own compiled train step (model.compute_dtype), with 20% of
every prunable kernel kept, momentum SGD, BN statistics updated, on random uint8 images
held on the device. Prints images per second for each and bf16 / float32.

  python -m bench.mixed_precision [--model resnet20] [--image 32] [--batch 128] \
      [--steps 5] [--repeats 5]
  # on a GPU or TPU: the largest batch that fits, ResNet-50 at ImageNet size
  python -m bench.mixed_precision --model resnet50 --image 224 --max-batch
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import interleaved, table
from bench.masked_step import sparse_mask
from jaxtickets.models import create_model
from jaxtickets.parallel import make_mesh, replicated
from jaxtickets.training.batches import BatchOrder, device_indices, put_split
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.schedules import build_schedule
from jaxtickets.training.state import fresh_state
from jaxtickets.training.steps import COMPUTE_DTYPES, InputSpec, make_steps


def step_runner(model_name: str, image: int, batch: int, calls: int, dtype: str):
    """A callable running `calls` masked train steps in `dtype`; compiled on first call."""
    channels = 1 if model_name == "lenet300_100" else 3
    shape = (image, image, channels)
    model = create_model(model_name, 1000 if image >= 128 else 10)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1,) + shape), train=False)
    mesh = make_mesh(batch)
    examples = 2 * batch
    rng = np.random.default_rng(0)
    split = put_split(rng.integers(0, 256, (examples,) + shape, dtype=np.uint8),
                      rng.integers(0, 10, examples), mesh)
    tx = build_optimizer("momentum", build_schedule("constant", 0.01, 1000), momentum=0.9)
    steps = make_steps(model, tx, InputSpec((0.5,) * channels, (0.25,) * channels,
                                            compute_dtype=dtype), mesh, steps_per_call=1)
    order = BatchOrder(examples, batch, 0)
    idx = [device_indices(order.indices(s, 1, 1), mesh, 1) for s in range(2)]
    state = fresh_state(variables["params"], variables.get("batch_stats", {}),
                        sparse_mask(variables["params"], 0.2), tx, 0, jax.random.PRNGKey(1))
    holder = {"state": jax.device_put(state, replicated(mesh))}

    def run():
        for call in range(calls):
            holder["state"], out = steps.train_chunk(holder["state"], split.images,
                                                     split.labels, idx[call % 2], np.int32(1))
        jax.block_until_ready(out["losses"])
        if not np.isfinite(np.asarray(out["losses"])).all():
            raise FloatingPointError(f"{model_name} {dtype}: non-finite loss")

    return run


def measure(model_name: str, image: int, batch: int, steps: int, repeats: int) -> list:
    runners = {d: step_runner(model_name, image, batch, steps, d) for d in COMPUTE_DTYPES}
    seconds = interleaved(runners, repeats)
    rate = {d: batch * steps / s for d, s in seconds.items()}
    return [model_name, image, batch, rate["float32"], rate["bfloat16"],
            rate["bfloat16"] / rate["float32"]]


def largest_batch(model_name: str, image: int, start: int = 32) -> int:
    """Doubles the batch until a bf16 step runs out of device memory."""
    batch, fits = start, 0
    while True:
        try:
            step_runner(model_name, image, batch, 1, "bfloat16")()
        except Exception as err:  # noqa: BLE001 - XLA reports OOM as a runtime error
            if "RESOURCE_EXHAUSTED" not in str(err) and "out of memory" not in str(err):
                raise
            return fits
        fits, batch = batch, 2 * batch


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--image", type=int, default=32, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-batch", action="store_true",
                        help="use the largest power-of-two batch that fits in bf16")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    batch = largest_batch(args.model, args.image) if args.max_batch else args.batch
    row = measure(args.model, args.image, batch, args.steps, args.repeats)
    out = table(["model", "image", "batch", "float32 images/s", "bf16 images/s",
                 "bf16 / float32"], [row])
    print(f"devices: {jax.devices()}\n{out}", flush=True)
    return out


if __name__ == "__main__":
    main()
