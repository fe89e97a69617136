"""The demo notebooks run top to bottom in a real Jupyter kernel at their `test` size.

Each notebook is executed with nbclient in a fresh `python3` kernel (started from this
process, so it inherits JAX_PLATFORMS=cpu and the notebook settings below), then its
outputs are checked: no error, the figures shown inline and saved, the experiment's
results.json holding the expected sources, branches and levels with trained accuracies
far above chance, and the numbers the notebook prints equal to the ones computed here
from results.json's rows.
"""

from __future__ import annotations

import collections
import json
import pathlib
import re

import nbclient  # test dependencies (pyproject's `test` extra): missing means failing
import nbformat
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
CELL_TIMEOUT_S = 600


def _execute(name: str, workdir: pathlib.Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("JAXTICKETS_NOTEBOOK_SIZE", "test")
    monkeypatch.setenv("JAXTICKETS_NOTEBOOK_WORKDIR", str(workdir))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO_ROOT)}})
    client.execute()  # raises CellExecutionError naming the cell on any error
    return nb


def _outputs(nb, output_type=None):
    for cell in nb.cells:
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if output_type is None or out.output_type == output_type:
                    yield out


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for out in _outputs(nb))


def _text(nb) -> str:
    parts = []
    for out in _outputs(nb):
        if out.output_type == "stream":
            parts.append(out.text)
        elif "text/markdown" in out.get("data", {}):
            parts.append(out.data["text/markdown"] + "\n")  # a display ends its line
    return "".join(parts)


def _rows(run_dir: pathlib.Path) -> list[dict]:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema_version"] == 1
    return results["rows"]


def _levels(rows, source_name, branch) -> set[int]:
    return {r["level"] for r in rows if r["source_name"] == source_name and r["branch"] == branch}


TRAINED = ("ticket", "random_reinit", "random_ticket")  # weights trained (not supermasks)


def _check_trained(rows, floor: float) -> None:
    """Every row whose weights were trained beats `floor`."""
    for row in rows:
        if row["branch"] in TRAINED:
            for key in ("test_accuracy", "early_stop_test_accuracy"):
                assert floor < row[key] <= 1.0, (row["source_name"], row["branch"],
                                                 row["level"], key, row[key])


def _row(rows, source_name, branch, level, replicate=0) -> dict:
    (row,) = [r for r in rows if (r["source_name"], r["branch"], r["level"], r["replicate"])
              == (source_name, branch, level, replicate)]
    return row


def _printed(text: str, pattern: str) -> list[tuple[float, ...]]:
    """The numbers of every printed line matching `pattern` (its groups), as floats."""
    return [tuple(float(g) for g in m.groups())
            for m in re.finditer(pattern, text, flags=re.MULTILINE)]


def _percent(value: float) -> object:
    """A fraction as the notebooks print it: percent with 2 decimals (rounding: 0.005)."""
    return pytest.approx(100 * value, abs=0.0051)


NAMES = ["01_find_a_ticket", "02_tickets_without_labels", "03_supermasks",
         "04_your_own_model"]


# ---- the saved notebooks ----------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_saved_clean(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), \
        "save notebooks without outputs"
    first = code[0].source
    for needle in ("REPO_URL", "JAXTICKETS_REPO", "google.colab", "pip", "configs"):
        assert needle in first, needle
    assert "JAXTICKETS_NOTEBOOK_SIZE" in "".join(c.source for c in code)


# ---- executed at the test size ----------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path, monkeypatch):
    nb = _execute(name, tmp_path, monkeypatch)
    # The notebook's workdir: JAXTICKETS_NOTEBOOK_WORKDIR / <notebook> / <SIZE>
    CHECKS[name](nb, tmp_path / name / "test")


