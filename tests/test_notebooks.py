"""The demo notebooks run top to bottom in a real Jupyter kernel at their `test` size.

Each notebook is executed with nbclient in a fresh `python3` kernel (started from this
process, so it inherits JAX_PLATFORMS=cpu and the notebook settings below), then its
outputs are checked: no error, the figures shown inline and saved, and the experiment's
results.json holding the expected sources, branches and levels with real accuracies.
"""

from __future__ import annotations

import json
import pathlib

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
            parts.append(out.data["text/markdown"])
    return "".join(parts)


def _rows(run_dir: pathlib.Path) -> list[dict]:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema_version"] == 1
    return results["rows"]


def _levels(rows, source_name, branch) -> set[int]:
    return {r["level"] for r in rows if r["source_name"] == source_name and r["branch"] == branch}


def _check_accuracies(rows, keys=("test_accuracy", "early_stop_test_accuracy")) -> None:
    for row in rows:
        for key in keys:
            assert 0.0 < row[key] <= 1.0, (row["source_name"], row["branch"], row["level"], key)


NAMES = ["01_find_a_ticket", "02_tickets_without_labels", "03_supermasks"]


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
    _check_accuracies(rows)
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
    assert "64.06% remaining: ticket" in text  # the summary cell read the results
    assert "kept per layer: hidden_0 64.0%, hidden_1 64.0%, output 81.0%" in text


def check_02_tickets_without_labels(nb, run_dir: pathlib.Path) -> None:
    rows = _rows(run_dir)
    _check_accuracies(rows)
    assert {r["source_name"] for r in rows} == {"labels", "rotnet"}
    assert _levels(rows, "labels", "ticket") == {0, 1, 2}
    assert _levels(rows, "labels", "random_ticket") == {1, 2}
    assert _levels(rows, "rotnet", "ticket") == {1, 2}
    for row in rows:
        assert row["evaluation"] == "labels:mnist"  # every ticket trained on labels
        if row["source_name"] == "rotnet":
            assert row["generation"]["evaluation"].startswith("rotnet")
            assert 0.25 < row["generation"]["test_accuracy"] <= 1.0  # above 4-way chance
    assert (run_dir / "source_rotnet" / "replicate_0" / "level_02" / "mask").is_dir()

    assert _images(nb) >= 2  # accuracy plot, masks side by side
    for name in ("accuracy_vs_remaining.png", "masks_first_layer.png"):
        assert (run_dir / "notebook" / name).stat().st_size > 10_000, name
    assert (run_dir / "report" / "table.md").is_file()
    text = _text(nb)
    assert "rotnet:mnist ticket (n=1)" in text
    assert "predicts rotations with" in text
    assert "hidden_0: labels" in text and "RotNet ticket" in text


def check_03_supermasks(nb, run_dir: pathlib.Path) -> None:
    rows = _rows(run_dir)
    _check_accuracies(rows, keys=("test_accuracy",))
    assert {r["source_name"] for r in rows} == {"large_final", "large_final_same_sign"}
    for source in ("large_final", "large_final_same_sign"):
        assert _levels(rows, source, "ticket") == {0}  # only the dense network is trained
        for branch in ("supermask_init", "supermask_constant"):
            assert _levels(rows, source, branch) == set(range(9))  # levels 0..8
    assert _levels(rows, "large_final_same_sign", "learned_supermask_1") == {0}
    untrained = [r for r in rows if r["branch"].startswith("supermask_")]
    assert all(r["train_steps"] == 0 for r in untrained)
    # the sparse supermasks beat chance by far, the unmasked untrained network does not
    assert max(r["test_accuracy"] for r in untrained) > 0.5
    assert all(r["test_accuracy"] < 0.3 for r in untrained if r["level"] == 0)

    assert _images(nb) >= 1
    assert (run_dir / "notebook" / "supermasks_vs_remaining.png").stat().st_size > 10_000
    text = _text(nb)
    for title in ("mask x initial weights", "mask x signed constant",
                  "learned mask x initial weights", "trained network"):
        assert f"| {title} |" in text, title
    assert "| P4 Table 1 (MNIST FC) | 79.3 | 86.3 | 95.3 | 97.7 |" in text
    # the hand-built supermasks reproduce the recorded accuracies
    hand = [line for line in text.splitlines() if ": by hand " in line]
    assert len(hand) == 2
    for line in hand:
        by_hand = line.split("by hand ")[1].split("%")[0]
        recorded = line.split("recorded ")[1].split("%")[0]
        assert by_hand == recorded, line


CHECKS = {"01_find_a_ticket": check_01_find_a_ticket,
          "02_tickets_without_labels": check_02_tickets_without_labels,
          "03_supermasks": check_03_supermasks}
