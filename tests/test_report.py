"""`python -m jaxtickets.report`: every number in the tables equals the one recomputed
from results.json with numpy; Markdown cells match the CSV; plots and compute sums exist.

Runs on the shared `smoke_run` (read only) and on synthetic results.json files with several
replicates and two workdirs, so that std and s.e. are not trivially 0.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import re
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from jaxtickets import report

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMPUTE_KEYS = ("wall_seconds", "examples_seen", "train_steps", "train_flops")


# ----------------------------------------------------------------------------- synthetic

def _synthetic_rows(rng, replicates: int, levels: int, source: str, flops: bool) -> list[dict]:
    rows = []
    for rep in range(replicates):
        for level in range(levels + 1):
            density = 0.8 ** level
            for branch in ("ticket", "random_reinit"):
                if branch != "ticket" and level == 0:
                    continue  # controls only on pruned levels, as the driver does
                steps = int(rng.integers(100, 300))
                row = {"replicate": rep, "level": level, "branch": branch, "source": source,
                       "density": density, "kernel_density": density * 0.99,
                       "remaining_weights": round(1000 * density), "prunable_weights": 1000,
                       "test_accuracy": float(rng.uniform(0.8, 0.95)),
                       "early_stop_test_accuracy": float(rng.uniform(0.8, 0.95)),
                       "early_stop_step": int(rng.integers(1, 30)) * 100,
                       "wall_seconds": float(rng.uniform(1, 20)), "train_steps": steps,
                       "examples_seen": 60 * steps,
                       # keys a later schema may add: must be ignored
                       "evaluation": {"something": [1, 2]}, "note": "x"}
                if flops:
                    row["train_flops"] = float(rng.uniform(1e9, 5e9))
                rows.append(row)
    rng.shuffle(rows)  # the report must not depend on row order
    return rows


def _write_results(workdir: pathlib.Path, rows: list[dict]) -> pathlib.Path:
    workdir.mkdir(parents=True)
    (workdir / "results.json").write_text(json.dumps(
        {"schema_version": 1, "experiment": "synthetic", "future_key": 1, "rows": rows}))
    return workdir


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    rng = np.random.default_rng(0)
    base = tmp_path_factory.mktemp("synthetic")
    full = _write_results(base / "full", _synthetic_rows(rng, 4, 4, "labels:cifar10", False))
    subset = _write_results(base / "subset",
                            _synthetic_rows(rng, 3, 4, "labels:cifar10_10pct", True))
    return full, subset


# ----------------------------------------------------------------------------- checks

def _rows_by_column(runs: dict[str, pathlib.Path]):
    """{label: rows} read straight from the JSON, independently of the report's code."""
    return {label: json.loads((w / "results.json").read_text())["rows"]
            for label, w in runs.items()}


