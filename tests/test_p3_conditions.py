"""P3's LTH and Jackpot conditions on hand-made results: each test holds or fails by a
known margin, thresholds move results across the boundary, missing branches give n/a,
conditions (3)-(5) combine two learning rates, and the CLI reads real workdir files."""

from __future__ import annotations

import pytest

from jaxtickets.analysis import p3_conditions as p3
from jaxtickets.checkpoints import read_json, write_json

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

T = 1000  # total steps of every run here


def _rows(source: str, accs: dict, density: float = 0.2, steps: dict | None = None,
          early: float = 0.0) -> list[dict]:
    """accs: (level, branch) -> accuracies (fractions), one per replicate."""
    rows = []
    for (level, branch), values in accs.items():
        for rep, acc in enumerate(values):
            rows.append({"source_name": source, "source": f"{source} description",
                         "replicate": rep, "level": level, "branch": branch,
                         "density": 1.0 if level == 0 else density, "test_accuracy": acc,
                         "early_stop_test_accuracy": acc + early, "start_step": 0,
                         "train_steps": (steps or {}).get((level, branch), T)})
    return rows


def _run(workdir: str, lr: float, rows: list[dict], rewind: dict | None = None,
         evaluation: str = "imp") -> dict:
    names = sorted({r["source_name"] for r in rows})
    sources = {n: {"rewind": {"step": (rewind or {}).get(n, 0)}, "total_steps": T,
                   "is_evaluation": n == evaluation} for n in names}
    return {"results": {"schema_version": 1, "rows": rows, "sources": sources},
            "config": {"train": {"learning_rate": lr}}, "workdir": workdir}


def _base(**drop) -> dict:
    accs = {(0, "ticket"): [0.89, 0.91], (1, "ticket"): [0.897, 0.899],
            (1, "small_dense"): [0.87, 0.87], (1, "random_reinit"): [0.88, 0.88],
            (1, "random_ticket"): [0.1, 0.1]}  # another branch: ignored
    for key in drop.get("without", ()):
        del accs[key]
    return accs


def _lth(result, source="imp", level_index=0, workdir=0) -> dict:
    return result["sources"][source]["levels"][level_index]["lth"][workdir]


def test_lth_all_hold_with_margins():
    result = p3.check_conditions([_run("a", 0.1, _rows("imp", _base()))])
    entry = _lth(result)
    tests = entry["tests"]
    assert tests["approx_pre"] == {"holds": True, "margin": pytest.approx(0.3)}
    assert tests["beats_sd"]["margin"] == pytest.approx(1.8)
    assert tests["beats_rr"]["margin"] == pytest.approx(0.8)
    assert tests["steps"] == {"holds": True, "margin": 0}
    assert tests["lth"]["holds"] is True
    assert entry["n"] == {"pre": 2, "lt": 2, "sd": 2, "rr": 2}
    assert entry["accuracy"]["lt"] == pytest.approx(89.8)
    assert result["sources"]["imp"]["levels"][0]["density"] == pytest.approx(0.2)


def test_thresholds_move_results_across_the_boundary():
    runs = [_run("a", 0.1, _rows("imp", _base()))]
    tests = _lth(p3.check_conditions(runs, approx=0.1, gap=2.1))["tests"]
    assert tests["approx_pre"]["holds"] is False
    assert tests["approx_pre"]["margin"] == pytest.approx(-0.1)
    assert tests["beats_sd"]["holds"] and tests["beats_sd"]["margin"] == pytest.approx(0.7)
    assert tests["beats_rr"] == {"holds": False, "margin": pytest.approx(-0.3)}
    assert tests["lth"]["holds"] is False
    # Exactly on the threshold holds (A_LT - A_RR = 1.8 pp).
    assert _lth(p3.check_conditions(runs, gap=1.8))["tests"]["beats_rr"]["holds"] is True


def test_missing_branch_is_na_not_failed():
    rows = _rows("imp", _base(without=[(1, "random_reinit")]))
    tests = _lth(p3.check_conditions([_run("a", 0.1, rows)]))["tests"]
    assert tests["beats_rr"] == {"holds": None, "margin": None}
    assert tests["approx_pre"]["holds"] and tests["lth"]["holds"] is None
    rows = _rows("imp", _base(without=[(0, "ticket")]))
    result = p3.check_conditions([_run("a", 0.1, rows, evaluation="none")])
    tests = _lth(result)["tests"]
    assert tests["approx_pre"]["holds"] is None and tests["steps"]["holds"] is None
    assert tests["beats_sd"]["holds"] is True
    text = p3.format_markdown(result)
    assert "| 1 | 20.00 | 2/-/2/2 | n/a | yes (+1.80) | yes (+0.80) | n/a | n/a |" in text


