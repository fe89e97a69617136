r"""Target 8 (issue 6): the wall time of P2's full LeNet protocol on real MNIST.

The whole protocol is 5 replicates x (the dense run + 20 levels x ticket and random
reinit) = 205 runs of 50K iterations, evaluated on 5,000 validation and 10,000 test
images every 100 iterations. That is hours here, so this script runs the real driver
(`configs/mnist_lenet.py`, P2's recipe, real MNIST) on one replicate and one level
(3 runs) with `--iterations` per run, and projects the protocol's wall time from the
measured seconds per run-iteration. It times P2's evaluation cadence side by side with
evaluation only at the end of each run, so the table shows where the time goes.

  python -m bench.p2_protocol [--iterations 5000] [--repeats 1] [--data_dir DIR]

Without --data_dir, ../shared/data/mnist.npz is imported into a temporary TFDS dir.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import pathlib
import tempfile
import time

from bench.common import table
from jaxtickets.experiment.driver import run_experiment

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
RUNS_PER_REPLICATE = 1 + 20 * 2   # dense + 20 levels x (ticket, random reinit)
REPLICATES, ITERATIONS = 5, 50_000
PROTOCOL_RUN_ITERATIONS = REPLICATES * RUNS_PER_REPLICATE * ITERATIONS


def p2_config(iterations: int, eval_every: int | None, data_dir: str, source: str = "tfds"):
    """configs/mnist_lenet.py's full recipe cut to one replicate and one level."""
    spec = importlib.util.spec_from_file_location("mnist_lenet",
                                                  ROOT / "configs" / "mnist_lenet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(None)
    config.num_replicates = 1
    config.pruning.levels = 1
    config.data.source = source
    config.data.data_dir = data_dir
    config.train.duration = f"{iterations}st"
    config.train.eval_every = f"{eval_every or iterations}st"
    config.train.checkpoint_every = f"{iterations}st"
    config.runtime.plot = False
    config.runtime.log_every_seconds = 1e6
    return config


def seconds_per_run_iteration(config, workdir: pathlib.Path) -> float:
    """Wall seconds of the whole experiment (its 3 runs, compiles and writes included)
    per run-iteration."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        results = run_experiment(config, workdir)
    runs = sum(r["train_steps"] > 0 for r in results["rows"])
    steps = int(config.train.duration[:-2])
    return (time.perf_counter() - start) / (runs * steps)


def measure(iterations: int, repeats: int, data_dir: str, source: str = "tfds",
            processes: int = 2) -> list[list]:
    """Rows: (evaluation cadence, s per 1K run-iterations, projected protocol hours in
    one process, the same in `processes` processes splitting the replicates)."""
    cadences = {"every 100 (P2)": 100, "at the end only": None}
    seconds: dict[str, list[float]] = {name: [] for name in cadences}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, every in cadences.items():
                workdir = pathlib.Path(tmp) / f"{r}_{every}"
                seconds[name].append(seconds_per_run_iteration(
                    p2_config(iterations, every, data_dir, source), workdir))
    rows = []
    for name, values in seconds.items():
        per = min(values)
        hours = per * PROTOCOL_RUN_ITERATIONS / 3600
        rows.append([name, per * 1000, hours, hours / processes])
    return rows


def _prepared_mnist(tmp: str) -> str:
    from jaxtickets.data.tfds_io import decode_shared_npz, import_to_tfds

    import_to_tfds("mnist", decode_shared_npz("mnist", SHARED_MNIST), tmp)
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or _prepared_mnist(tmp)
        rows = measure(args.iterations, args.repeats, data_dir, processes=args.processes)
    print(f"P2 LeNet protocol: {PROTOCOL_RUN_ITERATIONS:,} run-iterations "
          f"({REPLICATES} replicates x {RUNS_PER_REPLICATE} runs x {ITERATIONS:,}); "
          f"measured on 1 replicate x 1 level x {args.iterations} iterations per run")
    print(table(["evaluation", "s per 1K run-iterations", "projected hours, 1 process",
                 f"projected hours, {args.processes} processes"], rows))
    print(f"ratio (every 100 / end only): {rows[0][1] / rows[1][1]:.3f}")


if __name__ == "__main__":
    main()
