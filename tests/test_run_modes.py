"""OpenLTH's everyday options by name: `--mode=train` (one dense run, no pruning) and
`train.eval_every='end'` (evaluate once, when training ends)."""

from __future__ import annotations

import json
import pathlib

import pytest

from conftest import load_config, run_cli, smoke_config
from jaxtickets import checkpoints
from jaxtickets.config_schema import validate
from jaxtickets.errors import ConfigError
from jaxtickets.experiment import modes
from jaxtickets.experiment.driver import run_experiment

from test_config_fuzz import SHIPPED

CASES = SHIPPED + [("p1_transfer", "halves"), ("p1_transfer", "sgd_to_adam,smoke")]


def test_the_shipped_list_covers_every_config_file():
    files = {p.stem for p in pathlib.Path(__file__).parents[1].glob("configs/*.py")}
    assert files == {name for name, _ in CASES}


@pytest.mark.parametrize("name,arg", CASES)
def test_every_shipped_config_has_a_valid_train_only_form(name, arg):
    config = load_config(name, arg)
    derived = modes.train_only(config)
    validate(derived)
    assert derived.pruning.levels == 0 and tuple(derived.branches) == ("ticket",)
    assert not derived.generation.keys()
    for key in ("model", "data", "train", "seed", "num_replicates", "evaluation"):
        assert derived[key] == config[key], key  # the dense run is the config's own
    # The config itself is left as it was.
    assert config.to_dict() == load_config(name, arg).to_dict()


def test_train_mode_on_the_command_line_trains_one_dense_network(tmp_path):
    done = run_cli(tmp_path / "dense", "--mode=train")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "dense" / "results.json").read_text())
    assert [(r["level"], r["branch"]) for r in results["rows"]] == [(0, "ticket")]
    assert results["rows"][0]["density"] == 1.0
    assert sorted(p.name for p in (tmp_path / "dense" / "replicate_0").iterdir()
                  if p.name.startswith("level_")) == ["level_00"]


def test_unknown_mode_is_refused_before_anything_runs(tmp_path):
    done = run_cli(tmp_path / "w", "--mode=prune")
    assert done.returncode == 2 and "--mode" in done.stderr
    assert not (tmp_path / "w").exists()


def test_eval_at_end_evaluates_each_run_once_at_its_last_step(tmp_path):
    config = smoke_config(train__eval_every="end", pruning__levels=1,
                          pruning__rewind="100st")
    results = run_experiment(config, tmp_path / "run")
    assert {(r["level"], r["branch"]) for r in results["rows"]} == {
        (0, "ticket"), (1, "ticket"), (1, "random_reinit")}
    for run in ("level_00/ticket", "level_01/ticket", "level_01/random_reinit"):
        history = checkpoints.read_json(
            tmp_path / "run" / "replicate_0" / run / "metrics.json")["history"]
        assert [h["step"] for h in history] == [300], run
    # The only evaluation is both the early-stop and the final one.
    for row in results["rows"]:
        assert row["early_stop_step"] == 300
        assert row["test_accuracy"] == row["early_stop_test_accuracy"]


@pytest.mark.parametrize("value", ["END", "at_end", "end "])
def test_eval_every_accepts_end_and_durations_only(value):
    config = smoke_config(train__eval_every=value)
    with pytest.raises(ConfigError, match="train.eval_every"):
        validate(config)