def check_01_find_a_ticket(nb, run_dir: pathlib.Path) -> None:
    rows = _rows(run_dir)
    # Seeds 0-4 at this size: every trained row 0.925-0.948 (chance 0.1), so above 0.88.
    _check_trained(rows, 0.88)
    assert {r["branch"] for r in rows} == {"ticket", "random_reinit"}
    assert _levels(rows, "labels", "ticket") == {0, 1, 2}  # smoke: 2 pruning levels
    assert _levels(rows, "labels", "random_reinit") == {1, 2}
    densities = sorted({round(r["density"], 4) for r in rows}, reverse=True)
    assert densities == [1.0, 0.8004, 0.6406]  # P2's LeNet sequence (20%, output 10%)

    assert _images(nb) >= 3  # accuracy plot, per-pixel ticket map, units
    for name in ("accuracy_vs_remaining.png", "ticket_pixels.png", "ticket_units.png"):
        assert (run_dir / "notebook" / name).stat().st_size > 10_000, name
    for name in ("table.md", "accuracy_vs_remaining.png", "compute.md"):
        assert (run_dir / "report" / name).is_file(), name
    text = _text(nb)
    assert "| Remaining | Level | ticket (n=1) | random_reinit (n=1) |" in text
    assert "kept per layer: hidden_0 64.0%, hidden_1 64.0%, output 81.0%" in text
    # The summary cell's numbers (n=1: a cell's mean is the row's value), from the rows.
    dense = _row(rows, "labels", "ticket", 0)["early_stop_test_accuracy"]
    assert _printed(text, r"^dense network: ([\d.]+)%$") == [(_percent(dense),)]
    printed = _printed(text, r"^ *([\d.]+)% remaining: ticket ([\d.]+)% \(([+-][\d.]+) vs "
                             r"dense\), random reinit ([\d.]+)% \(ticket ([+-][\d.]+)\)$")
    expected = []
    for level in (1, 2):
        ticket = _row(rows, "labels", "ticket", level)
        acc = ticket["early_stop_test_accuracy"]
        reinit = _row(rows, "labels", "random_reinit", level)["early_stop_test_accuracy"]
        expected.append((_percent(ticket["density"]), _percent(acc), _percent(acc - dense),
                         _percent(reinit), _percent(acc - reinit)))
    assert printed == expected
    assert printed[1][0] == 64.06  # P2's LeNet sequence: the second level keeps 64.06%


def check_02_tickets_without_labels(nb, run_dir: pathlib.Path) -> None:
    rows = _rows(run_dir)
    # Seeds 0-4 at this size: every trained row 0.908-0.940 (chance 0.1), so above 0.84.
    _check_trained(rows, 0.84)
    assert {r["source_name"] for r in rows} == {"labels", "rotnet"}
    assert _levels(rows, "labels", "ticket") == {0, 1, 2}
    assert _levels(rows, "labels", "random_ticket") == {1, 2}
    assert _levels(rows, "rotnet", "ticket") == {1, 2}
    for row in rows:
        assert row["evaluation"] == "labels:mnist"  # every ticket trained on labels
        if row["source_name"] == "rotnet":
            assert row["generation"]["evaluation"].startswith("rotnet")
            # Seeds 0-4: rotation accuracy 0.958-0.973 (4-way chance 0.25), so above 0.92.
            assert 0.92 < row["generation"]["test_accuracy"] <= 1.0
    assert (run_dir / "source_rotnet" / "replicate_0" / "level_02" / "mask").is_dir()

    assert _images(nb) >= 2  # accuracy plot, masks side by side
    for name in ("accuracy_vs_remaining.png", "masks_first_layer.png"):
        assert (run_dir / "notebook" / name).stat().st_size > 10_000, name
    assert (run_dir / "report" / "table.md").is_file()
    text = _text(nb)
    assert "rotnet:mnist ticket (n=1)" in text
    assert "hidden_0: labels" in text and "RotNet ticket" in text
    # The printed numbers (n=1: a cell's mean is the row's value), from the rows.
    rotation = _printed(text, r"^level (\d+): the RotNet network that found this mask "
                              r"predicts rotations with ([\d.]+)% test accuracy$")
    assert rotation == [(level, _percent(_row(rows, "rotnet", "ticket", level)["generation"][
        "early_stop_test_accuracy"])) for level in (1, 2)]
    final = _printed(text, r"^ *(?:labels ticket|RotNet ticket \(no labels\)|random ticket) "
                           r"at ([\d.]+)% remaining: ([\d.]+) ± [\d.na]+% \(n=1\)$")
    last = [_row(rows, source, branch, 2) for source, branch in (
        ("labels", "ticket"), ("rotnet", "ticket"), ("labels", "random_ticket"))]
    assert final == [(pytest.approx(100 * r["density"], abs=0.051),
                      _percent(r["early_stop_test_accuracy"])) for r in last]
    dense = _row(rows, "labels", "ticket", 0)["early_stop_test_accuracy"]
    assert _printed(text, r"^ *dense network: ([\d.]+)%$") == [(_percent(dense),)]


