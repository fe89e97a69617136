"""`python -m bench.accelerator --smoke` runs every part at toy size, so the command
prepared for accelerator machines cannot rot; its JSON holds what BENCHMARKS.md reports.

The data are the MNIST subset shipped in the package and synthetic CIFAR-10-sized JPEGs,
both in the .npz layouts of data.source='npz'. Numbers are checked for consistency (units,
ratios, exact pruning counts), never against times."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from bench.accelerator import reproduce, steps
from bench.accelerator.__main__ import main
from conftest import ROOT, jpeg_layout
from jaxtickets.host import host_cores
from test_lean_imports import run_hidden

EMBEDDED_MNIST = ROOT / "jaxtickets" / "data" / "embedded" / "mnist_subset.npz"
LENET_KERNELS = {"hidden_0": 784 * 300, "hidden_1": 300 * 100, "output": 100 * 10}


def synthetic_cifar(path, n_train: int = 500, n_test: int = 200) -> None:
    """Random 32x32 JPEGs with random labels in the CIFAR-10 .npz layout."""
    rng = np.random.default_rng(0)
    arrays = {"classes": np.array([f"class_{i}" for i in range(10)])}
    for split, n in (("train", n_train), ("test", n_test)):
        jpegs = []
        for _ in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(buf, "JPEG")
            jpegs.append(buf.getvalue())
        arrays.update(jpeg_layout(jpegs, split))
        arrays[f"y_{split}"] = rng.integers(0, 10, n).astype(np.uint8)
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    shutil.copy(EMBEDDED_MNIST, data / "mnist.npz")
    synthetic_cifar(data / "cifar10_jpeg.npz")
    out = tmp_path_factory.mktemp("out")
    returned = main(["--smoke", "--out", str(out), "--data_dir", str(data),
                     "--budget_s", "600"])
    return returned, json.loads((out / "accelerator.json").read_text()), out


def test_json_on_disk_is_what_the_command_returned(smoke):
    returned, written, out = smoke
    assert written == json.loads(json.dumps(returned))
    text = (out / "accelerator.md").read_text()
    assert all(c.model in text for c in steps.CASES) and "P2 Fig. 5" in text


def test_environment_names_this_backend(smoke):
    env = smoke[1]["environment"]
    assert env["backend"] == jax.default_backend()
    assert env["device_count"] == jax.device_count()
    assert env["host_cores"] == host_cores()
    assert env["versions"]["jax"] == jax.__version__


def test_every_model_is_measured_masked_and_dense(smoke):
    rows = smoke[1]["steps"]
    assert [r["model"] for r in rows] == [c.model for c in steps.CASES]
    for row, case in zip(rows, steps.smoke_cases()):
        assert row["batch"] == case.batch and row["compute_dtype"] == case.compute_dtype
        assert row["steps_per_call"] == steps.driver_steps_per_call(case)
        for kind in ("masked", "dense"):
            m = row[kind]
            assert math.isfinite(m["steps_per_second"]) and m["steps_per_second"] > 0
            assert m["images_per_second"] == pytest.approx(m["steps_per_second"] * case.batch)
            assert m["compile_seconds"] > 0 and m["steps_timed"] % row["steps_per_call"] == 0
        assert row["masked_over_dense_time"] == pytest.approx(
            row["dense"]["steps_per_second"] / row["masked"]["steps_per_second"])


def test_program_memory_holds_the_train_state(smoke):
    """LeNet with Adam: parameters and two moments in float32, at the least."""
    lenet = smoke[1]["steps"][0]
    params = sum(LENET_KERNELS.values()) + 300 + 100 + 10
    assert lenet["masked"]["program_bytes"] >= 3 * 4 * params


def test_chunk_study_covers_its_lengths(smoke):
    rows = smoke[1]["chunks"]
    assert [r["steps_per_call"] for r in rows] == [1, 4]
    assert all(r["model"] == "lenet300_100" and r["steps_per_second"] > 0 for r in rows)


def test_pipeline_rate_is_compared_with_resnet50(smoke):
    p, resnet50 = smoke[1]["pipeline"], smoke[1]["steps"][-1]
    assert p["reader_threads"] == host_cores() and p["images_per_second"] > 0
    assert p["resnet50_images_per_second"] == resnet50["masked"]["images_per_second"]
    assert p["delivered_over_consumed"] == pytest.approx(
        p["images_per_second"] / p["resnet50_images_per_second"])


def test_reproductions_run_through_the_driver(smoke):
    data = smoke[1]
    assert data["skipped"] == {}
    lenet, conv2 = data["p2_lenet"], data["p2_conv2"]
    for result in (lenet, conv2):
        assert result["status"] == "done" and result["levels"] == 1
        assert [(r["level"], r["branch"]) for r in result["rows"]] == [
            (0, "ticket"), (1, "ticket"), (1, "random_reinit")]
    # Layer-wise P2 rates: 20% of the hidden kernels, 10% of the output per level.
    kept = 0.8 * (LENET_KERNELS["hidden_0"] + LENET_KERNELS["hidden_1"]) + 0.9 * 1000
    assert lenet["rows"][1]["density"] == pytest.approx(kept / sum(LENET_KERNELS.values()),
                                                        abs=1e-12)
    goal = lenet["goal"]
    assert goal["level"] == 1 and goal["ticket_minus_dense"] == pytest.approx(
        lenet["rows"][1]["early_stop_test_accuracy"]
        - lenet["rows"][0]["early_stop_test_accuracy"])
    assert conv2["goal"] == {"checked": False,
                             "why": "no level below 20% remaining was trained"}


def test_plan_fills_levels_then_replicates():
    # 5 s a run (50,000 steps at 0.1 ms), 10 s start-up, 80% of the budget used.
    plan = lambda seconds: reproduce.plan(1e-4, 10.0, 50_000, 20, seconds)  # noqa: E731
    assert plan(10.0) is None                     # not even the dense run
    assert plan(20.0) == (0, 1)                   # 16 s usable: the dense run only
    assert plan(200.0) == (14, 1)                 # 160 s: 1 + 2 x 14 = 29 runs
    assert plan(600.0) == (20, 2)                 # every level (41 runs), then a second replicate
    assert plan(1e6) == (20, reproduce.MAX_REPLICATES)


def test_missing_data_and_unknown_parts_are_named(tmp_path, capsys):
    data = main(["--out", str(tmp_path / "out"), "--data_dir", str(tmp_path),
                 "--parts", "p2_lenet,p2_conv2"])
    assert data["skipped"] == {"p2_lenet": f"no mnist.npz in {tmp_path}",
                               "p2_conv2": f"no cifar10_jpeg.npz in {tmp_path}"}
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "out"), "--parts", "steps,warp"])
    assert exit_info.value.code == 2 and "warp" in capsys.readouterr().err
    if jax.default_backend() == "cpu":  # full sizes on a CPU: refused before any compute
        with pytest.raises(SystemExit) as exit_info:
            main(["--out", str(tmp_path / "cpu")])
        assert exit_info.value.code == 2 and "--smoke" in capsys.readouterr().err
        assert not (tmp_path / "cpu").exists()


def test_check_runs_without_tfds_and_names_the_skipped_pipeline(tmp_path):
    """As on an accelerator image without the TFDS stack: the pipeline part is skipped,
    by name, and the rest runs."""
    done, report = run_hidden("bench.accelerator", "--smoke", "--parts", "chunks,pipeline",
                              "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["loaded"] == [], report
    data = json.loads((tmp_path / "accelerator.json").read_text())
    assert data["skipped"] == {
        "pipeline": "tensorflow_datasets, grain, array_record not installed"}
    assert len(data["chunks"]) == 2


# ---- bench/accelerator/stage.sh ------------------------------------------------------------

STAGE = ROOT / "bench" / "accelerator" / "stage.sh"


def _staging_repo(tmp_path):
    """A git checkout holding the script and constraints.txt, and a fake python3 whose
    `-m pip download` writes an empty file named after the requested NAME==VERSION
    (no network), everything else going to the real Python."""
    repo = tmp_path / "repo"
    (repo / "bench" / "accelerator").mkdir(parents=True)
    shutil.copy(STAGE, repo / "bench" / "accelerator" / "stage.sh")
    shutil.copy(ROOT / "constraints.txt", repo / "constraints.txt")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(f"""#!/usr/bin/env bash
