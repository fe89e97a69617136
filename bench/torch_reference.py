"""The PyTorch side of the comparisons: the textbook masked-training loop (index a
batch, forward with kernels x masks, backward, zero the pruned gradients, Adam step),
one Python iteration per step. Each benchmark supplies only its network's forward."""

from __future__ import annotations

import os
from typing import Callable


def masked_adam_loop(steps: int, image_shape: tuple[int, ...], kernel_shapes: list[tuple],
                     forward: Callable, batch: int, examples: int, keep: float = 0.2,
                     seed: int = 0) -> Callable[[], None]:
    """A callable running `steps` masked Adam (1.2e-3) steps on random uint8 images of
    `image_shape`. `forward(images_uint8, masked_kernels, biases)` gives the logits;
    kernels are Xavier-normal (out, in, ...), masks keep `keep` of them, biases start 0."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (examples, *image_shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (examples,), generator=gen)
    kernels = [torch.nn.init.xavier_normal_(torch.empty(s)).requires_grad_()
               for s in kernel_shapes]
    biases = [torch.zeros(k.shape[0], requires_grad=True) for k in kernels]
    masks = [(torch.rand(k.shape, generator=gen) < keep).float() for k in kernels]
    with torch.no_grad():
        for k, m in zip(kernels, masks):
            k.mul_(m)
    opt = torch.optim.Adam(kernels + biases, lr=1.2e-3)
    order = torch.randperm(examples, generator=gen)
    state = {"step": 0}

    def run():
        for _ in range(steps):
            start = (state["step"] * batch) % (examples - batch)
            idx = order[start:start + batch]
            logits = forward(images[idx], [k * m for k, m in zip(kernels, masks)], biases)
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for k, m in zip(kernels, masks):
                k.grad.mul_(m)
            opt.step()
            state["step"] += 1

    run.kernels, run.masks = kernels, masks  # for tests: pruned weights stay zero
    return run
