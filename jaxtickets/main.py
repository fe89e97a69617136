"""Command line: python -m jaxtickets.main --config=configs/NAME.py[:ARG] --workdir=DIR.

Any config key can be overridden with --config.a.b=value. Configs are Python files
and therefore trusted code: run only configs you would run as a script.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:arg].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file operation at INFO
    from jaxtickets.checkpoints import CheckpointError
    from jaxtickets.errors import ConfigError
    from jaxtickets.experiment.driver import run_experiment
    from jaxtickets.experiment.workdir import WorkdirError

    try:
        run_experiment(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, FileNotFoundError, WorkdirError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main)
