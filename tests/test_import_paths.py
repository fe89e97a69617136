"""A model (Flax linen or NNX) and a dataset named by import path, 'package.module:attr':
user modules written to tmp_path, run end to end by the unchanged driver, and every kind
of bad path refused before any training with the key it came from."""

from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import pytest

from conftest import smoke_config
from jaxtickets.analysis.artifacts import RunArtifacts
from jaxtickets.config_schema import add_source, canonical_json, validate
from jaxtickets.data import imported as imported_data
from jaxtickets.errors import ConfigError
from jaxtickets.experiment.driver import Experiment, run_experiment
from jaxtickets.sparsity import masks as masks_lib

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "extending.md"

# Models and data functions that break the conventions, each refused by name.
BAD_CODE = '''
import flax.linen as nn
import numpy as np

from my_models import TinyMLP


class NoHead(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(self.num_classes, name="logits")(x.reshape((x.shape[0], -1)))


def no_dropout(num_classes):
    return TinyMLP(num_classes)


def not_a_module(num_classes):
    return np.zeros(num_classes)


def wrong_outputs(num_classes):
    return TinyMLP(num_classes + 1)


NOT_CALLABLE = 3


def float_images():
    x = np.zeros((8, 28, 28, 1), np.float32)
    return {"train": (x, np.zeros(8, int)), "test": (x, np.zeros(8, int))}


def labels_out_of_range():
    x = np.zeros((8, 28, 28, 1), np.uint8)
    return {"train": (x, np.arange(8)), "test": (x, np.arange(8)), "num_classes": 4}


def broken():
    raise RuntimeError("no data here")
'''


def docs_modules() -> dict[str, str]:
    """docs/extending.md's example modules: each ```python block whose first line is
    '# NAME.py; ...', joined per NAME."""
    modules: dict[str, list[str]] = {}
    for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S):
        first = block.splitlines()[0]
        found = re.match(r"# (\w+)\.py;", first)
        if found:
            modules.setdefault(found.group(1), []).append(block)
    return {name: "\n".join(blocks) for name, blocks in modules.items()}


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """The docs' my_models.py and my_data.py, and user_bad.py and user_broken.py, in a
    directory on sys.path (and forgotten after: the module cache and the loaded arrays)."""
    code = tmp_path / "code"
    code.mkdir()
    modules = {**docs_modules(), "user_bad": BAD_CODE,
               "user_broken": "raise ImportError('missing dependency')\n"}
    assert {"my_models", "my_data"} <= set(modules), "docs/extending.md's examples moved"
    for name, text in modules.items():
        (code / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(code))
    for name in modules:
        monkeypatch.delitem(sys.modules, name, raising=False)
    imported_data.forget()
    yield
    imported_data.forget()


def _config(**overrides):
    base = dict(pruning__levels=1, train__duration="40st", train__eval_every="20st",
                train__checkpoint_every="40st", runtime__plot=False,
                data__validation_size=200, data__train_size=600, data__test_size=200)
    return smoke_config(**{**base, **overrides})


def test_a_linen_model_by_import_path_runs(user_code, tmp_path):
    config = _config(model__name="my_models:TinyMLP", model__dropout=0.25)
    results = run_experiment(config, tmp_path / "run")
    rows = {(r["level"], r["branch"]): r for r in results["rows"]}
    assert set(rows) == {(0, "ticket"), (1, "ticket"), (1, "random_reinit")}
    kernels = 784 * 32 + 32 * 10
    assert rows[(0, "ticket")]["prunable_weights"] == kernels
    assert rows[(1, "ticket")]["remaining_weights"] == kernels - round(0.2 * 784 * 32) - 32
    assert rows[(0, "ticket")]["forward_flops_dense"] == 2 * kernels
    # the identity hashes the path string (the key's value), not the code behind it
    assert '"name":"my_models:TinyMLP"' in canonical_json(config)


def test_an_nnx_model_by_import_path_runs_with_exact_counts(user_code, tmp_path):
    config = _config(model__name="my_models:TinyCNN", model__dropout=0.1)
    results = run_experiment(config, tmp_path / "run")
    rows = {(r["level"], r["branch"]): r for r in results["rows"]}
    kernels = {"conv/kernel": 3 * 3 * 1 * 4, "output/kernel": 14 * 14 * 4 * 10}
    assert rows[(0, "ticket")]["prunable_weights"] == sum(kernels.values())
    art = RunArtifacts.open(tmp_path / "run")
    mask = art.mask(0, 1)
    counts = masks_lib.layer_counts(mask)
    assert {k: t for k, (_, t) in counts.items()} == kernels
    # layer-wise rates: conv 0.1 and output 0.1 of each layer, rounded
    assert {k: r for k, (r, _) in counts.items()} == {"conv/kernel": 36 - 4,
                                                      "output/kernel": 7840 - 784}
    final = art.final(0, 1, "ticket")
    assert set(final["batch_stats"]["bn"]) == {"mean", "var"}
    assert np.any(np.asarray(final["batch_stats"]["bn"]["mean"]) != 0)  # trained stats
    for name, m in masks_lib.to_flat_dict(mask).items():
        weights = np.asarray(final["params"][name.split("/")[0]]["kernel"])
        assert np.all(weights[~m] == 0), name
        assert np.count_nonzero(weights[m]) == np.count_nonzero(m), name
    # every seed builds the model afresh: theta_0 follows config.seed
    other = Experiment(_config(model__name="my_models:TinyCNN", model__dropout=0.1, seed=1),
                       tmp_path / "other")
    theirs = other.init_weights(other.evaluation, other.key(0))["params"]["conv"]["kernel"]
    assert not np.allclose(theirs, art.theta_0(0)["params"]["conv"]["kernel"])
    # FLOPs come from the NNX layers' own calls: 2 x MACs of each kernel
    assert rows[(0, "ticket")]["forward_flops_dense"] == 2 * (36 * 14 * 14 + 7840)


