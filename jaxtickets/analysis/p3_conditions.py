"""Which of P3's lottery-ticket conditions finished runs satisfy (P3 App. B and C).

    python -m jaxtickets.analysis.p3_conditions --workdirs W1 [W2 ...] [--well_trained W] \\
        [--approx 0.5] [--gap 1.0] [--min_sparsity 0.5] [--metric M] [--json OUT]

P3 leaves "approximately equal" and "a clear gap" undefined (docs/choices.md#p3-thresholds): both are
thresholds in percentage points. Each workdir is one LR of the same experiment. Per source
and pruned level, accuracies are means over replicates (and a control's draws): "ticket"
is the subnetwork (LT at rewind step 0, else WR), "random_reinit" RR, "small_dense" SD,
level 0's ticket the dense PRE (a source without one borrows the evaluation source's). A test holds when its margin (how
far past the threshold: pp, steps for T' <= T) is >= 0; a missing branch makes it n/a,
and any conjunction with an n/a part too.

* lth, per workdir (App. C): A_LT >= A_PRE - approx; A_LT - A_SD >= gap; A_LT - A_RR >= gap;
  T' <= T (train steps of the ticket and of PRE).
* jackpot, over the workdirs (App. B): (1) 1 - density >= min_sparsity; (2) best-LR A_sub -
  best-LR A_SD >= gap; (3) some LR's A_sub - (max over all LRs of A_RR) >= gap; (4) some
  LR's A_sub >= its A_PRE - approx; (5) some LR's A_sub >= A_well - approx, A_well = the
  best PRE of the workdirs or that of --well_trained.

A missing or unreadable file stops the CLI with one line naming it and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import sys
from collections import defaultdict
from typing import Optional, Sequence

from jaxtickets.checkpoints import CheckpointError, read_json, write_json

METRICS = ("test_accuracy", "early_stop_test_accuracy")
BRANCHES = ("ticket", "random_reinit", "small_dense")
LTH_HEADER = ("level", "% remaining", "n LT/PRE/SD/RR", "LT ≈ PRE", "LT > SD", "LT > RR",
              "T' ≤ T", "LTH")
JACKPOT_TESTS = ("sparsity", "beats_sd", "beats_rr_any_lr", "approx_pre_same_lr",
                 "approx_well_trained", "all")
JACKPOT_HEADER = ("level", "% remaining", "(1) sparsity", "(2) > SD", "(3) > RR (any LR)",
                  "(4) ≈ PRE (same LR)", "(5) ≈ well-trained", "all")


class ConditionsError(ValueError):
    """A workdir or results file that cannot be checked; the message names it."""


@dataclasses.dataclass(frozen=True)
class Mean:
    """One (workdir, source, level, branch): means over its n runs (replicates x draws),
    accuracy in pp."""
    acc: float
    n: int
    steps: Optional[float]
    density: float


def load_run(workdir: str | pathlib.Path) -> dict:
    """{"results", "config", "workdir"} of a finished run; a missing file raises
    ConditionsError naming it, a damaged one CheckpointError."""
    workdir = pathlib.Path(workdir)
    files = {}
    for name in ("results.json", "config.json"):
        path = workdir / name
        if not path.is_file():
            raise ConditionsError(f"{path}: no such file (is {workdir} a finished run's "
                                  "workdir?)")
        files[name] = read_json(path)
    config = files["config.json"]
    if isinstance(config, dict) and isinstance(config.get("config"), dict):
        config = config["config"]  # a workdir's config.json also stores its identity
    return {"results": files["results.json"], "config": config, "workdir": str(workdir)}


def learning_rate(run: dict) -> Optional[float]:
    try:
        return float(run["config"]["train"]["learning_rate"])
    except (KeyError, TypeError, ValueError):
        return None


def _cells(run: dict, metric: str) -> dict[tuple[str, int, str], Mean]:
    """(source, level, branch) -> Mean over the rows of the branches P3 compares."""
    results = run.get("results")
    rows = results.get("rows") if isinstance(results, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ConditionsError(f"{run['workdir']}: results.json has no 'rows'")
    groups: dict[tuple[str, int, str], list[dict]] = defaultdict(list)
    for i, row in enumerate(rows):
        try:
            key = (str(row.get("source_name", row.get("source"))), int(row["level"]),
                   str(row["branch"]))
            if key[2] not in BRANCHES or (key[1] == 0 and key[2] != "ticket"):
                continue
            value = row[metric]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{metric} = {value!r} is not a number")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConditionsError(f"{run['workdir']}: rows[{i}]: {e}") from None
        groups[key].append(row)
    out = {}
    for key, members in groups.items():
        n = len(members)
        steps = [r["train_steps"] for r in members if "train_steps" in r]
        out[key] = Mean(acc=100.0 * sum(r[metric] for r in members) / n, n=n,
                        steps=sum(steps) / n if len(steps) == n else None,
                        density=sum(float(r.get("density", math.nan)) for r in members) / n)
    return out


def _pre(run: dict, cells: dict, source: str) -> Optional[Mean]:
    """The source's dense run, else the evaluation source's (it trained the dense net)."""
    described = run["results"].get("sources") or {}
    for name in [source] + sorted(n for n, d in described.items()
                                  if (d or {}).get("is_evaluation")):
        if (name, 0, "ticket") in cells:
            return cells[(name, 0, "ticket")]
    return None


def _test(margin: Optional[float]) -> dict:
    if margin is None or math.isnan(margin):
        return {"holds": None, "margin": None}
    margin = round(margin, 9) + 0.0  # exactly on the threshold holds; no -0.0
    return {"holds": margin >= 0, "margin": margin}


def _all(tests: dict) -> dict:
    parts = [t["holds"] for t in tests.values()]
    return {"holds": None if None in parts else all(parts), "margin": None}


def _margin(a: Optional[float], b: Optional[float], offset: float) -> Optional[float]:
    return None if a is None or b is None else a - b + offset


def _best(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _field(m: Optional[Mean], name: str = "acc") -> Optional[float]:
    return None if m is None else getattr(m, name)


def _lth(sub: Optional[Mean], pre: Optional[Mean], sd: Optional[Mean], rr: Optional[Mean],
         approx: float, gap: float) -> dict:
    tests = {"approx_pre": _test(_margin(_field(sub), _field(pre), approx)),
             "beats_sd": _test(_margin(_field(sub), _field(sd), -gap)),
             "beats_rr": _test(_margin(_field(sub), _field(rr), -gap)),
             "steps": _test(_margin(_field(pre, "steps"), _field(sub, "steps"), 0.0))}
    named = {"lt": sub, "pre": pre, "sd": sd, "rr": rr}
    return {"n": {k: _field(m, "n") for k, m in named.items()},
            "accuracy": {k: _field(m) for k, m in named.items()},
            "tests": {**tests, "lth": _all(tests)}}


def _jackpot(get: list[dict], pres: list, density: float, a_well: Optional[float],
             approx: float, gap: float, min_sparsity: float) -> dict:
    best = {b: _best(_field(g[b]) for g in get) for b in BRANCHES}
    sub = best["ticket"]
    same_lr = _best(_margin(_field(g["ticket"]), _field(pre), approx)
                    for g, pre in zip(get, pres))
    tests = {"sparsity": _test(100.0 * (1.0 - density - min_sparsity)),
             "beats_sd": _test(_margin(sub, best["small_dense"], -gap)),
             "beats_rr_any_lr": _test(_margin(sub, best["random_reinit"], -gap)),
             "approx_pre_same_lr": _test(same_lr),
             "approx_well_trained": _test(_margin(sub, a_well, approx))}
    return {"jackpot": {**tests, "all": _all(tests)}, "best_subnetwork": sub,
            "best_small_dense": best["small_dense"],
            "max_random_reinit": best["random_reinit"]}


def _rewind_step(runs: list[dict], source: str) -> Optional[int]:
    for run in runs:
        try:
            return int(run["results"]["sources"][source]["rewind"]["step"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def check_conditions(runs: list[dict], approx: float = 0.5, gap: float = 1.0,
                     min_sparsity: float = 0.5, metric: str = "test_accuracy",
                     well_trained: Optional[dict] = None) -> dict:
    """P3's conditions for loaded runs ({"results", "config", "workdir"} each, one per
    LR); `well_trained` is a run whose dense accuracy is A_well. A JSON-ready dict."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    for name, value in (("approx", approx), ("gap", gap), ("min_sparsity", min_sparsity)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    if not runs:
        raise ConditionsError("no workdirs to check")
    cells = [_cells(run, metric) for run in runs]
    well = (well_trained, _cells(well_trained, metric)) if well_trained else None
    out: dict = {"parameters": {"approx": approx, "gap": gap, "min_sparsity": min_sparsity,
                                "metric": metric,
                                "well_trained": well and well[0]["workdir"]},
                 "workdirs": [{"workdir": r["workdir"], "learning_rate": learning_rate(r)}
                              for r in runs], "sources": {}}
    for source in sorted({key[0] for c in cells for key in c}):
        pres = [_pre(run, c, source) for run, c in zip(runs, cells)]
        a_well = _field(_pre(*well, source)) if well else _best(map(_field, pres))
        levels = []
        for level in sorted({k[1] for c in cells for k in c if k[0] == source} - {0}):
            get = [{b: c.get((source, level, b)) for b in BRANCHES} for c in cells]
            found = [m for g in get for m in g.values() if m is not None]
            density = sum(m.density for m in found) / len(found)
            lth = [{"workdir": run["workdir"], "learning_rate": learning_rate(run),
                    **_lth(g["ticket"], pre, g["small_dense"], g["random_reinit"],
                           approx, gap)} for run, g, pre in zip(runs, get, pres)]
            levels.append({"level": level, "density": density, "lth": lth,
                           **_jackpot(get, pres, density, a_well, approx, gap,
                                      min_sparsity)})
        step = _rewind_step(runs, source)
        out["sources"][source] = {
            "rewind_step": step, "well_trained_accuracy": a_well, "levels": levels,
            "kind": "?" if step is None else "LT" if step == 0 else "WR"}
    return out