def _read_csv(path: pathlib.Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _close(got: str, want: float) -> bool:
    return math.isclose(float(got), want, rel_tol=1e-12, abs_tol=1e-15)


def _check_table_csv(out: pathlib.Path, rows_by_label: dict, metric: str) -> list[dict]:
    lines = _read_csv(out / "table.csv")
    groups = defaultdict(list)
    for label, rows in rows_by_label.items():
        for r in rows:
            groups[(label, r["source"], r["branch"], r["level"])].append(r)
    assert {(l["label"], l["source"], l["branch"], int(l["level"])) for l in lines} == set(groups)
    assert len(lines) == len(groups)
    for line in lines:
        members = groups[(line["label"], line["source"], line["branch"], int(line["level"]))]
        v = np.array([r[metric] for r in members], dtype=np.float64)
        n = v.size
        std = float(np.std(v, ddof=1)) if n > 1 else 0.0
        assert int(line["n"]) == n
        assert line["metric"] == metric
        assert _close(line["mean"], float(np.mean(v)))
        assert _close(line["std"], std)
        assert _close(line["sem"], std / np.sqrt(n))
        assert _close(line["min"], float(np.min(v)))
        assert _close(line["max"], float(np.max(v)))
        assert _close(line["density"], float(np.mean([r["density"] for r in members])))
        assert line["replicates"] == ";".join(str(r) for r in sorted(r["replicate"]
                                                                      for r in members))
    return lines


def _parse_markdown(path: pathlib.Path) -> tuple[list[str], list[list[str]]]:
    table = [l for l in path.read_text().splitlines() if l.startswith("|")]
    split = [[c.strip() for c in l.strip("|").split("|")] for l in table]
    return split[0], [r for r in split[2:]]


def _check_markdown(out: pathlib.Path, lines: list[dict], names: dict[str, tuple],
                    remaining: dict[int, str]) -> None:
    """Every Markdown cell is the CSV's mean ± s.e. in percent (mean alone for n=1)."""
    header, body = _parse_markdown(out / "table.md")
    assert header[:2] == ["Remaining", "Level"]
    columns = []
    for h in header[2:]:
        m = re.fullmatch(r"(.*) \(n=([\d–]+)\)", h)
        assert m, h
        columns.append(names[m.group(1)])
    assert len(columns) == len(names)
    csv_cells = {(l["label"], l["source"], l["branch"], int(l["level"])): l for l in lines}
    assert [int(r[1]) for r in body] == sorted({k[3] for k in csv_cells})
    checked = 0
    for row in body:
        level = int(row[1])
        assert row[0] == remaining[level]
        for column, text in zip(columns, row[2:]):
            line = csv_cells.get((*column, level))
            if line is None:
                assert text == "-"
                continue
            mean, sem = 100 * float(line["mean"]), 100 * float(line["sem"])
            want = f"{mean:.2f}" if int(line["n"]) == 1 else f"{mean:.2f} ± {sem:.2f}"
            assert text == want
            checked += 1
    assert checked == len(lines)


def _check_compute(out: pathlib.Path, rows_by_label: dict) -> None:
    lines = _read_csv(out / "compute.csv")
    groups = defaultdict(list)
    for label, rows in rows_by_label.items():
        for r in rows:
            groups[(label, r["source"], r["branch"])].append(r)
    assert {(l["label"], l["source"], l["branch"]) for l in lines} == set(groups)
    for line in lines:
        members = groups[(line["label"], line["source"], line["branch"])]
        reps = len({r["replicate"] for r in members})
        assert int(line["replicates"]) == reps and int(line["runs"]) == len(members)
        for key in COMPUTE_KEYS:
            if all(key in r for r in members):
                total = float(np.sum([r[key] for r in members], dtype=np.float64))
                assert math.isclose(float(line[f"total_{key}"]), total, rel_tol=1e-12)
                assert math.isclose(float(line[f"per_replicate_{key}"]), total / reps,
                                    rel_tol=1e-12)
            else:
                assert line[f"total_{key}"] == "" and line[f"per_replicate_{key}"] == ""
    assert (out / "compute.md").read_text().count("\n| ") == 1 + len(lines)


def _check_pngs(out: pathlib.Path) -> None:
    for name in ("accuracy_vs_remaining.png", "early_stop_vs_remaining.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


# ----------------------------------------------------------------------------- tests

def test_report_on_smoke_run(smoke_run, tmp_path):
    workdir, _ = smoke_run
    out = tmp_path / "report"
    assert report.main(["--workdir", str(workdir), "--out", str(out)]) == 0
    rows_by_label = _rows_by_column({workdir.name: workdir})
    metric = "early_stop_test_accuracy"
    lines = _check_table_csv(out, rows_by_label, metric)
    source = rows_by_label[workdir.name][0]["source"]
    # LeNet layer-wise 20% / output 10%: not exact powers of 0.8, so three decimals kept
    remaining = {int(l["level"]): f"{float(l['density']):.3f}" for l in lines}
    remaining[0] = "1"
    _check_markdown(out, lines, {"ticket": (workdir.name, source, "ticket"),
                                 "random_reinit": (workdir.name, source, "random_reinit")},
                    remaining)
    _check_compute(out, rows_by_label)
    _check_pngs(out)


@pytest.mark.parametrize("band", ["sem", "minmax"])
def test_report_two_workdirs_replicates(synthetic, tmp_path, band):
    full, subset = synthetic
    out = tmp_path / "report"
    metric = "early_stop_test_accuracy" if band == "sem" else "test_accuracy"
    assert report.main(["--workdir", str(full), "--workdir", str(subset), "--label", "all",
                        "--label", "10pct", "--out", str(out), "--metric", metric,
                        "--band", band]) == 0
    rows_by_label = _rows_by_column({"all": full, "10pct": subset})
    lines = _check_table_csv(out, rows_by_label, metric)
    assert any(float(l["sem"]) > 0 for l in lines)
    names = {f"{label} {source} {branch}": (label, source, branch)
             for label, source in (("all", "labels:cifar10"), ("10pct", "labels:cifar10_10pct"))
             for branch in ("ticket", "random_reinit")}
    # P0's "Remaining" column for exact powers of 0.8
    _check_markdown(out, lines, names, {0: "1", 1: "0.8", 2: "0.64", 3: "0.512", 4: "0.410"})
    _check_compute(out, rows_by_label)
    _check_pngs(out)
    # Only the subset's rows carry train_flops: its compute row has them, the other not.
    compute = {l["label"]: l for l in _read_csv(out / "compute.csv") if l["branch"] == "ticket"}
    assert compute["all"]["total_train_flops"] == "" and compute["10pct"]["total_train_flops"]


def test_step_metric_and_default_labels(synthetic, tmp_path):
    full, subset = synthetic
    out = tmp_path / "report"
    assert report.main(["--workdir", str(full), "--workdir", str(subset), "--out", str(out),
                        "--metric", "early_stop_step", "--band", "std"]) == 0
    lines = _check_table_csv(out, _rows_by_column({"full": full, "subset": subset}),
                             "early_stop_step")
    assert {l["label"] for l in lines} == {"full", "subset"}
    assert "full labels:cifar10 ticket (n=4)" in (out / "table.md").read_text()


def test_level_table_rows_are_sources_and_columns_branches(synthetic, tmp_path):
    full, subset = synthetic
    out = tmp_path / "report"
    assert report.main(["--workdir", str(full), "--workdir", str(subset), "--out", str(out),
                        "--level", "2"]) == 0
    header, *body = [line for line in (out / "level_2.md").read_text().splitlines()
                     if line.startswith("| ")]
    assert header == "| source | ticket | random_reinit |"
    rows = _rows_by_column({"full": full, "subset": subset})
    for line, (label, source) in zip(body, (("full", "labels:cifar10"),
                                            ("subset", "labels:cifar10_10pct"))):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == f"{label} {source}"
        for text, branch in zip(cells[1:], ("ticket", "random_reinit")):
            values = [r["early_stop_test_accuracy"] for r in rows[label]
                      if r["level"] == 2 and r["branch"] == branch]
            mean, n = text.split(" ± ")[0], text.rsplit("(", 1)[1].rstrip(")")
            assert abs(float(mean) - 100 * np.mean(values)) <= 0.005 and int(n) == len(values)
    # --branch keeps only those rows (tables, plots and compute alike).
    only = tmp_path / "only"
    assert report.main(["--workdir", str(full), "--out", str(only), "--level", "2",
                        "--branch", "ticket"]) == 0
    assert "| source | ticket |" in (only / "level_2.md").read_text()
    assert {l["branch"] for l in _read_csv(only / "compute.csv")} == {"ticket"}
    assert report.main(["--workdir", str(full), "--out", str(tmp_path / "x"),
                        "--branch", "nothing"]) == 2
    # A level that no row has stops the report before anything is written.
    assert report.main(["--workdir", str(full), "--out", str(tmp_path / "none"),
                        "--level", "9"]) == 2
    assert not (tmp_path / "none").exists()


def test_missing_and_corrupt_results_exit_2(synthetic, tmp_path, capsys):
    full, _ = synthetic
    missing = tmp_path / "nothing_here"
    missing.mkdir()
    assert report.main(["--workdir", str(full), "--workdir", str(missing),
                        "--out", str(tmp_path / "o1")]) == 2
    assert str(missing / "results.json") in capsys.readouterr().err

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "results.json").write_text('{"schema_version": 1, "rows": [')
    assert report.main(["--workdir", str(corrupt), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert str(corrupt / "results.json") in err and "JSON" in err

    (corrupt / "results.json").write_text(json.dumps(
        {"schema_version": 1, "rows": [{"replicate": 0, "level": 0, "branch": "ticket",
                                        "source": "s", "density": 1.0}]}))
    assert report.main(["--workdir", str(corrupt), "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert str(corrupt / "results.json") in err and "early_stop_test_accuracy" in err

    (corrupt / "results.json").write_text(json.dumps({"schema_version": 2, "rows": []}))
    assert report.main(["--workdir", str(corrupt), "--out", str(tmp_path / "o4")]) == 2
    assert "schema_version 2" in capsys.readouterr().err

    # two workdirs with the same basename need --label
    twin = tmp_path / "other" / full.name
    twin.mkdir(parents=True)
    (twin / "results.json").write_text((full / "results.json").read_text())
    assert report.main(["--workdir", str(full), "--workdir", str(twin),
                        "--out", str(tmp_path / "o5")]) == 2
    assert "--label" in capsys.readouterr().err


def test_density_format_as_in_p0():
    from jaxtickets.analysis.tables import format_density
    got = [format_density(0.8 ** k) for k in (0, 1, 2, 3, 4, 5, 6, 9, 12, 15, 30)]
    assert got == ["1", "0.8", "0.64", "0.512", "0.410", "0.328", "0.262", "0.134", "0.069",
                   "0.035", "0.001"]
    assert format_density(0.8003756574004508) == "0.800"
    assert format_density(0.000524288) == "0.000524"  # below 0.001: 3 significant digits


def test_cli_process_exit_code(tmp_path):
    """The real command line: a missing results.json exits 2 naming the file."""
    proc = subprocess.run([sys.executable, "-m", "jaxtickets.report", "--workdir",
                           str(tmp_path), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert str(tmp_path / "results.json") in proc.stderr
    assert not (tmp_path / "out").exists()