if [ "$1 $2 $3" = "-m pip download" ]; then
  dest=""; spec=""
  while [ $# -gt 0 ]; do
    case "$1" in -d) dest="$2"; shift;; *==*) spec="$1";; esac; shift
  done
  touch "$dest/$spec.whl"; exit 0
fi
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    (data / "mnist.npz").write_bytes(b"x" * 1000)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return repo, data, env


def _stage(repo, env, *args):
    return subprocess.run(["bash", "bench/accelerator/stage.sh", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)


def test_stage_fetches_pinned_wheels_and_data(tmp_path):
    repo, data, env = _staging_repo(tmp_path)
    done = _stage(repo, env, "--tfds", "--data", "mnist", "--data_dir", str(data))
    assert done.returncode == 0, done.stderr
    pinned = dict(line.split("==") for line in
                  (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    wheels = sorted(p.name for p in (repo / ".whl").iterdir())
    for name in ("ml_collections", "tensorboardX", "tensorflow-datasets", "grain",
                 "array_record", "portpicker"):
        assert f"{name}=={pinned[name]}.whl" in wheels
    assert sorted(p.name for p in (repo / ".devdata").iterdir()) == ["mnist.npz"]
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert "/.whl/" in exclude and "/.devdata/" in exclude
    assert "python3 -m bench.accelerator --out $OUT --data_dir .devdata" in done.stdout
    assert "limit 64 MiB" in done.stdout


def test_stage_names_what_is_wrong(tmp_path):
    repo, data, env = _staging_repo(tmp_path)
    done = _stage(repo, env, "--data", "cifar10", "--data_dir", str(data))
    assert done.returncode == 2 and f"no data file {data}/cifar10_jpeg.npz" in done.stderr
    done = _stage(repo, env, "--gpu")
    assert done.returncode == 2 and "unknown argument --gpu" in done.stderr


def test_stage_script_is_shellcheck_clean():
    from test_launch import shellcheck_binary

    result = subprocess.run([shellcheck_binary(), str(STAGE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