def test_a_dataset_function_by_import_path_runs(user_code, tmp_path):
    config = _config(data__dataset="my_data:three_digits", data__source="tfds",
                     data__validation_size=100, data__train_size=300, data__test_size=100)
    results = run_experiment(config, tmp_path / "run")
    rows = {(r["level"], r["branch"]): r for r in results["rows"]}
    assert rows[(0, "ticket")]["evaluation"] == "labels:my_data:three_digits"
    art = RunArtifacts.open(tmp_path / "run")
    assert art.theta_0(0)["params"]["output"]["kernel"].shape == (100, 3)
    assert rows[(0, "ticket")]["prunable_weights"] == 784 * 300 + 300 * 100 + 100 * 3


def test_a_source_selects_from_an_imported_dataset(user_code):
    """Sources select from the arrays as from a built-in dataset; a model without a
    layer named 'output' cannot take a ticket to a head of another size."""
    config = _config(data__dataset="my_data:three_digits", data__source="tfds")
    add_source(config, "few", class_fraction=0.7)
    validate(config)
    config.model.name = "user_bad:NoHead"
    with pytest.raises(ConfigError, match=r"^generation.few: its runs have 2 outputs .* "
                                          r"no layer of that name"):
        validate(config)
    config.generation.few.class_fraction = 1.0
    validate(config)  # the same head size: nothing is replaced


BAD = [  # (config changes, the error)
    ({"model.name": "my_models.TinyMLP"},
     r"^model.name: cannot import 'my_models.TinyMLP': no ':' between the module and"),
    ({"model.name": "no_such_module:Net"},
     r"^model.name: cannot import 'no_such_module:Net': no module named 'no_such_module'"),
    ({"model.name": "user_broken:Net"},
     r"^model.name: cannot import 'user_broken:Net': importing 'user_broken' raised "
     r"ImportError: missing dependency"),
    ({"model.name": "my_models:Missing"},
     r"^model.name: cannot import 'my_models:Missing': 'my_models' has no attribute "
     r"'Missing'"),
    ({"model.name": "user_bad:NOT_CALLABLE"},
     r"^model.name: cannot import 'user_bad:NOT_CALLABLE': it is a int, not a callable"),
    ({"model.name": "user_bad:not_a_module"},
     r"^model.name: cannot import 'user_bad:not_a_module': calling it returned a ndarray, "
     r"not a Flax linen module"),
    ({"model.name": "user_bad:wrong_outputs"},
     r"^model.name: the model 'user_bad:wrong_outputs' cannot be used: built with "
     r"num_classes=10, it returns \(1, 11\)"),
    ({"model.name": "user_bad:no_dropout", "model.dropout": 0.5},
     r"^model.dropout: set to 0.5, but 'user_bad:no_dropout' takes no dropout"),
    ({"model.name": "my_models:TinyCNN", "branches": ("ticket", "small_dense")},
     r"^branches: small_dense narrows the model's layer widths, which "
     r"model.name='my_models:TinyCNN' does not expose"),
    ({"data.dataset": "my_data.three_digits"},
     r"^data.dataset: cannot import 'my_data.three_digits': no ':' between the module"),
    ({"data.dataset": "my_data:nothing"},
     r"^data.dataset: cannot import 'my_data:nothing': 'my_data' has no attribute 'nothing'"),
    ({"data.dataset": "user_bad:broken"},
     r"^data.dataset: cannot import 'user_bad:broken': calling it raised RuntimeError: no "
     r"data here"),
    ({"data.dataset": "user_bad:float_images"},
     r"^data.dataset: cannot import 'user_bad:float_images': its train images are float32 "
     r".* not uint8"),
    ({"data.dataset": "user_bad:labels_out_of_range"},
     r"^data.dataset: cannot import 'user_bad:labels_out_of_range': its labels lie in "
     r"\[0, 7\], outside \[0, 3\]"),
    ({"data.dataset": "my_data:three_digits", "data.source": "embedded"},
     r"^data.source: set to 'embedded', but it is only read for the built-in datasets"),
]


@pytest.mark.parametrize("changes, message", BAD,
                         ids=[str(next(iter(c.values()))) + str(i)
                              for i, (c, _) in enumerate(BAD)])
def test_bad_import_paths_fail_before_any_compute(user_code, tmp_path, changes, message):
    overrides = {"data__source": "tfds" if "data.dataset" in changes else "embedded"}
    overrides.update({k.replace(".", "__"): v for k, v in changes.items()})
    config = _config(**overrides)
    with pytest.raises(ConfigError, match=message):
        run_experiment(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
