"""The configuration reference follows the code: every key described, no description of
a key that is gone, every key a table row with its default as base_config() holds it,
and the registries' names listed as they are registered now."""

from __future__ import annotations

import json
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from conftest import ROOT
from jaxtickets import branches, config_reference, config_schema, tasks
from jaxtickets.models import model_names, register_model, unregister_model
from jaxtickets.sparsity import criteria
from jaxtickets.tasks.base import LabelsTask

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

SOURCE = "generation.NAME."


def flat(tree: dict, prefix: str = "") -> dict[str, object]:
    """The leaves of a nested dict (a ConfigDict's to_dict()) by dotted key; an empty
    dict (base_config()'s `generation`) is a leaf."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def schema_keys() -> dict[str, object]:
    """Every key and its default: base_config()'s and a source's."""
    return {**flat(config_schema.base_config().to_dict()),
            **flat(config_schema.source_defaults().to_dict(), SOURCE)}


def literal(value: object) -> str:
    """How the page writes a default: a Python literal in a code span; one holding '|'
    as HTML with the pipe as an entity (a table cell in any renderer)."""
    if isinstance(value, list):
        value = tuple(value)
    text = repr(value)
    return f"<code>{text.replace('|', '&#124;')}</code>" if "|" in text else f"`{text}`"


def row(page: str, key: str) -> str:
    """The table row of `key` ('' if there is none)."""
    start = f"| `{key}` |"
    return next((line for line in page.splitlines() if line.startswith(start)), "")


def test_every_key_has_a_description_and_none_is_stale():
    keys = set(schema_keys())
    missing = sorted(k for k in keys if not config_reference.DESCRIPTIONS.get(k, "").strip())
    stale = sorted(set(config_reference.DESCRIPTIONS) - keys)
    assert not missing, f"keys without a description in DESCRIPTIONS: {missing}"
    assert not stale, f"DESCRIPTIONS of keys that base_config() no longer has: {stale}"
    assert config_reference.missing_and_stale() == ([], [])
    assert sorted(config_reference.all_keys()) == sorted(keys)


def test_every_key_is_a_row_with_its_default():
    page = config_reference.markdown()
    wrong = []
    for key, default in schema_keys().items():
        line = row(page, key)
        if not line.startswith(f"| `{key}` | {literal(default)} | ") or line.endswith("|  |"):
            wrong.append(f"{key}: {line or 'no row'}")
    assert not wrong, "rows missing or with the wrong default:\n" + "\n".join(wrong)
    # Durations and runtime are explained once, from the code.
    assert "`ep` epochs" in page and "`%` percent" in page
    assert "`runtime.*` keys never change results" in page


def test_defaults_are_read_when_the_page_is_made(monkeypatch):
    """A changed default, a new key and a changed source default show on the page; the
    new key is reported undescribed."""
    original_config, original_source = config_schema.base_config, config_schema.source_defaults

    def changed_config():
        c = original_config()
        c.train.duration = "1234st"
        c.pruning.rates.conv = 0.37
        c.branches = ("ticket", "small_dense")
        c.runtime.new_knob = "a|b"
        return c

    def changed_source():
        s = original_source()
        s.rotations = "all"
        return s

    monkeypatch.setattr(config_schema, "base_config", changed_config)
    monkeypatch.setattr(config_schema, "source_defaults", changed_source)
    page = config_reference.markdown()
    assert row(page, "train.duration").startswith("| `train.duration` | `'1234st'` |")
    assert row(page, "pruning.rates.conv").startswith("| `pruning.rates.conv` | `0.37` |")
    assert row(page, "branches").startswith("| `branches` | `('ticket', 'small_dense')` |")
    assert row(page, "runtime.new_knob").startswith(
        "| `runtime.new_knob` | <code>'a&#124;b'</code> |")
    assert row(page, SOURCE + "rotations").startswith(f"| `{SOURCE}rotations` | `'all'` |")
    missing, stale = config_reference.missing_and_stale()
    assert missing == ["runtime.new_knob"] and stale == []


def test_choices_come_from_the_registries():
    """The page lists what is registered now: a name registered for the test shows in
    its key's row and in the lists of registered names."""

    class ToyBranch(branches.Branch):
        name = "toy_reference_branch"
        random = True
        description = "a branch registered by the test"

    register_model("toy_reference_model", lambda num_classes, dropout: None)
    branches.register(ToyBranch())
    tasks.register(tasks.TaskKind("toy_reference_task", lambda rotations: LabelsTask()))
    criteria.register("toy_reference_criterion", lambda wi, wf: np.abs(wf),
                      needs_init=False)
    try:
        page = config_reference.markdown()
        for name in model_names():
            assert f"`{name}`" in row(page, "model.name"), name
        for name in branches.names():
            assert f"`{name}`" in row(page, "branches"), name
            assert f"`{name}`" in row(page, SOURCE + "branches"), name
        for name in tasks.names():
            assert f"`{name}`" in row(page, "evaluation.task"), name
            assert f"`{name}`" in row(page, SOURCE + "task"), name
            assert f"| `{name}` |" in page, name  # the tasks table
        for name in criteria.CRITERIA.names():
            assert f"`{name}`" in row(page, "pruning.criterion"), name
        assert "`toy_reference_model`" in row(page, "model.name")
        assert "| `toy_reference_branch` | a branch registered by the test | yes | no |" \
            in page
        assert "`toy_reference_task`" in row(page, "evaluation.task")
        assert "`toy_reference_criterion`" in row(page, SOURCE + "criterion")
    finally:
        unregister_model("toy_reference_model")
        branches.unregister("toy_reference_branch")
        tasks.unregister("toy_reference_task")
        criteria.unregister("toy_reference_criterion")
    assert "toy_reference" not in config_reference.markdown()


def test_read_only_notes_follow_the_code():
    page = config_reference.markdown()
    assert "train.optimizer (or a source's optimizer) is 'momentum'" in row(
        page, "train.momentum")
    assert "train.schedule='step'" in row(page, "train.decay_factor")
    for key in config_schema.STREAMED_ONLY_KEYS:
        assert "Read only when some training split is streamed" in row(page, key), key
    assert "Read only by the task semisup." in row(page, SOURCE + "labelled_fraction")


def test_main_writes_the_page(tmp_path, capsys):
    out = tmp_path / "docs" / "configuration.md"
    assert config_reference.main([str(out)]) == 0
    assert out.read_text() == config_reference.markdown()
    assert config_reference.main([]) == 0
    assert capsys.readouterr().out == out.read_text()
    assert config_reference.main(["a", "b"]) == 2


def test_import_is_light():
    """Importing the module loads neither JAX nor the rest of the package; making the
    page loads neither TFDS nor Grain (tests/test_lean_imports.py's concern)."""
    script = (
        "import json, sys\n"
        "import jaxtickets.config_reference as r\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax') or "
        "m.startswith('jaxtickets.') and m != 'jaxtickets.config_reference')\n"
        "r.markdown()\n"
        "after = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow_datasets', 'grain', 'array_record', 'tensorflow'))\n"
        "print(json.dumps([before, after]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = json.loads(done.stdout.splitlines()[-1])
    assert before == [] and after == [], (before, after)


def test_flat_matches_the_config_dicts():
    """The test's own flattening sees the nested groups (not only the top level)."""
    keys = flat(config_schema.base_config().to_dict())
    assert "pruning.rates.conv" in keys and "generation" in keys
    assert isinstance(config_schema.base_config().generation, ml_collections.ConfigDict)
