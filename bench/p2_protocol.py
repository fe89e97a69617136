r"""Target 8 (issue 6): the wall time of P2's full LeNet protocol on real MNIST.

The whole protocol is 5 replicates x (the dense run + 20 levels x ticket and random
reinit) = 205 runs of 50K iterations, evaluated on 5,000 validation and 10,000 test
images every 100 iterations. That is hours here, so this script runs the real driver
(`configs/mnist_lenet.py`, P2's recipe, real MNIST) on cut-down experiments and fits
the cost model  wall = setup + runs x per_run + run_iterations x per_iteration
(fit_costs) on one level at `--short` and at `--long` iterations per run (3 runs each)
and two levels at `--short` (5 runs). Setup (loading and decoding MNIST, compiling) happens once per
process; per-run work is pruning, re-initialising, checkpoint and result writes. The
fit projects the protocol in one process and with the replicates split over
`--processes` processes. It does so for P2's evaluation cadence and for evaluation only
at each run's end, side by side.

Beside it, the protocol's arithmetic floor: its FLOPs (training and evaluation, the
dense matmuls XLA runs whatever the mask, flops.forward_flops per layer) over this
machine's float32 matmul rate, measured in the same run on a 2048^3 jitted matmul. A
projection can get no lower than that without skipping arithmetic.

  python -m bench.p2_protocol [--short 1000] [--long 4000] [--processes 2] \
      [--data_dir DIR]

Without --data_dir, ../shared/data/mnist.npz is imported into a temporary TFDS dir.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import os
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import table
from jaxtickets.analysis.flops import forward_flops
from jaxtickets.experiment.driver import run_experiment
from jaxtickets.models import create_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
# The protocol this benchmark has always priced (BENCHMARKS.md): dense + 20 levels x
# (ticket, one random reinit); configs/mnist_lenet.py now runs 27 levels x 3 reinits.
RUNS_PER_REPLICATE = 1 + 20 * 2
REPLICATES, ITERATIONS = 5, 50_000
PROTOCOL_RUN_ITERATIONS = REPLICATES * RUNS_PER_REPLICATE * ITERATIONS
BATCH, EVAL_EVERY, EVAL_IMAGES = 60, 100, 5_000 + 10_000
CADENCES = {"every 100 (P2)": EVAL_EVERY, "at the end only": None}


def p2_config(iterations: int, eval_every: int | None, data_dir: str, source: str = "tfds",
              levels: int = 1):
    """configs/mnist_lenet.py's full recipe cut to one replicate and `levels` levels."""
    spec = importlib.util.spec_from_file_location("mnist_lenet",
                                                  ROOT / "configs" / "mnist_lenet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(None)
    config.num_replicates = 1
    config.pruning.control_draws = 1  # one reinit per level: the runs fit_costs counts
    config.pruning.levels = levels
    config.data.source = source
    config.data.data_dir = data_dir
    config.train.duration = f"{iterations}st"
    config.train.eval_every = f"{eval_every or iterations}st"
    config.train.checkpoint_every = f"{iterations}st"
    config.runtime.plot = False
    config.runtime.log_every_seconds = 1e6
    return config


def experiment_seconds(config, workdir: pathlib.Path) -> tuple[float, list[float]]:
    """(wall seconds of the whole experiment, compiles and writes included; the wall
    seconds of each of its training runs, as the driver measured them)."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        results = run_experiment(config, workdir)
    runs = [r["wall_seconds"] for r in results["rows"] if r["train_steps"] > 0]
    return time.perf_counter() - start, runs


def fit_costs(every: int | None, short: int, long: int, data_dir: str, source: str,
              tmp: pathlib.Path) -> dict:
    """wall = setup + runs x per_run + run-iterations x per_iteration, from three
    experiments: 1 level at `short` and at `long` iterations (3 runs each) and 2 levels
    at `short` (5 runs). The per-iteration cost comes from the runs' own wall times
    (long minus short: no loading or compiling in the difference); the per-run cost
    from the two extra runs of the 2-level experiment; setup is what is left."""
    (t_short, w_short), (t_long, w_long), (t_two, w_two) = [
        experiment_seconds(p2_config(iterations, every, data_dir, source, levels),
                           tmp / f"{every}_{levels}_{iterations}")
        for levels, iterations in ((1, short), (1, long), (2, short))]
    assert len(w_short) == len(w_long) == 3 and len(w_two) == 5, (w_short, w_two)
    per_iteration = (sum(w_long) - sum(w_short)) / (3 * (long - short))
    per_run = ((t_two - t_short) - 2 * short * per_iteration) / 2
    setup = t_short - 3 * (per_run + short * per_iteration)
    return {"setup": setup, "per_run": per_run, "per_iteration": per_iteration}


def projected_seconds(costs: dict, processes: int) -> float:
    """The protocol's wall time when `processes` processes split the replicates (the
    slowest has ceil(5 / processes) of them); negative fitted terms (noise) count 0."""
    runs = math.ceil(REPLICATES / processes) * RUNS_PER_REPLICATE
    return (max(costs["setup"], 0.0) + runs * max(costs["per_run"], 0.0)
            + runs * ITERATIONS * max(costs["per_iteration"], 0.0))


def protocol_flops(every: int | None) -> float:
    """FLOPs of the whole protocol: per training example the forward pass, its weight
    gradients (as many FLOPs again) and the input gradients of every layer but the
    first (the images need none); per evaluated image one forward pass."""
    model = create_model("lenet300_100", 10)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                               jnp.zeros((1, 28, 28, 1)), train=False))
    layers = forward_flops(model, params["params"], None, (28, 28, 1))["layers"]
    dense = [entry["dense"] for entry in layers.values()]  # in call order
    per_train_example = 2 * sum(dense) + sum(dense[1:])
    evaluations = REPLICATES * RUNS_PER_REPLICATE * (ITERATIONS // every if every else 1)
    return (PROTOCOL_RUN_ITERATIONS * BATCH * per_train_example
            + evaluations * EVAL_IMAGES * sum(dense))


def matmul_flops_per_second(size: int = 2048, repeats: int = 5) -> float:
    """One core's float32 matmul rate (best of `repeats`), as XLA runs it: the rate of
    this process over the cores it may use, so the floor of P processes is P cores'
    worth whether or not the benchmark is pinned to one core."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
    square = jax.jit(lambda a: a @ a)
    square(x).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        square(x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / len(os.sched_getaffinity(0))


def measure(short: int, long: int, data_dir: str, source: str = "tfds", processes: int = 2,
            cadences: tuple[str, ...] = tuple(CADENCES),
            rate: float | None = None) -> list[list]:
    """Rows: (evaluation cadence, fitted setup s, s per run, s per 1K run-iterations,
    projected hours in one process, in `processes` processes, and the FLOP floor in
    `processes` processes at `rate` FLOP/s, measured here when not given)."""
    rate = rate or matmul_flops_per_second()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in cadences:
            every = CADENCES[name]
            costs = fit_costs(every, short, long, data_dir, source, pathlib.Path(tmp))
            floor = protocol_flops(every) / (rate * processes)
            rows.append([name, costs["setup"], costs["per_run"],
                         costs["per_iteration"] * 1000, projected_seconds(costs, 1) / 3600,
                         projected_seconds(costs, processes) / 3600, floor / 3600])
    return rows


def _prepared_mnist(tmp: str) -> str:
    from jaxtickets.data.tfds_io import decode_shared_npz, import_to_tfds

    import_to_tfds("mnist", decode_shared_npz("mnist", SHARED_MNIST), tmp)
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=1000)
    parser.add_argument("--long", type=int, default=4000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    rate = matmul_flops_per_second()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or _prepared_mnist(tmp)
        rows = measure(args.short, args.long, data_dir, processes=args.processes, rate=rate)
    print(f"P2 LeNet protocol: {PROTOCOL_RUN_ITERATIONS:,} run-iterations "
          f"({REPLICATES} replicates x {RUNS_PER_REPLICATE} runs x {ITERATIONS:,}); fitted "
          f"on 1 level x {args.short} and {args.long} iterations and 2 levels x {args.short}; "
          f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s per core")
    p = args.processes
    print(table(["evaluation", "setup s", "s per run", "s per 1K run-iterations",
                 "projected h, 1 process", f"projected h, {p} processes",
                 f"FLOP floor h, {p} processes"], rows))
    for row in rows:
        print(f"{row[0]}: projected / floor {row[5] / row[6]:.2f}")
    print(f"evaluation cost (every 100 / end only, per iteration): {rows[0][3] / rows[1][3]:.3f}")


if __name__ == "__main__":
    main()
