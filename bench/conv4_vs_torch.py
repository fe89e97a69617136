r"""Target 3 (issue 6): Conv-4 on CIFAR-10 masked training steps per second, jaxtickets
against a plain PyTorch loop doing the same work.

Same work on both sides: batch 60 of uint8 32x32x3 images from a resident array,
normalization, Conv-4 (64-64-pool-128-128-pool, FC 256-256-10, 3x3 'same' convs, ReLU)
with every kernel multiplied by a 0/1 mask (20% kept), cross-entropy, Adam 1.2e-3 with
pruned gradients zeroed. jaxtickets runs its compiled train step (one step per call,
as its driver does for conv nets on CPU), once with each XLA:CPU convolution library
(runtime.cpu_convolutions: YNNPACK, XLA's default, and Eigen); PyTorch runs the
textbook loop in NCHW with as many intra-op threads as the process may use. Timed
interleaved in one process.

  python -m bench.conv4_vs_torch [--steps 5] [--repeats 5]
"""

from __future__ import annotations

import argparse

from bench.common import interleaved, table
from bench.masked_step import step_variants
from bench.torch_reference import masked_adam_loop
from jaxtickets.training.xla_cpu import CPU_CONVOLUTIONS

BATCH, EXAMPLES = 60, 512
WIDTHS = {"conv2": (64,), "conv4": (64, 128), "conv6": (64, 128, 256)}
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def torch_loop(steps: int, keep: float = 0.2, seed: int = 0, widths=(64, 128)):
    """A callable that runs `steps` masked Adam steps of Conv-2/4/6 in PyTorch."""
    import torch
    import torch.nn.functional as F

    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    convs, channels = [], 3
    for width in widths:
        for _ in range(2):
            convs.append((width, channels, 3, 3))
            channels = width
    flat = channels * (32 // 2 ** len(widths)) ** 2
    fcs = [(256, flat), (256, 256), (10, 256)]

    def forward(images, kernels, biases):
        x = (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
        for i in range(len(convs)):
            x = F.relu(F.conv2d(x, kernels[i], biases[i], padding=1))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC flatten, as in Flax
        for j in range(len(convs), len(kernels)):
            x = F.linear(x, kernels[j], biases[j])
            if j < len(kernels) - 1:
                x = F.relu(x)
        return x

    return masked_adam_loop(steps, (32, 32, 3), convs + fcs, forward, BATCH, EXAMPLES,
                            keep, seed)


def measure(steps: int, repeats: int, model: str = "conv4") -> list:
    """[model, batch, steps/s with XLA's YNNPACK and its Eigen convolutions
    (runtime.cpu_convolutions), PyTorch's, and each jaxtickets rate over PyTorch's]."""
    runs = {lib: step_variants(model, BATCH, 1, steps, examples=EXAMPLES,
                               cpu_convolutions=lib)["masked"] for lib in CPU_CONVOLUTIONS}
    runs["torch"] = torch_loop(steps, widths=WIDTHS[model])
    rate = {k: steps / v for k, v in interleaved(runs, repeats).items()}
    return [model, BATCH, *(rate[lib] for lib in CPU_CONVOLUTIONS), rate["torch"],
            *(rate[lib] / rate["torch"] for lib in CPU_CONVOLUTIONS)]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv4", choices=sorted(WIDTHS))
    parser.add_argument("--steps", type=int, default=5, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    out = table(["model", "batch", *(f"jaxtickets ({lib}) steps/s" for lib in CPU_CONVOLUTIONS),
                 "PyTorch steps/s", *(f"{lib} / PyTorch" for lib in CPU_CONVOLUTIONS)],
                [measure(args.steps, args.repeats, args.model)])
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
