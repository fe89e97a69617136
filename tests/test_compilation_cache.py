"""JAX's persistent compilation cache as runtime.compilation_cache sets it
(jaxtickets/compilation_cache.py): where 'auto' puts it, that 'off' writes nothing, that
a cache given to JAX itself wins, that an unwritable directory costs a warning and not
the run, that the key is outside the experiment's identity, and that a run reading
every program from the cache gives bitwise the results and checkpoints of the run that
compiled them.

The unit tests call `configure` in this process with JAX's cache options saved and
restored around them (nothing compiles in between, so JAX's own cache, opened at this
process's first compile, is never touched); the runs are fresh processes of the command
line, each with a JAX of its own.
"""

from __future__ import annotations

import json
import pathlib

import jax
import pytest

from conftest import comparable_rows, run_cli, smoke_config
from jaxtickets import compilation_cache
from jaxtickets.config_schema import identity, validate
from jaxtickets.errors import ConfigError

# Two levels of 100 steps: every program of an IMP run (train, eval, prune) is compiled.
FLAGS = ("--config.pruning.levels=1", "--config.train.duration=100st",
         "--config.branches=('ticket',)")
OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")
THRESHOLD_ENV = ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")


@pytest.fixture
def jax_options(monkeypatch):
    """JAX's cache options as a process that set none (restored afterwards), and an
    environment without the variables that would decide for the user."""
    saved = {name: getattr(jax.config, name) for name in OPTIONS}
    jax.config.update("jax_compilation_cache_dir", None)
    for name in (compilation_cache.ENV_DIR, "XDG_CACHE_HOME", *THRESHOLD_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(compilation_cache, "_warned", set())
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def entries(cache: pathlib.Path) -> set[str]:
    """The cache's entries (JAX names each after its program, e.g. jit_train_chunk-...)."""
    return {p.name for p in cache.iterdir()
            if not p.name.startswith(".")} if cache.exists() else set()


# ---- the setting ------------------------------------------------------------------------
@pytest.mark.fast
def test_auto_is_one_directory_per_user(monkeypatch, tmp_path):
    for name in (compilation_cache.ENV_DIR, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation_cache.resolve("auto") == tmp_path / "home/.cache/jaxtickets/xla"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache.resolve("auto") == tmp_path / "xdg/jaxtickets/xla"
    monkeypatch.setenv(compilation_cache.ENV_DIR, str(tmp_path / "mine"))
    assert compilation_cache.resolve("auto") == tmp_path / "mine/xla"
    assert compilation_cache.resolve("off") is None and compilation_cache.resolve("") is None
    assert compilation_cache.resolve(str(tmp_path / "x")) == tmp_path / "x"


@pytest.mark.fast
def test_configure_points_jax_at_the_directory(jax_options, tmp_path):
    cache = tmp_path / "cache"
    assert compilation_cache.configure(str(cache)) == cache
    assert jax.config.jax_compilation_cache_dir == str(cache) and cache.is_dir()
    # Every program is kept, not only those of a second or more (JAX's default).
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == 0
    assert entries(cache) == set()  # the writability probe leaves nothing behind


@pytest.mark.fast
def test_auto_uses_the_environment_directory(jax_options, monkeypatch, tmp_path):
    monkeypatch.setenv(compilation_cache.ENV_DIR, str(tmp_path))
    assert compilation_cache.configure("auto") == tmp_path / "xla"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")


@pytest.mark.fast
@pytest.mark.parametrize("setting", ["off", ""])
def test_off_sets_nothing(jax_options, setting):
    assert compilation_cache.configure(setting) is None
    assert jax.config.jax_compilation_cache_dir is None


@pytest.mark.fast
def test_a_cache_given_to_jax_wins(jax_options, tmp_path):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    for setting in ("auto", str(tmp_path / "ours"), "off"):
        assert compilation_cache.configure(setting) == tmp_path / "theirs"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "theirs")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0
    assert not (tmp_path / "ours").exists()


@pytest.mark.fast
def test_thresholds_set_in_the_environment_are_kept(jax_options, monkeypatch, tmp_path):
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)
    compilation_cache.configure(str(tmp_path))
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 2.0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == 0


@pytest.mark.fast
def test_an_unwritable_directory_warns_once_and_sets_nothing(jax_options, monkeypatch,
                                                             tmp_path):
    warnings = []
    monkeypatch.setattr(compilation_cache.logging, "warning",
                        lambda msg, *args: warnings.append(msg % args))
    blocker = tmp_path / "a_file"  # a directory under a file: refused even to root
    blocker.write_text("")
    for _ in range(2):
        assert compilation_cache.configure(str(blocker / "xla")) is None
    assert jax.config.jax_compilation_cache_dir is None
    assert len(warnings) == 1 and str(blocker / "xla") in warnings[0]
    assert "runtime.compilation_cache" in warnings[0]


