"""Multi-host runs, emulated on this machine: processes joined by jax.distributed over
CPU devices (Gloo collectives), and checkpoints moved between device counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT, free_port, run_cli
from jaxtickets import checkpoints

# Two levels keep the multi-process runs short (their collectives go through sockets).
SHORT = ("--config.pruning.levels=1",)
MULTIHOST_TIMEOUT = 400


def _devices_env(count: int) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}


def _launch(command: list[str], processes: int, devices_each: int):
    """Starts `processes` copies of `command` as one jax.distributed run; their outputs."""
    port = free_port()
    procs = [subprocess.Popen(
        [*command, f"--coordinator_address=localhost:{port}",
         f"--num_processes={processes}", f"--process_id={i}"],
        cwd=ROOT, env=_devices_env(devices_each), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(processes)]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=MULTIHOST_TIMEOUT)
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return outputs


def _cli(workdir, *flags: str) -> list[str]:
    return [sys.executable, "-m", "jaxtickets.main", "--config=configs/mnist_lenet.py:smoke",
            f"--workdir={workdir}", *flags]


def _first_eval(workdir, level: int = 0) -> dict:
    path = workdir / f"replicate_0/level_{level:02d}/ticket/metrics.json"
    return checkpoints.read_json(path)["history"][0]


def _digest(workdir, stage: str) -> str:
    return checkpoints.read_json(workdir / "replicate_0" / stage / checkpoints.DIGEST_FILE)[
        "sha256"]


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
    """The short smoke run in one process over 8 emulated devices."""
    workdir = tmp_path_factory.mktemp("eight") / "run"
    done = run_cli(workdir, *SHORT, env=_devices_env(8))
    assert done.returncode == 0, done.stderr[-2000:]
    return workdir, json.loads((workdir / "results.json").read_text())


@pytest.mark.parametrize("fsdp", [False, True], ids=["replicated", "fsdp"])
def test_two_processes_of_four_devices_match_one_process_of_eight(eight_devices, tmp_path,
                                                                  fsdp):
    """fsdp: the state sharded across both processes (checkpoints written by both, host
    copies gathered), against the replicated single-process run."""
    one_dir, one = eight_devices
    workdir = tmp_path / "two"
    flags = (*SHORT, "--config.runtime.fsdp=True") if fsdp else SHORT
    outputs = _launch(_cli(workdir, *flags), processes=2, devices_each=4)
    for rc, _, err in outputs:
        assert rc == 0, err[-3000:]
    two = json.loads((workdir / "results.json").read_text())
    assert [(r["level"], r["branch"], r["remaining_weights"]) for r in two["rows"]] == [
        (r["level"], r["branch"], r["remaining_weights"]) for r in one["rows"]]
    # The same initialization, drawn by every process, stored once.
    assert _digest(workdir, "theta_0") == _digest(one_dir, "theta_0")
    # The same 6 of 8 devices train; only the order of the cross-process gradient sum
    # differs, so the first 100 steps agree to float precision and later ones loosely.
    first = (_first_eval(one_dir), _first_eval(workdir))
    for key in ("train_loss", "validation_loss", "test_loss"):
        assert first[0][key] == pytest.approx(first[1][key], rel=1e-5)
    for a, b in zip(one["rows"], two["rows"]):
        assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=0.01)
    # Only the primary process writes: one log, one progress report.
    log = (workdir / "replicate_0/level_01/ticket/log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [100, 200, 300]
    assert "level 1/1 ticket" in outputs[0][1]
    assert "level 1/1" not in outputs[1][1] and "done in" not in outputs[1][1]


def test_checkpoint_written_on_eight_devices_restores_on_one(eight_devices, tmp_path):
    _, uninterrupted = eight_devices
    workdir = tmp_path / "moved"
    proc = subprocess.Popen(_cli(workdir, *SHORT), cwd=ROOT, env=_devices_env(8),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = workdir / "replicate_0" / "level_01" / "ticket" / "steps" / "100"
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the 8-device run never reached level 1's first step checkpoint"
    time.sleep(0.5)  # let the step checkpoint finish
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (workdir / "replicate_0/level_01/ticket/metrics.json").exists()
    done = run_cli(workdir, *SHORT, env=_devices_env(1))
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((workdir / "results.json").read_text())
    assert [(r["level"], r["branch"]) for r in resumed["rows"]] == [
        (r["level"], r["branch"]) for r in uninterrupted["rows"]]
    metrics = checkpoints.read_json(workdir / "replicate_0/level_01/ticket/metrics.json")
    assert [h["step"] for h in metrics["history"]] == [100, 200, 300]
    # Level 1 continued from the 8-device step checkpoint: its first evaluation is the
    # 8-device run's, bit for bit (one device from scratch differs in the last digits).
    eight_dir, _ = eight_devices
    assert metrics["history"][0] == _first_eval(eight_dir, level=1)
    assert _first_eval(workdir, level=0) == _first_eval(eight_dir, level=0)
    # ... and trained the rest on one device to a normal result.
    log = (workdir / "replicate_0/level_01/ticket/log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [100, 200, 300]
    row = next(r for r in resumed["rows"] if (r["level"], r["branch"]) == (1, "ticket"))
    assert row["test_accuracy"] == pytest.approx(metrics["summary"]["test_accuracy"])
    assert 0.85 < row["test_accuracy"] <= 1.0


def test_a_failure_on_the_primary_is_raised_in_every_process(tmp_path):
    """No process waits forever for a primary that failed to change the workdir."""
    script = tmp_path / "fail.py"
    script.write_text(textwrap.dedent("""
        import sys
        from jaxtickets import distributed
        address, count, index = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        distributed.initialize(address, count, index)
        assert distributed.on_primary(lambda: "written", "writing a") == (
            "written" if index == 0 else None)
        def fail():
            raise OSError(28, "No space left on device", "/w/results.json")
        try:
            distributed.on_primary(fail, "writing /w/results.json")
        except distributed.PrimaryFailed as err:
            print("PrimaryFailed:", err)
        except OSError as err:
            print("OSError:", err)
    """))
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(script), f"localhost:{port}", "2", str(i)],
                              cwd=ROOT, env=_devices_env(1), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    said = [[line for line in out.splitlines() if not line.startswith("[Gloo]")]
            for out, _ in outs]  # Gloo prints its connections on stdout
    assert said[0] == ["OSError: [Errno 28] No space left on device: '/w/results.json'"]
    assert said[1] == ["PrimaryFailed: the primary process (0) failed while writing "
                       "/w/results.json; see its output for the error"]


def test_multihost_flags_go_together(tmp_path):
    done = run_cli(tmp_path / "w", "--num_processes=2")
    assert done.returncode != 0
    assert "--coordinator_address, --num_processes and --process_id go together" in done.stderr
    assert not (tmp_path / "w").exists()
