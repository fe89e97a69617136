r"""Target 2 (issue 6): LeNet-300-100 masked training steps per second, jaxtickets
against a plain PyTorch loop doing the same work.

Same work on both sides: batch 60 of uint8 28x28 images drawn from the same resident
training array, normalization, a 784-300-100-10 ReLU network whose kernels are
multiplied by 0/1 masks (20% kept), softmax cross-entropy, Adam 1.2e-3 with the pruned
updates zeroed. jaxtickets runs its own compiled train chunk (`lax.scan` over
`--steps` steps per call, batches indexed on the device); PyTorch runs the textbook loop
(index, forward, backward, mask the gradients, `optimizer.step()`), one step per Python
iteration, with as many intra-op threads as this process may use. The two are timed
interleaved in one process.

  python -m bench.lenet_vs_torch [--steps 500] [--repeats 7]
"""

from __future__ import annotations

import argparse

from bench.common import interleaved, table
from bench.masked_step import step_variants
from bench.torch_reference import masked_adam_loop

BATCH, EXAMPLES = 60, 2048


def torch_loop(steps: int, keep: float = 0.2, seed: int = 0):
    """A callable that runs `steps` masked Adam steps of LeNet-300-100 in PyTorch."""
    import torch

    def forward(images, kernels, biases):
        h = ((images.float() / 255.0 - 0.1307) / 0.3081).reshape(images.shape[0], -1)
        for i, (k, b) in enumerate(zip(kernels, biases)):
            h = torch.nn.functional.linear(h, k, b)
            if i < len(kernels) - 1:
                h = torch.relu(h)
        return h

    return masked_adam_loop(steps, (28, 28, 1), [(300, 784), (100, 300), (10, 100)],
                            forward, BATCH, EXAMPLES, keep, seed)


def measure(steps: int, repeats: int) -> list:
    jax_run = step_variants("lenet300_100", BATCH, steps, 1, examples=EXAMPLES)["masked"]
    seconds = interleaved({"jax": jax_run, "torch": torch_loop(steps)}, repeats)
    rate = {k: steps / v for k, v in seconds.items()}
    return [BATCH, steps, rate["jax"], rate["torch"], rate["jax"] / rate["torch"]]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    out = table(["batch", "steps per sample", "jaxtickets steps/s", "PyTorch steps/s",
                 "jaxtickets / PyTorch"], [measure(args.steps, args.repeats)])
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
