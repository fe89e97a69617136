"""Find a lottery ticket in your own model with your own training loop.

An NNX CNN defined here trains on the MNIST subset embedded in the package (12,000
training and 2,000 test images) with a short jitted optax loop of its own; the
`jaxtickets.lottery` library adds the mask, pruning and rewinding around it:

    python examples/own_model.py                        # 5 levels of 1,000 steps
    python examples/own_model.py --steps 300 --levels 2

Each level prunes 20% of the remaining weights of every layer (10% of the output
layer), rewinds the surviving weights to the values the loop saved at step
--rewind-step of the dense run, and trains again. It prints one line per level.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax
from flax import nnx

from jaxtickets import lottery
from jaxtickets.data.datasets import load_splits


class CNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 16, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), strides=2, rngs=rngs)
        self.hidden = nnx.Linear(7 * 7 * 32, 128, rngs=rngs)
        self.out = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.conv2(nnx.relu(self.conv1(x))))
        return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per level")
    parser.add_argument("--levels", type=int, default=5, help="pruning rounds")
    parser.add_argument("--rate", type=float, default=0.2, help="pruned per round")
    parser.add_argument("--rewind-step", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    began = time.time()

    mnist = load_splits("mnist", "embedded", "", validation_size=0)
    x_train, y_train = mnist.train.images / np.float32(255), mnist.train.labels
    x_test, y_test = mnist.test.images / np.float32(255), mnist.test.labels
    graphdef, params0 = nnx.split(CNN(nnx.Rngs(args.seed)))

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def accuracy(params):
        return (nnx.merge(graphdef, params)(x_test).argmax(-1) == y_test).mean()

    def train(params, mask):
        tx = lottery.masked(optax.adam(1e-3), mask)  # pruned weights stay exactly 0

        @jax.jit
        def step(params, opt_state, x, y):
            grads = jax.grad(loss_fn)(params, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        opt_state, snapshot = tx.init(params), params
        order = np.random.default_rng(args.seed)
        # The dense run goes from step 0; pruned runs resume at the rewind step.
        first = args.rewind_step if lottery.density(mask) < 1 else 0
        for i in range(first, args.steps):
            if i == args.rewind_step:
                snapshot = params  # the weights pruned networks rewind to
            batch = order.integers(0, len(y_train), args.batch)
            params, opt_state = step(params, opt_state, x_train[batch], y_train[batch])
        return params, snapshot

    levels = lottery.imp(params0, train, levels=args.levels, rate=args.rate,
                         rewind="snapshot", rates={"out": args.rate / 2})
    for level in levels:
        kept = lottery.counts(level.mask)
        print(f"level {level.level}: {kept.kept}/{kept.total} weights "
              f"({100 * kept.density:.2f}%), test accuracy "
              f"{100 * float(accuracy(level.params)):.2f}%")
    print(f"done in {time.time() - began:.1f} s")


if __name__ == "__main__":
    main()
