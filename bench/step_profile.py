r"""Target 3 (issue 6), where the time goes: jaxtickets' compiled Conv-x train step and
the PyTorch loop of `bench.conv4_vs_torch`, each profiled op by op, summed per kind.

JAX's profiler times every XLA op (thunk) of the step; the compiled HLO says what each
op is: a forward convolution, an input-gradient or kernel-gradient convolution (the
kernel gradient's window spans the whole image), a dense-layer dot, a layout transpose
or copy, or anything else (elementwise fusions, reductions, the optimizer). PyTorch's
profiler does the same for its aten ops. A kind's time is summed over threads: XLA may
run independent ops at once on its CPU threads, so the kinds together can exceed the
wall time of a step. Run it beside `XLA_FLAGS=...` to see what a
flag moves, e.g. `--xla_cpu_experimental_ynn_fusion_type=` (XLA's Eigen convolutions
instead of YNNPACK's).

  python -m bench.step_profile [--model conv4] [--steps 3] [--no-torch]
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
import time

import jax
import numpy as np

from bench.common import table
from bench.conv4_vs_torch import BATCH, EXAMPLES, WIDTHS, torch_loop
from bench.masked_step import step_variants

KINDS = ("forward convolutions", "input-gradient convolutions",
         "kernel-gradient convolutions", "dense-layer dots", "layout transposes and copies",
         "everything else")
BACKWARD = "backward convolutions (both gradients)"
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{$")
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_WINDOW = re.compile(r"window=\{size=([\dx]+)")
_SHAPE = re.compile(r"^\(?\w+\[([\d,]*)\]")


def parse_hlo(text: str) -> tuple[dict, dict]:
    """(instruction name -> its line, computation name -> the lines of its body)."""
    lines, bodies, current = {}, collections.defaultdict(list), None
    for line in text.splitlines():
        head = _COMPUTATION.match(line)
        if head:
            current = head.group(1)
            continue
        inst = _INSTRUCTION.match(line)
        if inst:
            lines[inst.group(1)] = inst.group(2)
            bodies[current].append(inst.group(2))
    return lines, bodies


def _conv_kind(conv: str, gradient: bool) -> str:
    """A convolution whose window is larger than its output's spatial extent sums over
    the whole image: that is a kernel gradient (its output has the kernel's shape)."""
    window = [int(v) for v in _WINDOW.search(conv).group(1).split("x")]
    out = [int(v) for v in _SHAPE.match(conv).group(1).split(",")]
    if np.prod(window) > np.prod(out[1:1 + len(window)]):
        return KINDS[2]
    return KINDS[1] if gradient else KINDS[0]


def compiled_hlo(run) -> str:
    """The optimized HLO of a `bench.masked_step` variant's compiled train chunk."""
    return run.steps.train_chunk.lower(run.holder["state"], *run.args).compile().as_text()


def with_fused_body(line: str, bodies: dict) -> list[str]:
    """An op's HLO line followed by the lines of the computation it calls (a fusion's
    body), if any."""
    called = _CALLS.search(line)
    return [line] + (bodies.get(called.group(1), []) if called else [])


def classify(name: str, line: str, bodies: dict) -> str:
    """The kind of one top-level op, from its name, its HLO line and its fused body."""
    op_lines = with_fused_body(line, bodies)
    convs = [c for c in op_lines if " convolution(" in c]
    if convs:  # a fusion's gradient tag (op_name=".../transpose(jvp())/...") may sit
        # on the fusion's line or on the convolution's own
        return _conv_kind(convs[0], any("transpose(" in c for c in (line, convs[0])))
    if any(" dot(" in c for c in op_lines):
        return KINDS[3]
    if re.match(r"(transpose|copy)", name) or "transpose_copy" in name:
        return KINDS[4]
    return KINDS[5]


def jax_profile(model: str, steps: int) -> tuple[dict, dict, float]:
    """({kind: ms per step}, {kind: number of distinct ops}, wall ms per step)."""
    run = step_variants(model, BATCH, 1, steps, examples=EXAMPLES)["masked"]
    run()  # compile
    lines, bodies = parse_hlo(compiled_hlo(run))
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            run()
        wall = (time.perf_counter() - start) * 1e3 / steps
        (trace,) = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
        with gzip.open(trace) as f:
            events = json.load(f)["traceEvents"]
    ms, ops = collections.Counter(), collections.defaultdict(set)
    for event in events:
        name = event.get("name")
        if event.get("ph") == "X" and name in lines:
            kind = classify(name, lines[name], bodies)
            ms[kind] += event["dur"] / 1e3 / steps
            ops[kind].add(name)
    return dict(ms), {k: len(v) for k, v in ops.items()}, wall


def torch_kind(op: str) -> str:
    if op == "aten::mkldnn_convolution":
        return KINDS[0]
    if op == "aten::convolution_backward":
        return BACKWARD
    if op in ("aten::mm", "aten::addmm"):
        return KINDS[3]
    if op in ("aten::copy_", "aten::permute", "aten::contiguous", "aten::clone"):
        return KINDS[4]
    return KINDS[5]


def torch_profile(model: str, steps: int) -> tuple[dict, float]:
    """({kind: self-CPU ms per step}, wall ms per step) of the PyTorch loop."""
    from torch.profiler import ProfilerActivity, profile

    run = torch_loop(steps, widths=WIDTHS[model])
    run()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    wall = (time.perf_counter() - start) * 1e3 / steps
    ms = collections.Counter()
    for avg in prof.key_averages():
        if avg.key.startswith("aten::"):
            ms[torch_kind(avg.key)] += avg.self_cpu_time_total / 1e3 / steps
    return dict(ms), wall


def rows(jax_ms: dict, jax_ops: dict, jax_wall: float, torch_ms: dict | None,
         torch_wall: float | None) -> list[list]:
    """One row per kind; PyTorch runs both convolution gradients in one op, so its
    backward is only reported whole ('-' where a side has no such figure)."""
    def theirs(kind):
        if torch_ms is None or kind in KINDS[1:3]:
            return "-"
        return torch_ms.get(kind, 0.0)

    out = [[kind, jax_ops.get(kind, 0), jax_ms.get(kind, 0.0), theirs(kind)]
           for kind in KINDS]
    out.append([BACKWARD, "", jax_ms.get(KINDS[1], 0.0) + jax_ms.get(KINDS[2], 0.0),
                theirs(BACKWARD)])
    out.append(["sum of the ops", "", sum(jax_ms.values()),
                "-" if torch_ms is None else sum(torch_ms.values())])
    out.append(["wall time per step", "", jax_wall, "-" if torch_wall is None else torch_wall])
    return out


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv4", choices=sorted(WIDTHS))
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--no-torch", action="store_true", help="profile jaxtickets only")
    args = parser.parse_args(argv)
    jax_ms, jax_ops, jax_wall = jax_profile(args.model, args.steps)
    torch_ms, torch_wall = (None, None) if args.no_torch else torch_profile(
        args.model, args.steps)
    out = table(["ms per step", "XLA ops", "jaxtickets", "PyTorch"],
                rows(jax_ms, jax_ops, jax_wall, torch_ms, torch_wall))
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