def _cell(test: dict, unit: str = "{:+.2f}") -> str:
    if test["holds"] is None:
        return "n/a"
    word = "yes" if test["holds"] else "no"
    return word if test["margin"] is None else f"{word} ({unit.format(test['margin'])})"


def _table(title: str, header: Sequence[str], rows: list[list[str]]) -> list[str]:
    return [title, ""] + ["| " + " | ".join(r) + " |"
                          for r in [list(header), ["---"] * len(header)] + rows] + [""]


def format_markdown(result: dict) -> str:
    """Per source: an LTH table per workdir (LR), then the Jackpot table over them all."""
    p = result["parameters"]
    lines = [f"P3 conditions on {p['metric']}: approx = {p['approx']:g} pp, gap = "
             f"{p['gap']:g} pp, min_sparsity = {p['min_sparsity']:g}. Cells: yes/no "
             "(margin past the threshold: pp of accuracy or sparsity, steps for T' <= T) "
             "or n/a.", ""]
    for source, info in result["sources"].items():
        step = "?" if info["rewind_step"] is None else info["rewind_step"]
        lines += [f"## {source} ({info['kind']}, rewind step {step})", ""]
        where = [[str(lv["level"]), f"{100 * lv['density']:.2f}"] for lv in info["levels"]]
        for k, w in enumerate(result["workdirs"]):
            rows = []
            for lv, first in zip(info["levels"], where):
                t, n = lv["lth"][k]["tests"], lv["lth"][k]["n"]
                counts = "/".join("-" if n[b] is None else str(n[b])
                                  for b in ("lt", "pre", "sd", "rr"))
                rows.append(first + [counts, _cell(t["approx_pre"]), _cell(t["beats_sd"]),
                                     _cell(t["beats_rr"]), _cell(t["steps"], "{:+.0f}"),
                                     _cell(t["lth"])])
            lr = "?" if w["learning_rate"] is None else f"{w['learning_rate']:g}"
            lines += _table(f"LTH (App. C), lr {lr}: {w['workdir']}", LTH_HEADER, rows)
        well = info["well_trained_accuracy"]
        rows = [first + [_cell(lv["jackpot"][name]) for name in JACKPOT_TESTS]
                for lv, first in zip(info["levels"], where)]
        lines += _table(f"Jackpot (App. B) over {len(result['workdirs'])} workdir(s); "
                        f"A_well = {'n/a' if well is None else f'{well:.2f}'}",
                        JACKPOT_HEADER, rows)
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jaxtickets.analysis.p3_conditions",
                                description="Check P3's LTH and Jackpot conditions "
                                            "(App. B, C) on finished runs.")
    p.add_argument("--workdirs", nargs="+", required=True, metavar="W",
                   help="finished workdirs of one experiment, one per learning rate")
    p.add_argument("--well_trained", metavar="W",
                   help="workdir whose dense accuracy is A_well (default: best dense)")
    p.add_argument("--approx", type=float, default=0.5, help="'≈' tolerance, pp")
    p.add_argument("--gap", type=float, default=1.0, help="'clear gap', pp")
    p.add_argument("--min_sparsity", type=float, default=0.5,
                   help="non-trivial sparsity (fraction pruned)")
    p.add_argument("--metric", choices=METRICS, default="test_accuracy")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        runs = [load_run(w) for w in args.workdirs]
        well = load_run(args.well_trained) if args.well_trained else None
        result = check_conditions(runs, args.approx, args.gap, args.min_sparsity,
                                  args.metric, well)
        print(format_markdown(result))
        if args.json:
            write_json(args.json, result)
            print(f"wrote {args.json}")
    except (ValueError, CheckpointError, OSError) as e:  # ConditionsError is a ValueError
        print("p3_conditions: error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
