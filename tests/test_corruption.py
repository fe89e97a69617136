"""Damaged checkpoints and result files, full disks and read-only workdirs.

Every end-to-end test works on a copy of the session's smoke run (the fixture itself
is never modified) and reruns it in this process: a damaged file either stops the run
with one `error:` line naming it, or is recomputed to the uninterrupted results; a
failed write stops the run naming the file and leaves what was written before intact.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import comparable_rows, smoke_config
from jaxtickets import checkpoints
from jaxtickets.checkpoints import CheckpointError
from jaxtickets.experiment.driver import run_experiment
from jaxtickets.main import run as cli_run

REP = "replicate_0"


# ---- helpers --------------------------------------------------------------------------
def copy_run(smoke_run, tmp_path) -> tuple[pathlib.Path, dict]:
    source, results = smoke_run
    workdir = tmp_path / "run"
    shutil.copytree(source, workdir)
    return workdir, results


def largest_data_file(checkpoint: pathlib.Path) -> pathlib.Path:
    """The biggest OCDBT data file of an Orbax checkpoint: the largest kernel's bytes."""
    files = [p for p in checkpoint.rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no OCDBT data files under {checkpoint}"
    return max(files, key=lambda p: p.stat().st_size)


def flip_bytes(path: pathlib.Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def error_lines(captured: str) -> list[str]:
    return [line for line in captured.splitlines() if line.startswith("error:")]


def snapshot(workdir: pathlib.Path, ignore=lambda rel: False) -> dict:
    """Every path under the workdir with its bytes and mtime (files) or None (dirs)."""
    out = {}
    for path in workdir.rglob("*"):
        rel = path.relative_to(workdir).as_posix()
        if ignore(rel):
            continue
        out[rel] = ((path.read_bytes(), path.stat().st_mtime_ns) if path.is_file()
                    else None)
    return out


def small_tree(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"params": {"dense": {"kernel": rng.normal(size=(256, 128)).astype(np.float32),
                                 "bias": np.zeros(128, np.float32)},
                       "out": {"kernel": rng.normal(size=(128, 10)).astype(np.float32)}},
            "mask": {"dense": {"kernel": rng.random((256, 128)) > 0.5, "bias": None}},
            "step": np.array(7, np.int32)}


# ---- (a) damaged stage artifact -------------------------------------------------------
def test_damaged_final_weights_stop_the_run_naming_them_then_recompute(
        smoke_run, tmp_path, capsys):
    workdir, original = copy_run(smoke_run, tmp_path)
    final = workdir / REP / "level_01" / "ticket" / "final"
    flip_bytes(largest_data_file(final))
    capsys.readouterr()
    assert cli_run(smoke_config(), workdir) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1, errors
    assert str(final) in errors[0] and "delete it" in errors[0]
    # With orbax-checkpoint 0.12 the flipped bytes read back without complaint and only
    # the digest sees them; a tensorstore that notices first is as good.
    assert "does not match its sha256 digest" in errors[0] or "cannot be read" in errors[0]
    # Following the advice recomputes the stage from its step checkpoints.
    shutil.rmtree(final)
    again = run_experiment(smoke_config(), workdir)
    assert comparable_rows(again) == comparable_rows(original)
    assert checkpoints.exists(final)


# ---- (b) truncated JSON ---------------------------------------------------------------
@pytest.mark.parametrize("name", [f"{REP}/level_01/ticket/metrics.json", "config.json"])
def test_truncated_json_stops_the_run_naming_it(smoke_run, tmp_path, capsys, name):
    workdir, _ = copy_run(smoke_run, tmp_path)
    truncate(workdir / name)
    capsys.readouterr()
    assert cli_run(smoke_config(), workdir) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and str(workdir / name) in errors[0], errors
    assert "corrupt" in errors[0]


def test_truncated_results_json_is_recomputed(smoke_run, tmp_path):
    workdir, original = copy_run(smoke_run, tmp_path)
    truncate(workdir / "results.json")
    with pytest.raises(CheckpointError, match="results.json"):
        checkpoints.read_json(workdir / "results.json")
    again = run_experiment(smoke_config(), workdir)  # derived from metrics.json files
    assert comparable_rows(again) == comparable_rows(original)
    assert again["compilations"]["train"] == 0


# ---- (c) damaged step checkpoints of an interrupted stage -----------------------------
def test_damaged_newest_step_checkpoint_falls_back_to_an_older_one(
        smoke_run, tmp_path, capsys):
    workdir, original = copy_run(smoke_run, tmp_path)
    run_dir = workdir / REP / "level_02" / "random_reinit"
    shutil.rmtree(run_dir / "final")  # interrupted after its step-200 checkpoint
    (run_dir / "metrics.json").unlink()
    flip_bytes(largest_data_file(run_dir / "steps" / "200" / "state"))
    capsys.readouterr()
    again = run_experiment(smoke_config(), workdir)
    err = capsys.readouterr().err
    assert f"warning: step checkpoint {run_dir / 'steps' / '200'} is damaged" in err
    assert f"step checkpoint {run_dir / 'steps' / '100'}" not in err  # resumed from it
    assert comparable_rows(again) == comparable_rows(original)
    history = checkpoints.read_json(run_dir / "metrics.json")["history"]
    assert [h["step"] for h in history] == [100, 200, 300]
    # The damaged checkpoint was replaced by a good one when training reached step 200.
    meta = json.loads((run_dir / "steps" / "200" / "meta" / "metadata").read_text())
    assert "_jaxtickets_sha256" in meta


def test_step_checkpoints_skip_every_kind_of_damage(tmp_path, capsys):
    tree = small_tree()
    directory = tmp_path / "steps"
    steps = checkpoints.StepCheckpoints(directory, max_to_keep=3)
    for step in (100, 200, 300):
        steps.save(step, tree, {"history": list(range(step // 100))})
    steps.close()
    truncate(directory / "300" / "meta" / "metadata")        # cut JSON metadata
    flip_bytes(largest_data_file(directory / "200" / "state"))  # damaged array bytes
    (directory / "400.orbax-checkpoint-tmp").mkdir()          # a save killed midway
    steps = checkpoints.StepCheckpoints(directory, max_to_keep=3)
    assert not (directory / "400.orbax-checkpoint-tmp").exists()  # Orbax cleaned it
    capsys.readouterr()
    step, state, meta = steps.latest(tree)
    assert (step, meta) == (100, {"history": [0]})
    np.testing.assert_array_equal(state["params"]["dense"]["kernel"],
                                  tree["params"]["dense"]["kernel"])
    err = capsys.readouterr().err
    for bad in ("300", "200"):
        assert f"warning: step checkpoint {directory / bad} is damaged" in err
    flip_bytes(largest_data_file(directory / "100" / "state"))
    assert steps.latest(tree) is None  # nothing intact: the stage trains from its start
    steps.close()


# ---- (d) units: digests, shapes, dtypes, stale temporaries ----------------------------
def test_save_tree_writes_a_digest_and_load_tree_verifies_it(tmp_path):
    path = tmp_path / "ckpt"
    tree = small_tree()
    checkpoints.save_tree(path, tree)
    assert checkpoints.exists(path)
    digest = json.loads((path / checkpoints.DIGEST_FILE).read_text())
    assert set(digest["leaves"]) == {"['params']['dense']['kernel']",
                                     "['params']['dense']['bias']",
                                     "['params']['out']['kernel']",
                                     "['mask']['dense']['kernel']", "['step']"}
    assert digest["leaves"]["['mask']['dense']['kernel']"]["dtype"] == "bool"
    restored = checkpoints.load_tree(path, tree)
    np.testing.assert_array_equal(restored["params"]["dense"]["kernel"],
                                  tree["params"]["dense"]["kernel"])
    assert restored["mask"]["dense"]["bias"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporaries


def test_digest_mismatch_names_the_checkpoint_and_leaf(tmp_path):
    path = tmp_path / "ckpt"
    checkpoints.save_tree(path, small_tree(0))
    # Bytes that Orbax reads back without complaint but that are not what was saved:
    # the digest of a tree that differs in one kernel entry.
    other = small_tree(0)
    other["params"]["dense"]["kernel"][3, 5] += 1.0
    (path / checkpoints.DIGEST_FILE).write_text(json.dumps(checkpoints.tree_digest(other)))
    with pytest.raises(CheckpointError, match=r"ckpt is corrupt: \['params'\]\['dense'\]\['kernel'\]"):
        checkpoints.load_tree(path, small_tree(0))


def test_flipped_array_bytes_are_detected(tmp_path):
    path = tmp_path / "ckpt"
    checkpoints.save_tree(path, small_tree())
    flip_bytes(largest_data_file(path))
    with pytest.raises(CheckpointError, match=str(path)):
        checkpoints.load_tree(path, small_tree())


def test_missing_or_damaged_digest_means_not_finished(tmp_path):
    path = tmp_path / "ckpt"
    checkpoints.save_tree(path, small_tree())
    truncate(path / checkpoints.DIGEST_FILE)
    with pytest.raises(CheckpointError, match=checkpoints.DIGEST_FILE):
        checkpoints.load_tree(path, small_tree())
    (path / checkpoints.DIGEST_FILE).unlink()
    assert not checkpoints.exists(path)  # the driver recomputes it
    with pytest.raises(CheckpointError, match=f"{path} has no integrity digest"):
        checkpoints.load_tree(path, small_tree())
    checkpoints.save_tree(path, small_tree())  # a rerun's save replaces it
    checkpoints.load_tree(path, small_tree())


def test_shape_and_dtype_mismatches_name_the_leaf(tmp_path):
    tree = small_tree()
    wrong_dtype = small_tree()
    wrong_dtype["params"]["out"]["kernel"] = wrong_dtype["params"]["out"]["kernel"].astype(
        np.float16)
    wrong_shape = small_tree()
    wrong_shape["params"]["dense"]["bias"] = np.zeros(64, np.float32)
    with pytest.raises(CheckpointError, match=r"where: \['params'\]\['out'\]\['kernel'\] "
                                              r"stored as \(128, 10\) float16"):
        checkpoints.check_like(wrong_dtype, tree, "where")
    with pytest.raises(CheckpointError, match=r"\['params'\]\['dense'\]\['bias'\] stored as"):
        checkpoints.check_like(wrong_shape, tree, "where")
    path = tmp_path / "ckpt"
    checkpoints.save_tree(path, tree)
    with pytest.raises(CheckpointError, match=r"\['params'\]\['out'\]\['kernel'\] stored as "
                                              r"\(128, 10\) float32, expected \(128, 10\) "
                                              "float16"):
        checkpoints.load_tree(path, wrong_dtype)
    missing_leaf = small_tree()
    del missing_leaf["params"]["out"]
    with pytest.raises(CheckpointError, match=r"unexpected \[\"\['params'\]\['out'\]"):
        checkpoints.load_tree(path, missing_leaf)


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    path = tmp_path / "final"
    stale = [tmp_path / "final.orbax-checkpoint-tmp-1700000000",       # Orbax's own
             tmp_path / ".final.orbax-checkpoint-tmp-staging",          # our staging
             tmp_path / ".final.orbax-checkpoint-tmp-staging.orbax-checkpoint-tmp"]
    for p in stale:
        (p / "d").mkdir(parents=True)
        (p / "d" / "junk").write_bytes(b"half written")
    other = tmp_path / "final_other.orbax-checkpoint-tmp"  # another artifact's: kept
    other.mkdir()
    checkpoints.save_tree(path, small_tree())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final",
                                                          "final_other.orbax-checkpoint-tmp"]
    checkpoints.load_tree(path, small_tree())


def test_step_checkpoint_digest_mismatch_falls_back(tmp_path, capsys):
    tree = small_tree()
    steps = checkpoints.StepCheckpoints(tmp_path / "steps")
    steps.save(100, tree, {"history": [1]})
    steps.save(200, tree, {"history": [1, 2]})
    steps.close()
    # Make step 200's stored bytes disagree with its digest (arrays read back fine).
    meta_path = tmp_path / "steps" / "200" / "meta" / "metadata"
    meta = json.loads(meta_path.read_text())
    meta["_jaxtickets_sha256"] = checkpoints.tree_digest(small_tree(1))
    meta_path.write_text(json.dumps(meta))
    steps = checkpoints.StepCheckpoints(tmp_path / "steps")
    capsys.readouterr()
    step, state, got_meta = steps.latest(tree)
    assert step == 100 and got_meta == {"history": [1]}
    err = capsys.readouterr().err
    assert f"warning: step checkpoint {tmp_path / 'steps' / '200'} is damaged" in err
    assert "sha256" in err
    steps.save(200, tree, {"history": [1, 2]})  # training reaches 200 again: replaced
    assert steps.latest(tree)[0] == 200
    steps.close()


def test_read_json_names_truncated_and_undecodable_files(tmp_path):
    good = tmp_path / "good.json"
    checkpoints.write_json(good, {"rows": [{"a": 1.5}], "text": "ü"})
    assert checkpoints.read_json(good) == {"rows": [{"a": 1.5}], "text": "ü"}
    for cut in (0, 1, 10):
        bad = tmp_path / f"cut{cut}.json"
        bad.write_bytes(good.read_bytes()[:cut])
        with pytest.raises(CheckpointError, match=f"{bad} is corrupt"):
            checkpoints.read_json(bad)
    utf = tmp_path / "utf.json"
    utf.write_bytes('{"a": "ü"}'.encode()[:-3])  # cut inside the two-byte character
    with pytest.raises(CheckpointError, match=f"{utf} is corrupt"):
        checkpoints.read_json(utf)


# ---- write failures -------------------------------------------------------------------
def _raise(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def test_failed_json_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    checkpoints.write_json(path, {"old": True})
    before = path.read_bytes()
    monkeypatch.setattr(checkpoints, "_write_fully", _raise(errno.ENOSPC))
    with pytest.raises(OSError) as info:
        checkpoints.write_json(path, {"new": True})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device", "/x/final.orbax-checkpoint-tmp"),
    # What tensorstore raises on a real full disk (seen on a 600 KB tmpfs).
    ValueError("RESOURCE_EXHAUSTED: Error writing \"a/0.0\" in OCDBT database: Failed to "
               "write 73879 bytes to file 11: No space left on device [os_error_code='28']"),
], ids=["oserror", "tensorstore"])
def test_failed_orbax_save_keeps_the_old_checkpoint(tmp_path, monkeypatch, failure):
    path = tmp_path / "final"
    checkpoints.save_tree(path, small_tree(0))
    before = snapshot(tmp_path)

    def fail(self, directory, *args, **kwargs):
        pathlib.Path(f"{directory}.orbax-checkpoint-tmp").mkdir()  # half written
        raise failure

    monkeypatch.setattr(ocp.Checkpointer, "save", fail)
    with pytest.raises(OSError) as info:
        checkpoints.save_tree(path, small_tree(1))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert snapshot(tmp_path) == before
    np.testing.assert_array_equal(checkpoints.load_tree(path, small_tree(0))["mask"]["dense"]
                                  ["kernel"], small_tree(0)["mask"]["dense"]["kernel"])


def _rerun_must_write(smoke_run, tmp_path):
    """A finished run whose last stage lost its metrics: a rerun retrains and writes."""
    workdir, original = copy_run(smoke_run, tmp_path)
    (workdir / REP / "level_02" / "random_reinit" / "metrics.json").unlink()
    return workdir, original


def test_full_disk_on_json_write_is_one_line_and_changes_nothing(
        smoke_run, tmp_path, monkeypatch, capsys):
    workdir, _ = copy_run(smoke_run, tmp_path)
    (workdir / "results.json").unlink()  # the rerun has to write it (and nothing else)
    before = snapshot(workdir)
    monkeypatch.setattr(checkpoints, "_write_fully", _raise(errno.ENOSPC))
    capsys.readouterr()
    assert cli_run(smoke_config(), workdir) == 2
    errors = error_lines(capsys.readouterr().err)
    assert errors == [f"error: cannot write {workdir / 'results.json'}: "
                      "No space left on device"]
    assert snapshot(workdir) == before


def test_full_disk_on_checkpoint_save_keeps_every_checkpoint(
        smoke_run, tmp_path, monkeypatch, capsys):
    workdir, _ = _rerun_must_write(smoke_run, tmp_path)
    stage = f"{REP}/level_02/random_reinit"

    def progress_file(rel: str) -> bool:
        # Rewritten while the rerun progresses, before the failing save: the results
        # summary and plot (after every level) and the retrained stage's live logs.
        return (rel in ("results.json", "accuracy_vs_remaining.png")
                or rel == f"{stage}/log.jsonl" or rel.startswith(f"{stage}/tensorboard"))

    before = snapshot(workdir, ignore=progress_file)
    monkeypatch.setattr(ocp.Checkpointer, "save", _raise(errno.ENOSPC))
    capsys.readouterr()
    assert cli_run(smoke_config(), workdir) == 2
    errors = error_lines(capsys.readouterr().err)
    assert errors == [f"error: cannot write {workdir / stage / 'final'}: "
                      "No space left on device"]
    assert snapshot(workdir, ignore=progress_file) == before
    checkpoints.read_json(workdir / "results.json")  # still complete JSON


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES], ids=["erofs", "eacces"])
def test_unwritable_workdir_is_one_line_and_changes_nothing(
        smoke_run, tmp_path, monkeypatch, capsys, code):
    workdir, _ = _rerun_must_write(smoke_run, tmp_path)
    before = snapshot(workdir)
    real_open = os.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def guarded_open(path, flags, *args, **kwargs):
        if flags & writes and str(workdir) in os.fspath(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    # We run as root, so chmod would not stop writes: refuse every write instead.
    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(checkpoints, "_write_fully", _raise(code))
    monkeypatch.setattr(ocp.Checkpointer, "save", _raise(code))
    capsys.readouterr()
    assert cli_run(smoke_config(), workdir) == 2
    errors = error_lines(capsys.readouterr().err)
    # The first write of a rerun is the workdir lock.
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot write {workdir}/"), errors
    assert errors[0].endswith(f": {os.strerror(code)}")
    assert snapshot(workdir) == before


# ---- a lost rewind snapshot ------------------------------------------------------------
def test_lost_rewind_snapshot_at_step_0_is_theta_0_again(smoke_run, tmp_path):
    workdir, original = copy_run(smoke_run, tmp_path)
    shutil.rmtree(workdir / REP / "rewind")
    shutil.rmtree(workdir / REP / "level_02" / "ticket" / "final")  # forces a retrain
    again = run_experiment(smoke_config(), workdir)
    assert comparable_rows(again) == comparable_rows(original)
    assert checkpoints.exists(workdir / REP / "rewind")


def test_interrupted_rerun_never_shrinks_results_json(smoke_run, tmp_path, monkeypatch):
    workdir, original = copy_run(smoke_run, tmp_path)
    shutil.rmtree(workdir / REP / "level_01" / "ticket" / "final")
    (workdir / REP / "level_01" / "ticket" / "metrics.json").unlink()
    from jaxtickets.experiment import driver

    real = driver.Experiment._level_mask

    def stop_at_level_2(self, source, ldir, *args):
        if ldir.name == "level_02":
            raise KeyboardInterrupt
        return real(self, source, ldir, *args)

    monkeypatch.setattr(driver.Experiment, "_level_mask", stop_at_level_2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(smoke_config(), workdir)
    stored = json.loads((workdir / "results.json").read_text())
    assert comparable_rows(stored) == comparable_rows(original)  # level 2 rows kept
