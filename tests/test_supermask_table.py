"""P4 Table 1's summary: the best supermask per kind, over trajectories and levels."""

from __future__ import annotations

import pytest

from jaxtickets import checkpoints
from jaxtickets.analysis.supermask_table import best_cells, main, markdown

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def _row(source, level, branch, acc, replicate=0, density=1.0):
    return {"source_name": source, "level": level, "branch": branch, "test_accuracy": acc,
            "replicate": replicate, "density": density}


ROWS = [
    _row("lf", 0, "ticket", 0.97), _row("lf", 0, "ticket", 0.99, replicate=1),
    _row("lf", 0, "supermask_init", 0.10),
    _row("lf", 3, "supermask_init", 0.40, density=0.5),
    _row("lf", 3, "supermask_init", 0.90, replicate=1, density=0.5),
    _row("ss", 3, "supermask_init", 0.80, density=0.5),
    _row("ss", 3, "supermask_init", 0.70, replicate=1, density=0.5),
    _row("ss", 5, "supermask_constant", 0.86, density=0.3),
    _row("lf", 0, "learned_supermask_1", 0.95, density=0.6),
    _row("lf", 0, "learned_supermask_-1", 0.93, density=0.3),
    _row("lf", 2, "ticket", 0.995),  # a pruned ticket is not the trained network
]


def test_best_cells_take_the_replicate_mean_maximum():
    cells = best_cells(ROWS)
    assert cells["mask x initial weights"]["accuracy"] == pytest.approx(0.75)
    assert cells["mask x initial weights"]["source"] == "ss"
    assert cells["mask x initial weights"]["n"] == 2
    assert cells["mask x signed constant"]["accuracy"] == pytest.approx(0.86)
    assert cells["learned mask x initial weights"]["branch"] == "learned_supermask_1"
    assert cells["trained network"]["accuracy"] == pytest.approx(0.98)
    # Each replicate's own best level, averaged: (0.80 + 0.90) / 2.
    assert cells["mask x initial weights"]["replicate_best"] == pytest.approx(0.85)
    assert cells["trained network"]["replicate_best"] == pytest.approx(0.98)
    text = markdown(cells)
    assert ("| mask x initial weights | 75.00 | ss level 3 supermask_init | 50.0 | 2 | 85.00 |"
            in text)


def test_cli_reads_results_and_names_a_missing_file(tmp_path, capsys):
    checkpoints.write_json(tmp_path / "results.json", {"rows": ROWS})
    assert main(["--workdir", str(tmp_path)]) == 0
    assert "trained network | 98.00" in capsys.readouterr().out
    assert main(["--workdir", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
