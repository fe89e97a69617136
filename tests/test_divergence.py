"""NaN/Inf during training stops the stage within one evaluation interval, with a diagnostic."""

from __future__ import annotations

import pytest

from conftest import smoke_config
from jaxtickets.experiment.driver import run_experiment
from jaxtickets.training.loop import DivergenceError

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast


def test_divergence_stops_the_stage_with_step_layer_and_learning_rate(tmp_path):
    config = smoke_config(train__optimizer="sgd", train__learning_rate=1e6)
    workdir = tmp_path / "run"
    with pytest.raises(DivergenceError) as err:
        run_experiment(config, workdir)
    message = str(err.value)
    assert "between steps 0 and 100" in message  # the first evaluation interval
    assert "hidden_0" in message and "kernel" in message
    assert "learning rate at step 100: 1e+06" in message
    stage = workdir / "replicate_0" / "level_00" / "ticket"
    assert not (stage / "metrics.json").exists() and not (stage / "final").exists()
    assert not (workdir / "results.json").exists()


def test_divergence_from_the_command_line_is_one_error_line(tmp_path):
    from conftest import run_cli

    done = run_cli(tmp_path / "run", "--config.train.optimizer=sgd",
                   "--config.train.learning_rate=1e6")
    assert done.returncode == 3
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training diverged" in errors[0]