def check_03_supermasks(nb, run_dir: pathlib.Path) -> None:
    rows = _rows(run_dir)
    # Seeds 0-4 at this size: the dense network 0.918-0.931, so above 0.89.
    _check_trained(rows, 0.89)
    assert {r["source_name"] for r in rows} == {"large_final", "large_final_same_sign"}
    for source in ("large_final", "large_final_same_sign"):
        assert _levels(rows, source, "ticket") == {0}  # only the dense network is trained
        for branch in ("supermask_init", "supermask_constant"):
            assert _levels(rows, source, branch) == set(range(9))  # levels 0..8
    assert _levels(rows, "large_final_same_sign", "learned_supermask_1") == {0}
    untrained = [r for r in rows if r["branch"].startswith("supermask_")]
    assert all(r["train_steps"] == 0 for r in untrained)
    # The unmasked untrained network stays near chance (seeds 0-4: 0.09-0.18).
    assert all(r["test_accuracy"] < 0.3 for r in untrained if r["level"] == 0)

    assert _images(nb) >= 1
    assert (run_dir / "notebook" / "supermasks_vs_remaining.png").stat().st_size > 10_000
    text = _text(nb)
    for title in ("mask x initial weights", "mask x signed constant",
                  "learned mask x initial weights", "trained network"):
        assert f"| {title} |" in text, title
    # The run's row of the comparison table: each replicate's best, averaged, recomputed
    # here from the rows, and far above chance. Seeds 0-4 at this size: mask x init
    # 0.819-0.899, signed constant 0.882-0.917, learned 0.777-0.822, trained 0.918-0.931.
    columns = {"mask x initial weights": (lambda r: r["branch"] == "supermask_init", 0.65),
               "mask x signed constant": (lambda r: r["branch"] == "supermask_constant", 0.81),
               "learned mask x initial weights": (
                   lambda r: r["branch"].startswith("learned_supermask"), 0.68),
               "trained network": (lambda r: r["branch"] == "ticket" and r["level"] == 0, 0.89)}
    (printed,) = _printed(text, r"^\| this run, SIZE=test \(mean of each replicate's best\) "
                                r"\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$")
    for value, (title, (match, floor)) in zip(printed, columns.items()):
        best = collections.defaultdict(float)
        for r in rows:
            if match(r):
                best[r["replicate"]] = max(best[r["replicate"]], r["test_accuracy"])
        expected = sum(best.values()) / len(best)
        assert value == _percent(expected), title
        assert expected > floor, (title, expected)
    # The hand-built supermasks (numpy, outside the driver) at each branch's best level
    # of replicate 0: the accuracy they reach by hand is the one results.json recorded.
    hand = _printed(text, r"^supermask_(?:init|constant) at level (\d+) \(.*\): "
                          r"by hand ([\d.]+)%, recorded ([\d.]+)%$")
    assert len(hand) == 2
    for branch, (level, by_hand, recorded) in zip(("supermask_init", "supermask_constant"),
                                                  hand):
        mine = {r["level"]: r["test_accuracy"] for r in rows if r["replicate"] == 0
                and (r["source_name"], r["branch"]) == ("large_final_same_sign", branch)}
        assert mine[level] == max(acc for lv, acc in mine.items() if lv > 0), branch
        assert by_hand == recorded == _percent(mine[level]), branch


def check_04_your_own_model(nb, run_dir: pathlib.Path) -> None:
    """The library notebook: no experiment driver, so no results.json; its printed
    counts follow the closed form and its accuracies are far above chance."""
    text = _text(nb)
    rows = _printed(text, r"^level (\d+): (\d+)/(\d+) weights \(([\d.]+)%\), "
                          r"test accuracy ([\d.]+)%$")
    # Its CNN: conv 144 + conv 4,608 + dense 200,704 weights lose 20% a level (round half
    # up), the output layer's 1,280 lose 10%.
    assert [r[:3] for r in rows] == [(0, 206736, 206736), (1, 165516, 206736),
                                     (2, 132528, 206736)]
    # Seeds 0-4 at this size (examples/own_model.py, the same loop): 92.5%-95.0%.
    assert all(88.0 < r[4] <= 100.0 for r in rows), rows
    (control,) = _printed(text, r"^([\d.]+)% remaining: ticket ([\d.]+)%, "
                                r"random reinit ([\d.]+)%$")
    assert control[0] == 64.10 and control[1] == rows[-1][4]
    assert 85.0 < control[2] <= 100.0, control  # seed 0: 92.1%
    for line in ("by hand: identical to imp's level 1 mask",
                 "pruned weights after training: exactly zero",
                 "out/kernel: 1,152 of 1,280 kept (90.0%)",
                 "mask round trip: identical (132,528 weights kept)"):
        assert line in text, line
    assert _images(nb) >= 1
    assert (run_dir / "notebook" / "accuracy_vs_remaining.png").stat().st_size > 10_000
    assert (run_dir / "mask").is_dir()


CHECKS = {"01_find_a_ticket": check_01_find_a_ticket,
          "02_tickets_without_labels": check_02_tickets_without_labels,
          "03_supermasks": check_03_supermasks,
          "04_your_own_model": check_04_your_own_model}
