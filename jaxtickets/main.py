"""Command line: python -m jaxtickets.main --config=configs/NAME.py[:ARG] --workdir=DIR.

Any config key can be overridden with --config.a.b=value. --dry_run prints what the
experiment will run and cost (experiment/dry_run.py) and writes nothing; --helpconfig
prints the arguments a config file accepts and the keys it sets. Configs are Python files
and therefore trusted code: run only configs you would run as a script.

Multi-host: every process runs the same command with `--multihost` (JAX finds the
cluster) or with `--coordinator_address=HOST:PORT --num_processes=N --process_id=I`;
the workdir must be on a file system all hosts see (see jaxtickets/distributed.py).

A mistake on the command line (a missing config file, an argument the config refuses,
an unknown key, a value of the wrong type: command_line.py) or in the config (a value
out of range, a key set that the chosen settings never read: config_schema.py) and other
errors a user can fix (a workdir of another experiment or in use, a
damaged checkpoint or result file, a full disk or a read-only workdir) end the run
with `error: ...` on stderr naming the key or the file, and exit code 2; a failed
write is one line, `error: cannot write PATH: <reason>`.
"""

from __future__ import annotations

import time

_STARTED = time.time()  # before any other import: the start-up line counts from here

import errno  # noqa: E402
import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:arg].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
flags.mark_flags_as_required(["config", "workdir"])
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Print the experiment's plan (stages, runs, steps, examples, FLOPs, "
    "what this workdir already holds) and an estimated wall time from a few timed train "
    "steps on this machine, then exit without writing anything.")
_CALIBRATE = flags.DEFINE_bool(
    "calibrate", True, "With --dry_run: time a few train steps to estimate the wall time "
    "(--nocalibrate: the plan alone, in seconds).")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a multi-host run with jax.distributed.initialize(), the "
    "cluster detected by JAX (Cloud TPU, SLURM, ...).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 for an explicit multi-host run "
    "(with --num_processes and --process_id).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")
_HELPCONFIG = flags.DEFINE_bool(
    "helpconfig", False, "Print the arguments the --config file accepts and the keys it "
    "sets (with their values), then exit; needs no --workdir.")
_MODE = flags.DEFINE_enum(
    "mode", "lottery", ["lottery", "train"], "lottery: the experiment the config describes; "
    "train: its dense network only, trained once per replicate (level 0, no pruning, no "
    "controls, no ticket sources; experiment/modes.py), in a workdir of its own.")
_LOCAL_DEVICE_IDS = flags.DEFINE_list(
    "local_device_ids", None, "Devices this process uses (e.g. one GPU per process: its "
    "SLURM_LOCALID); all local devices if unset.")

# errno values that mean: this file cannot be written (as opposed to read).
WRITE_ERRNOS = frozenset(getattr(errno, name) for name in
                         ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG")
                         if hasattr(errno, name))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe_os_error(err: OSError, workdir) -> str:
    """`cannot write PATH: No space left on device` and the like, on one line."""
    path = err.filename if err.filename is not None else f"in the workdir {workdir}"
    reason = err.strerror or str(err)
    if err.errno in WRITE_ERRNOS:
        return _one_line(f"cannot write {path}: {reason}")
    return _one_line(f"cannot read or write {path}: {reason}")


def run(config, workdir, dry_run: bool = False, calibrate: bool = True,
        mode: str = "lottery") -> int:
    """Runs the experiment (or prints its plan: `dry_run`) in `mode` (experiment/modes.py);
    a fixable error prints one `error:` line and returns 2."""
    from jaxtickets.checkpoints import CheckpointError
    from jaxtickets.distributed import PrimaryFailed
    from jaxtickets.errors import ConfigError
    from jaxtickets.experiment import modes
    from jaxtickets.experiment.driver import run_experiment
    from jaxtickets.experiment.workdir import WorkdirError
    from jaxtickets.training.loop import DivergenceError

    from jaxtickets import startup

    startup.mark_process_start(_STARTED)
    startup.mark_imports_done()
    config = modes.apply(config, mode)
    try:
        if dry_run:
            from jaxtickets.experiment.dry_run import dry_run as print_plan

            print_plan(config, workdir, calibrate=calibrate)
        else:
            run_experiment(config, workdir)
    except (ConfigError, WorkdirError, CheckpointError, PrimaryFailed) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    except DivergenceError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 3
    except FileNotFoundError as err:
        # Raised with a message of our own (a dataset that is not prepared: its
        # prepare command on a line of its own); a bare one names the file.
        text = (f"missing {err.filename}: {err.strerror}" if err.filename is not None
                and err.strerror else err)
        print(f"error: {text}", file=sys.stderr, flush=True)
        return 2
    except OSError as err:
        print(f"error: {describe_os_error(err, workdir)}", file=sys.stderr, flush=True)
        return 2
    return 0


def join_processes() -> None:
    """jax.distributed.initialize() when the flags ask for a multi-host run."""
    explicit = [_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value]
    if any(v is not None for v in explicit) and None in explicit:
        raise app.UsageError("--coordinator_address, --num_processes and --process_id "
                             "go together")
    if not _MULTIHOST.value and _COORDINATOR.value is None:
        if _LOCAL_DEVICE_IDS.value:
            raise app.UsageError("--local_device_ids needs --multihost or "
                                 "--coordinator_address")
        return
    from jaxtickets import distributed

    device_ids = ([int(i) for i in _LOCAL_DEVICE_IDS.value]
                  if _LOCAL_DEVICE_IDS.value else None)
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           device_ids)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing behind the checks of command_line.py: every mistake in the
    command line is one `error:` line and exit code 2, before anything runs."""
    from jaxtickets import command_line

    try:
        loaded = command_line.check(argv)
        if f"--{_HELPCONFIG.name}" in argv:
            if loaded is None:
                _fail("--helpconfig: give the config with --config=FILE[:ARG]")
            print(command_line.help_config(command_line.config_spec(argv), *loaded))
            sys.exit(0)
        return flags.FLAGS(argv)
    except command_line.CommandLineError as err:
        _fail(str(err))
    except flags.Error as err:  # a value of the wrong type, a missing or unknown flag
        _fail(command_line.one_line(err))
    except Exception as err:  # raised inside ml_collections while applying an override
        _fail(f"{type(err).__name__}: {command_line.one_line(err)}")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    join_processes()
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file operation at INFO
    return run(_CONFIG.value, _WORKDIR.value, _DRY_RUN.value, _CALIBRATE.value,
               _MODE.value)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