def test_steps_longer_than_dense_fails_and_rewinding_holds():
    steps = {(1, "ticket"): T + 200}
    tests = _lth(p3.check_conditions([_run("a", 0.1, _rows("imp", _base(), steps=steps))]))
    assert tests["tests"]["steps"] == {"holds": False, "margin": -200}
    rows = _rows("imp_rewind", _base(), steps={(1, "ticket"): T - 50})
    result = p3.check_conditions([_run("a", 0.1, rows, rewind={"imp_rewind": 50})])
    assert result["sources"]["imp_rewind"]["kind"] == "WR"
    assert _lth(result, "imp_rewind")["tests"]["steps"] == {"holds": True, "margin": 50}


def test_metric_selects_the_accuracy():
    runs = [_run("a", 0.1, _rows("imp", _base(), early=0.01))]
    result = p3.check_conditions(runs, metric="early_stop_test_accuracy")
    assert _lth(result)["accuracy"]["lt"] == pytest.approx(90.8)
    with pytest.raises(ValueError, match="metric"):
        p3.check_conditions(runs, metric="loss")
    with pytest.raises(ValueError, match="gap"):
        p3.check_conditions(runs, gap=-1)


def test_rows_of_other_branches_need_no_metric_and_bad_rows_name_the_workdir():
    rows = _rows("imp", _base()) + [{"source_name": "imp", "replicate": 0, "level": 1,
                                     "branch": "learned_supermask", "density": 0.2}]
    result = p3.check_conditions([_run("a", 0.1, rows)])
    assert _lth(result)["n"] == {"lt": 2, "pre": 2, "sd": 2, "rr": 2}
    rows[0]["test_accuracy"] = None
    with pytest.raises(p3.ConditionsError, match=r"^a: rows\[0\]: test_accuracy"):
        p3.check_conditions([_run("a", 0.1, rows)])
    with pytest.raises(p3.ConditionsError, match="no 'rows'"):
        p3.check_conditions([_run("b", 0.1, [])])


def test_pre_borrowed_from_the_evaluation_source():
    rows = _rows("imp", {(0, "ticket"): [0.9]}) + _rows("omp", {(1, "ticket"): [0.905]})
    result = p3.check_conditions([_run("a", 0.1, rows)])
    assert _lth(result, "omp")["tests"]["approx_pre"]["margin"] == pytest.approx(1.0)
    assert result["sources"]["imp"]["levels"] == []


def _two_lrs() -> list[dict]:
    high = {(0, "ticket"): [0.92], (1, "ticket"): [0.91], (1, "random_reinit"): [0.88],
            (1, "small_dense"): [0.85]}
    low = {(0, "ticket"): [0.89], (1, "ticket"): [0.895], (1, "random_reinit"): [0.905],
           (1, "small_dense"): [0.86]}
    return [_run("high", 0.1, _rows("imp", high)), _run("low", 0.01, _rows("imp", low))]


def test_jackpot_conditions_across_learning_rates():
    result = p3.check_conditions(_two_lrs())
    level = result["sources"]["imp"]["levels"][0]
    j = level["jackpot"]
    assert j["sparsity"]["holds"] and j["sparsity"]["margin"] == pytest.approx(30.0)
    assert j["beats_sd"]["margin"] == pytest.approx(91.0 - 86.0 - 1.0)
    # (3): the high LR's ticket beats its own RR by 3 pp, but not the low LR's RR.
    assert level["lth"][0]["tests"]["beats_rr"]["holds"] is True
    assert not j["beats_rr_any_lr"]["holds"]
    assert j["beats_rr_any_lr"]["margin"] == pytest.approx(-0.5)
    # (4): fails at the high LR (-0.5) but holds at the low one (+1.0).
    assert j["approx_pre_same_lr"] == {"holds": True, "margin": pytest.approx(1.0)}
    # (5): A_well is the high LR's dense 92.0; the best ticket 91.0 misses it by 1 pp.
    assert result["sources"]["imp"]["well_trained_accuracy"] == pytest.approx(92.0)
    assert not j["approx_well_trained"]["holds"]
    assert j["approx_well_trained"]["margin"] == pytest.approx(-0.5)
    assert j["all"]["holds"] is False


