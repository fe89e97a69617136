r"""What matters on an accelerator, measured in one command on whatever backend JAX sees.

  python -m bench.accelerator --out DIR [--budget_s 480] [--data_dir DIR] \
      [--parts steps,chunks,pipeline,p2_lenet,p2_conv2] [--smoke]

Writes DIR/accelerator.json (after every part, so an interrupted run keeps what it
measured) and DIR/accelerator.md, and prints the Markdown:
- the backend, devices, versions and host cores;
- per model (steps.py), masked (20% kept) and dense: train steps/s, images/s, the
  masked/dense time ratio, compile seconds and device memory;
- LeNet-300-100's steps/s at several steps per call (the fixed cost of a call);
- the streamed JPEG pipeline's images/s on all host cores against ResNet-50's
  consumption (feed.py; needs TFDS, Grain and array_record, else skipped);
- in the rest of the budget, P2's LeNet-300-100 protocol on real MNIST and P2 Fig. 5's
  Conv-2 on real CIFAR-10 through the driver (reproduce.py), each as large as fits;
  skipped, and named as skipped, when its data file is absent or it would not fit.
`--data_dir` holds mnist.npz and cifar10_jpeg.npz in the layout of the project's test
data (docs/data.md). `--smoke` runs every part at toy size (CPU, a minute or two).
BENCHMARKS.md says how to stage and run this on a GPU machine (make accelerator-check).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
from importlib import metadata

# GPU: allocate device memory as needed rather than 75% of it up front, so that the
# reproductions' child processes (inheriting this) find memory beside this process.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402 - after the allocator setting

from bench.accelerator import feed, reproduce, steps  # noqa: E402
from bench.accelerator.report import markdown  # noqa: E402
from jaxtickets.host import host_cores  # noqa: E402
from jaxtickets.training import backend_defaults  # noqa: E402

PARTS = ("steps", "chunks", "pipeline", "p2_lenet", "p2_conv2")
ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CHUNK_LENGTHS = (1, 10, 100, 1000)
# Smoke sizes: the paper configs cut to a few hundred images and iterations.
SMOKE_REPRO = {"data.validation_size": 100, "data.train_size": 400, "data.test_size": 100,
               "train.batch_size": 10, "train.eval_every": "20st",
               "train.checkpoint_every": "40st", "train.eval_batch_size": 100}
SMOKE_STEPS = 40  # iterations per run of a smoke reproduction


def environment() -> dict:
    """What ran: backend, devices, versions, host cores."""
    device = jax.devices()[0]

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"backend": jax.default_backend(), "device": device.device_kind,
            "device_count": jax.device_count(), "host_cores": host_cores(),
            "python": platform.python_version(),
            "versions": {n: version(n) for n in ("jax", "jaxlib", "flax", "optax",
                                                 "orbax-checkpoint", "numpy")}}


class Report:
    """The JSON and Markdown in DIR, rewritten after every part."""

    def __init__(self, out: pathlib.Path, budget_s: float, smoke: bool):
        out.mkdir(parents=True, exist_ok=True)
        self.out, self.start = out, time.perf_counter()
        self.data = {"smoke": smoke, "budget_s": budget_s, "environment": environment(),
                     "skipped": {}}

    @contextlib.contextmanager
    def timed(self, part: str):
        """Records the part's wall seconds under 'part_seconds'."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.data.setdefault("part_seconds", {})[part] = time.perf_counter() - start
            self.write()

    def left(self) -> float:
        return self.data["budget_s"] - (time.perf_counter() - self.start)

    def record(self, part: str, value) -> None:
        self.data[part] = value
        self.write()

    def skip(self, part: str, why: str) -> None:
        self.data["skipped"][part] = why
        print(f"skipped {part}: {why}", flush=True)
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = time.perf_counter() - self.start
        tmp = self.out / "accelerator.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.out / "accelerator.json")
        (self.out / "accelerator.md").write_text(markdown(self.data))