@pytest.mark.fast
@pytest.mark.parametrize("value", [1, None, (), " /tmp/x", "/tmp/x\n"])
def test_bad_values_are_refused_by_key(value):
    with pytest.raises(ConfigError, match="runtime.compilation_cache"):
        compilation_cache.check(value)


@pytest.mark.fast
def test_validate_checks_the_key():
    with pytest.raises(ConfigError, match="runtime.compilation_cache"):
        validate(smoke_config(runtime__compilation_cache="/tmp/x "))
    validate(smoke_config(runtime__compilation_cache="off"))


@pytest.mark.fast
def test_the_setting_is_outside_the_identity(tmp_path):
    base = identity(smoke_config())
    for setting in ("off", "", str(tmp_path)):
        assert identity(smoke_config(runtime__compilation_cache=setting)) == base


# ---- runs ------------------------------------------------------------------------------
def _digests(workdir: pathlib.Path) -> dict[str, dict]:
    """Every stored tree's per-leaf sha256 (checkpoints.DIGEST_FILE), by its path."""
    return {str(p.parent.relative_to(workdir)): json.loads(p.read_text())["leaves"]
            for p in workdir.rglob("jaxtickets_sha256.json")}


def _metrics(workdir: pathlib.Path) -> dict[str, dict]:
    """Every run's metrics.json without its wall time."""
    out = {}
    for p in workdir.rglob("metrics.json"):
        m = json.loads(p.read_text())
        m["summary"].pop("wall_seconds", None)
        out[str(p.relative_to(workdir))] = m
    return out


def test_a_warm_run_reads_every_program_and_changes_nothing(tmp_path):
    cache = tmp_path / "cache"
    setting = f"--config.runtime.compilation_cache={cache}"
    cold = run_cli(tmp_path / "cold", *FLAGS, setting)
    assert cold.returncode == 0, cold.stderr[-3000:]
    written = entries(cache)
    assert any(name.startswith("jit_train_chunk-") for name in written), written
    assert any(name.startswith("jit_eval_batch-") for name in written), written
    warm = run_cli(tmp_path / "warm", *FLAGS, setting)
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert entries(cache) == written  # nothing compiled again
    assert "persistent compilation cache" not in warm.stderr  # no read or write errors

    results = [json.loads((tmp_path / run / "results.json").read_text())
               for run in ("cold", "warm")]
    assert comparable_rows(results[0]) == comparable_rows(results[1])
    timing = ("rows", "stages", "compile_seconds")
    assert ({k: v for k, v in results[0].items() if k not in timing}
            == {k: v for k, v in results[1].items() if k not in timing})
    digests = [_digests(tmp_path / run) for run in ("cold", "warm")]
    assert {"replicate_0/theta_0", "replicate_0/level_01/ticket/final"} <= set(digests[0])
    assert digests[0] == digests[1]
    assert _metrics(tmp_path / "cold") == _metrics(tmp_path / "warm")


def test_an_unwritable_cache_warns_once_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done = run_cli(tmp_path / "run", *FLAGS,
                   f"--config.runtime.compilation_cache={blocker / 'xla'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("for the compilation cache") == 1, done.stderr[-3000:]
    assert "persistent compilation cache" not in done.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["rows"]


def test_off_writes_no_cache(tmp_path):
    """'auto' would write under JAXTICKETS_CACHE_DIR; 'off' writes nothing there (a dry
    run compiles and times a few train steps)."""
    done = run_cli(tmp_path / "run", "--dry_run", "--config.runtime.compilation_cache=off",
                   env={compilation_cache.ENV_DIR: str(tmp_path / "auto")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "auto").exists()


def test_jax_compilation_cache_dir_in_the_environment_wins(tmp_path):
    done = run_cli(tmp_path / "run", "--dry_run",
                   f"--config.runtime.compilation_cache={tmp_path / 'ours'}",
                   env={"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "theirs"),
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(name.startswith("jit_train_chunk-") for name in entries(tmp_path / "theirs"))
    assert not (tmp_path / "ours").exists()


# ---- start-up work done as one program ---------------------------------------------------
@pytest.mark.fast
@pytest.mark.parametrize("seed, ids", [(0, (0,)), (0, (0, 1)), (7, (3, 2)),
                                       (2**32 - 1, (4, 1_000_003, 5)), (123, (2**32 - 1,))])
def test_derived_keys_are_the_eager_keys(seed, ids):
    """Experiment.key computes its keys in one jitted program; they are the bits of
    PRNGKey and fold_in run one by one."""
    import numpy as np

    from jaxtickets.experiment.driver import derived_key

    eager = jax.random.PRNGKey(seed)
    for i in ids:
        eager = jax.random.fold_in(eager, i)
    jitted = derived_key(seed, np.asarray(ids, np.uint32))
    assert jitted.dtype == eager.dtype and jitted.shape == eager.shape
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(eager))