def test_jackpot_thresholds_and_explicit_well_trained():
    j = p3.check_conditions(_two_lrs(), approx=1.0, gap=0.4, min_sparsity=0.9)
    j = j["sources"]["imp"]["levels"][0]["jackpot"]
    assert j["beats_rr_any_lr"] == {"holds": True, "margin": pytest.approx(0.1)}
    assert j["approx_well_trained"]["holds"] is True  # exactly on the threshold
    assert j["sparsity"] == {"holds": False, "margin": pytest.approx(-10.0)}
    well = _run("well", 0.05, _rows("imp", {(0, "ticket"): [0.905]}))
    j = p3.check_conditions(_two_lrs(), well_trained=well)
    assert j["parameters"]["well_trained"] == "well"
    j = j["sources"]["imp"]["levels"][0]["jackpot"]
    assert j["approx_well_trained"] == {"holds": True, "margin": pytest.approx(1.0)}


def test_jackpot_na_without_controls():
    runs = [_run("a", 0.1, _rows("imp", {(0, "ticket"): [0.9], (1, "ticket"): [0.9]}))]
    j = p3.check_conditions(runs)["sources"]["imp"]["levels"][0]["jackpot"]
    assert j["beats_sd"]["holds"] is None and j["beats_rr_any_lr"]["holds"] is None
    assert j["approx_pre_same_lr"]["holds"] and j["all"]["holds"] is None


def _write_workdir(path, lr, accs, nested=True):
    run = _run(str(path), lr, _rows("imp_rewind", accs), rewind={"imp_rewind": 50},
               evaluation="imp_rewind")
    write_json(path / "results.json", run["results"])
    config = {"identity": "x", "config": run["config"]} if nested else run["config"]
    write_json(path / "config.json", config)


def test_cli_prints_tables_and_writes_json(tmp_path, capsys):
    high = {(0, "ticket"): [0.92, 0.92], (1, "ticket"): [0.915, 0.915],
            (1, "random_reinit"): [0.88, 0.88], (1, "small_dense"): [0.85, 0.85]}
    low = {(0, "ticket"): [0.89], (1, "ticket"): [0.87], (1, "random_reinit"): [0.86]}
    _write_workdir(tmp_path / "lr_high", 0.1, high)
    _write_workdir(tmp_path / "lr_low", 0.01, low, nested=False)
    out = tmp_path / "out" / "conditions.json"
    dirs = [str(tmp_path / "lr_high"), str(tmp_path / "lr_low")]
    assert p3.main(["--workdirs", *dirs, "--gap", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "## imp_rewind (WR, rewind step 50)" in text
    assert f"LTH (App. C), lr 0.01: {dirs[1]}" in text
    assert ("| 1 | 20.00 | 2/2/2/2 | yes (+0.00) | yes (+4.50) | yes (+1.50) | yes (+0) "
            "| yes |") in text
    assert ("| 1 | 20.00 | 1/1/-/1 | no (-1.50) | n/a | no (-1.00) | yes (+0) "
            "| n/a |") in text
    assert "| 1 | 20.00 | yes (+30.00) | yes (+4.50) | yes (+1.50) | yes (+0.00) | " \
           "yes (+0.00) | yes |" in text
    stored = read_json(out)
    expected = p3.check_conditions([p3.load_run(d) for d in dirs], gap=2.0)
    assert stored == expected
    assert stored["workdirs"][1]["learning_rate"] == 0.01


def test_cli_missing_or_corrupt_workdir(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert p3.main(["--workdirs", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing / "results.json") in err
    _write_workdir(tmp_path / "bad", 0.1, {(0, "ticket"): [0.9]})
    (tmp_path / "bad" / "results.json").write_text('{"rows": [')
    assert p3.main(["--workdirs", str(tmp_path / "bad")]) == 2
    assert "corrupt" in capsys.readouterr().err
    _write_workdir(tmp_path / "ok", 0.1, {(0, "ticket"): [0.9]})
    assert p3.main(["--workdirs", str(tmp_path / "ok"), "--well_trained",
                    str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