def run_steps(report: Report, smoke: bool) -> None:
    cases = steps.smoke_cases() if smoke else steps.CASES
    sample, repeats = (0.0, 1) if smoke else (0.5, 3)

    def on_row(rows):
        print(f"steps: {rows[-1]['model']} masked {rows[-1]['masked']['steps_per_second']:.0f}"
              f" steps/s, masked/dense {rows[-1]['masked_over_dense_time']:.3f}", flush=True)
        report.record("steps", rows)

    steps.measure_cases(cases, sample, repeats, on_row)


def run_chunks(report: Report, smoke: bool) -> None:
    lenet = steps.smoke_cases()[0] if smoke else steps.CASES[0]
    lengths = (1, 4) if smoke else CHUNK_LENGTHS
    sample, repeats = (0.0, 1) if smoke else (0.5, 3)
    report.record("chunks", steps.chunk_length_study(lenet, lengths, sample, repeats))


def run_pipeline(report: Report, smoke: bool) -> None:
    missing = feed.missing_packages()
    if missing:
        report.skip("pipeline", f"{', '.join(missing)} not installed")
        return
    resnet50 = next((r for r in report.data.get("steps", []) if r["model"] == "resnet50"),
                    None)
    if smoke:
        result = feed.measure(images=8, batch=4, size=32, epochs=1)
    else:
        threads = backend_defaults.reader_threads(backend_defaults.AUTO)
        result = feed.measure(images=max(512, 64 * threads), batch=256, size=224, epochs=2)
    if resnet50 is not None:
        consumed = resnet50["masked"]["images_per_second"]
        result.update({"resnet50_images_per_second": consumed,
                       "delivered_over_consumed": result["images_per_second"] / consumed})
    report.record("pipeline", result)


def run_reproductions(report: Report, wanted: list[str], data_dir: pathlib.Path,
                      smoke: bool) -> None:
    todo = []
    for repro in reproduce.REPRODUCTIONS:
        if repro.name not in wanted:
            continue
        if not (data_dir / repro.data_file).is_file():
            report.skip(repro.name, f"no {repro.data_file} in {data_dir}")
        else:
            todo.append(repro)
    with tempfile.TemporaryDirectory(prefix="accelerator-") as workroot:
        for i, repro in enumerate(todo):
            share = report.left() / (len(todo) - i)  # the last one takes all that is left
            if share < 10:
                report.skip(repro.name, f"{share:.0f} s of the budget left")
                continue
            result = reproduce.reproduce(
                repro, data_dir, pathlib.Path(workroot), share,
                extra=SMOKE_REPRO if smoke else None, steps=SMOKE_STEPS if smoke else None,
                max_levels=1 if smoke else None, max_replicates=1 if smoke else None)
            if "skipped" in result:
                report.skip(repro.name, result["skipped"])
            report.record(repro.name, result)
            print(f"{repro.name}: {result.get('status', 'skipped')} "
                  f"{result.get('goal', '')}", flush=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--budget_s", type=float, default=480.0,
                        help="wall seconds for everything; reproductions use what is left")
    parser.add_argument("--data_dir", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--parts", default=None,
                        help=f"comma-separated, from {','.join(PARTS)} (default: all)")
    parser.add_argument("--smoke", action="store_true", help="every part at toy size")
    args = parser.parse_args(argv)
    if args.parts is None and not args.smoke and jax.default_backend() == "cpu":
        parser.error("JAX sees only a CPU: the full sizes (ResNet-50 at 224 px, batch 256; "
                     "P2's 50,000-iteration runs) are for accelerators. Use --smoke, or "
                     "name the parts to run with --parts.")
    wanted = [p for p in (args.parts or ",".join(PARTS)).split(",") if p]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown {unknown}; choose from {PARTS}")
    report = Report(args.out, args.budget_s, args.smoke)
    print(json.dumps(report.data["environment"]), flush=True)
    for part, run in (("steps", run_steps), ("chunks", run_chunks),
                      ("pipeline", run_pipeline)):
        if part in wanted:
            with report.timed(part):
                run(report, args.smoke)
    with report.timed("reproductions"):
        run_reproductions(report, wanted, args.data_dir, args.smoke)
    report.write()
    print(markdown(report.data), flush=True)
    return report.data


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
