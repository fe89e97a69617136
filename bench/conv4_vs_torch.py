r"""Target 3 (issue 6): Conv-4 on CIFAR-10 masked training steps per second, jaxtickets
against a plain PyTorch loop doing the same work.

Same work on both sides: batch 60 of uint8 32x32x3 images from a resident array,
normalization, Conv-4 (64-64-pool-128-128-pool, FC 256-256-10, 3x3 'same' convs, ReLU)
with every kernel multiplied by a 0/1 mask (20% kept), cross-entropy, Adam 1.2e-3 with
pruned gradients zeroed. jaxtickets runs its compiled train step (one step per call,
as its driver does for conv nets on CPU); PyTorch runs the textbook loop in NCHW with as
many intra-op threads as the process may use. Timed interleaved in one process.

  python -m bench.conv4_vs_torch [--steps 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os

from bench.common import interleaved, table
from bench.masked_step import step_variants

BATCH, EXAMPLES = 60, 512
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def torch_loop(steps: int, keep: float = 0.2, seed: int = 0, widths=(64, 128)):
    """A callable that runs `steps` masked Adam steps of Conv-4 in PyTorch."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (EXAMPLES, 32, 32, 3), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (EXAMPLES,), generator=gen)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    convs, channels = [], 3
    for width in widths:
        for _ in range(2):
            convs.append((channels, width))
            channels = width
    flat = channels * (32 // 2 ** len(widths)) ** 2
    fcs = [(flat, 256), (256, 256), (256, 10)]
    kernels = ([torch.nn.init.xavier_normal_(torch.empty(o, i, 3, 3)) for i, o in convs]
               + [torch.nn.init.xavier_normal_(torch.empty(o, i)) for i, o in fcs])
    kernels = [k.requires_grad_() for k in kernels]
    biases = [torch.zeros(k.shape[0], requires_grad=True) for k in kernels]
    masks = [(torch.rand(k.shape, generator=gen) < keep).float() for k in kernels]
    with torch.no_grad():
        for k, m in zip(kernels, masks):
            k.mul_(m)
    opt = torch.optim.Adam(kernels + biases, lr=1.2e-3)
    order = torch.randperm(EXAMPLES, generator=gen)
    state = {"step": 0}
    n_conv = len(convs)

    def run():
        for _ in range(steps):
            start = (state["step"] * BATCH) % (EXAMPLES - BATCH)
            idx = order[start:start + BATCH]
            x = (images[idx].permute(0, 3, 1, 2).float() / 255.0 - mean) / std
            for i in range(n_conv):
                x = F.relu(F.conv2d(x, kernels[i] * masks[i], biases[i], padding=1))
                if i % 2 == 1:
                    x = F.max_pool2d(x, 2)
            x = x.permute(0, 2, 3, 1).reshape(BATCH, -1)  # NHWC flatten, as in Flax
            for j in range(n_conv, len(kernels)):
                x = F.linear(x, kernels[j] * masks[j], biases[j])
                if j < len(kernels) - 1:
                    x = F.relu(x)
            loss = F.cross_entropy(x, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for k, m in zip(kernels, masks):
                k.grad.mul_(m)
            opt.step()
            state["step"] += 1

    run.kernels, run.masks = kernels, masks  # for tests: pruned weights stay zero
    return run


def measure(steps: int, repeats: int, model: str = "conv4") -> list:
    widths = {"conv2": (64,), "conv4": (64, 128), "conv6": (64, 128, 256)}[model]
    jax_run = step_variants(model, BATCH, 1, steps, examples=EXAMPLES)["masked"]
    seconds = interleaved({"jax": jax_run, "torch": torch_loop(steps, widths=widths)},
                          repeats)
    rate = {k: steps / v for k, v in seconds.items()}
    return [model, BATCH, rate["jax"], rate["torch"], rate["jax"] / rate["torch"]]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv4", choices=("conv2", "conv4", "conv6"))
    parser.add_argument("--steps", type=int, default=5, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    out = table(["model", "batch", "jaxtickets steps/s", "PyTorch steps/s",
                 "jaxtickets / PyTorch"], [measure(args.steps, args.repeats, args.model)])
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
