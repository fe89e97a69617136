"""Safety: no pickle-style loading anywhere, restored arrays checked against the model,
and no network access while an experiment runs."""

from __future__ import annotations

import ast
import re
import socket

import numpy as np
import pytest

from conftest import ROOT, smoke_config
from jaxtickets import checkpoints
from jaxtickets.checkpoints import CheckpointError

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

PACKAGE = ROOT / "jaxtickets"
SOURCES = sorted(PACKAGE.rglob("*.py"))

# Loaders that can run arbitrary code from a file (or are built on one that can).
FORBIDDEN = {
    "pickle": r"\bc?[pP]ickle\b",
    "cloudpickle": r"cloudpickle",
    "dill": r"\bdill\b",
    "jsonpickle": r"jsonpickle",
    "torch.load": r"torch\s*\.\s*load",
    "allow_pickle=True": r"allow_pickle\s*=\s*True",
    "pandas read_pickle": r"read_pickle",
    "joblib": r"\bjoblib\b",
    "shelve": r"\bshelve\b",
    "marshal": r"\bmarshal\b",
}


def test_the_scan_sees_the_package():
    names = {p.relative_to(PACKAGE).as_posix() for p in SOURCES}
    assert {"checkpoints.py", "main.py", "experiment/driver.py",
            "data/datasets.py"} <= names


@pytest.mark.parametrize("name, pattern", sorted(FORBIDDEN.items()))
def test_no_unsafe_deserialization_in_the_package(name, pattern):
    hits = [f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}"
            for path in SOURCES
            for lineno, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(pattern, line)]
    assert not hits, f"{name} found:\n" + "\n".join(hits)


def _np_load_calls():
    """Every call of np.load / numpy.load / jnp.load in the package, with its keywords."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("np", "numpy", "onp", "jnp")):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def test_every_np_load_refuses_pickles():
    calls = list(_np_load_calls())
    assert len(calls) >= 2, "expected the embedded-MNIST and TFDS-import loads"
    for where, node in calls:
        assert not any(isinstance(a, ast.Starred) for a in node.args), where
        assert len(node.args) < 3, f"{where}: allow_pickle passed positionally"
        for kw in node.keywords:
            assert kw.arg is not None, f"{where}: **kwargs could carry allow_pickle"
            if kw.arg == "allow_pickle":
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, where


def test_restored_arrays_must_have_the_model_shapes_and_dtypes(tmp_path):
    tree = {"params": {"Dense_0": {"kernel": np.ones((784, 300), np.float32),
                                   "bias": np.zeros(300, np.float32)}}}
    path = tmp_path / "final"
    checkpoints.save_tree(path, tree)
    wider = {"params": {"Dense_0": {"kernel": np.ones((784, 301), np.float32),
                                    "bias": np.zeros(300, np.float32)}}}
    with pytest.raises(CheckpointError) as info:
        checkpoints.load_tree(path, wider)
    message = str(info.value)
    assert str(path) in message and "['params']['Dense_0']['kernel']" in message
    assert "(784, 300)" in message and "(784, 301)" in message
    as_int = {"params": {"Dense_0": {"kernel": np.ones((784, 300), np.float32),
                                     "bias": np.zeros(300, np.int32)}}}
    with pytest.raises(CheckpointError, match=r"\['params'\]\['Dense_0'\]\['bias'\] stored "
                                              r"as \(300,\) float32, expected \(300,\) int32"):
        checkpoints.load_tree(path, as_int)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a jaxtickets run")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(OSError, match="network access"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    with pytest.raises(OSError, match="network access"):
        socket.socket().connect(("192.0.2.1", 80))


def test_an_experiment_runs_without_the_network(no_network, tmp_path):
    from jaxtickets.experiment.driver import run_experiment

    # Every kind of stage (theta_0, level 0 with the rewind capture, a mask, a ticket, a
    # random reinit, step checkpoints, results, plot), kept short.
    config = smoke_config(pruning__levels=1, train__duration="200st")
    results = run_experiment(config, tmp_path / "run")
    assert [(r["level"], r["branch"]) for r in results["rows"]] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit")]
    assert (tmp_path / "run" / "accuracy_vs_remaining.png").exists()
