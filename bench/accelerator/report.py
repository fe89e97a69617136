"""accelerator.json as Markdown: the tables BENCHMARKS.md pastes."""

from __future__ import annotations

from bench.common import table

MIB = 2 ** 20


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.0f}"


def _environment(env: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return (f"backend {env['backend']}, {env['device_count']} x {env['device']}, "
            f"{env['host_cores']} host cores, Python {env['python']}; {versions}")


def _steps(rows: list[dict]) -> str:
    return table(
        ["model", "batch", "dtype", "steps/call", "masked steps/s", "masked images/s",
         "dense steps/s", "masked / dense time", "compile s", "program MiB",
         "process peak MiB"],
        [[r["model"], r["batch"], r["compute_dtype"], r["steps_per_call"],
          r["masked"]["steps_per_second"], r["masked"]["images_per_second"],
          r["dense"]["steps_per_second"], r["masked_over_dense_time"],
          r["masked"]["compile_seconds"], _mib(r["masked"]["program_bytes"]),
          _mib(r["process_peak_bytes"])] for r in rows])


def _chunks(rows: list[dict]) -> str:
    return table(["model", "batch", "steps/call", "masked steps/s"],
                 [[r["model"], r["batch"], r["steps_per_call"], r["steps_per_second"]]
                  for r in rows])


def _pipeline(p: dict) -> str:
    text = (f"{p['images_per_second']:.0f} images/s delivered ({p['reader_threads']} reader "
            f"threads, batch {p['batch']}, {p['size']} px)")
    if "delivered_over_consumed" in p:
        text += (f"; masked ResNet-50 consumes {p['resnet50_images_per_second']:.0f}: "
                 f"delivered / consumed {p['delivered_over_consumed']:.2f}")
    return text


def _reproduction(r: dict) -> str:
    head = (f"**{r['title']}** (`{r['config']}`): {r['levels']} levels x {r['replicates']} "
            f"replicate(s) of {r['steps_per_run']} iterations, {r['status']} in "
            f"{r['wall_seconds']:.0f} s (calibration {r['calibration']['wall_seconds']:.0f} s)")
    if "rows" not in r:
        return head
    rows = table(["replicate", "level", "branch", "remaining %", "early-stop step",
                  "early-stop test acc %", "final test acc %", "wall s"],
                 [[x["replicate"], x["level"], x["branch"], 100 * x["density"],
                   x["early_stop_step"], 100 * x["early_stop_test_accuracy"],
                   100 * x["test_accuracy"], x["wall_seconds"]] for x in r["rows"]])
    return f"{head}\n\n{rows}\n\ngoal: {_goal(r['goal'])}"


def _goal(goal: dict) -> str:
    if not goal["checked"]:
        return f"not checked ({goal['why']})"
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in goal.items() if k != "checked")


def markdown(data: dict) -> str:
    parts = [f"### accelerator check{' (smoke)' if data['smoke'] else ''}",
             _environment(data["environment"])]
    if "steps" in data:
        parts.append(_steps(data["steps"]))
    if "chunks" in data:
        parts.append(_chunks(data["chunks"]))
    if "pipeline" in data:
        parts.append("pipeline: " + _pipeline(data["pipeline"]))
    for name in ("p2_lenet", "p2_conv2"):
        if name in data and "title" in data[name]:
            parts.append(_reproduction(data[name]))
    for part, why in data["skipped"].items():
        parts.append(f"skipped {part}: {why}")
    parts.append(f"elapsed {data.get('elapsed_s', 0):.0f} s of a {data['budget_s']:.0f} s "
                 "budget")
    return "\n\n".join(parts) + "\n"
