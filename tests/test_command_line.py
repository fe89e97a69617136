"""Every mistake on the command line: one `error:` line naming it, exit code 2, no
traceback, nothing created in the workdir (jaxtickets/command_line.py, main.py)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import load_config
from jaxtickets.command_line import CommandLineError, changed_keys, dotted_keys
from jaxtickets.command_line import load_config as load_config_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = f"{ROOT}/configs/mnist_lenet.py:smoke"


def run_main(*args: str, workdir: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxtickets.main", f"--workdir={workdir}",
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


def _by_type(kind: type) -> str:
    """A key of the smoke config whose value has type `kind`."""
    config = load_config("mnist_lenet", "smoke")
    for dotted in dotted_keys(config):
        *parents, leaf = dotted.split(".")
        holder = config
        for part in parents:
            holder = holder[part]
        if holder.get_type(leaf) is kind and not dotted.startswith("runtime"):
            return dotted
    raise AssertionError(kind)


def override_mistakes() -> list[tuple[str, ...]]:
    """(flag, text the error must name) for mistakes in --config.KEY=VALUE."""
    cases = []
    config = load_config("mnist_lenet", "smoke")
    groups = sorted({k.rsplit(".", 1)[0] + "." for k in dotted_keys(config) if "." in k})
    for prefix in [""] + groups:  # an unknown key at every depth
        cases.append((f"--config.{prefix}nonexistent=3", f"--config.{prefix}nonexistent"))
    cases.append(("--config.prunning.levels=3", "pruning.levels"))  # the closest key
    for kind, bad in ((int, "1.5"), (float, "abc"), (bool, "maybe")):  # wrong types
        key = _by_type(kind)
        cases.append((f"--config.{key}={bad}", f"--config.{key}: expected {kind.__name__}"))
    cases += [("--config.branches=1", "branches"),  # a list of names holding a number
              ("--config.model.name=lenet", "model.name"),
              ("--config.pruning.levels=-1", "pruning.levels"),  # out of range
              ("--config.model.dropout=1.5", "model.dropout"),
              ("--config.train.batch_size=0", "train.batch_size"),
              ("--config.seed=-1", "seed"),
              ("--config.pruning.rate=0.5", "pruning.rate"),  # set, never read
              ("--config.train.momentum=0.5", "train.momentum"),
              ("--config.supermask.steps=5", "supermask.steps"),
              ("--config.data.rotation_degrees=3", "data.rotation_degrees")]
    return cases


@pytest.mark.parametrize("flag, named", override_mistakes())
def test_a_mistaken_override_is_one_line(flag, named, tmp_path):
    assert_one_error_line(run_main(f"--config={CONFIG}", flag, workdir=tmp_path / "w"),
                          named, tmp_path / "w")


def test_a_key_set_that_global_pruning_never_reads(tmp_path):
    result = run_main(f"--config={CONFIG}", "--config.pruning.method=global",
                      "--config.pruning.rates.dense=0.5", workdir=tmp_path / "w")
    assert_one_error_line(result, "pruning.rates.dense", tmp_path / "w")
    assert "only read when pruning.method='layerwise'" in result.stderr


def config_file_mistakes(tmp_path: pathlib.Path) -> list[tuple[str, str]]:
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    return [(f"{tmp_path}/nope.py", "nope.py"), (str(tmp_path), str(tmp_path)),
            (str(broken), "broken.py"), (str(empty), "get_config"),
            (f"{ROOT}/configs/mnist_lenet.py:bogus", "bogus"),
            (f"{ROOT}/configs/p3_cifar.py:resnet20,svhn", "DATASET")]


def test_a_mistaken_config_file_or_argument_is_one_line(tmp_path):
    for spec, named in config_file_mistakes(tmp_path):
        workdir = tmp_path / "w"
        assert_one_error_line(run_main(f"--config={spec}", workdir=workdir), named, workdir)


def assert_one_error_line(result: subprocess.CompletedProcess, named: str,
                          workdir: pathlib.Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert named in lines[0], (named, lines[0])
    assert "Traceback" not in result.stderr
    assert not workdir.exists()


def test_helpconfig_lists_arguments_and_the_keys_set(tmp_path):
    result = run_main(f"--config={ROOT}/configs/mnist_lenet.py", "--helpconfig",
                      workdir=tmp_path / "w")
    assert result.returncode == 0, result.stderr
    assert "Arguments after the colon:" in result.stdout and "smoke" in result.stdout
    for name, value in changed_keys(load_config("mnist_lenet", None)):
        assert f"  {name} = {value!r}" in result.stdout
    assert "  pruning.levels = 27" in result.stdout  # P2's 27 levels (default 20)
    assert "  seed = " not in result.stdout  # left at its default
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.py")), ids=lambda p: p.stem)
def test_every_shipped_config_refuses_an_unknown_argument_naming_it(path):
    """Each config's own error names the argument (and what it accepts); the command
    line keeps that text on its one line."""
    with pytest.raises(CommandLineError, match=r"^--config=.*:bogus: .*'bogus'"):
        load_config_file(f"{path}:bogus")
