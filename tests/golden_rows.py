"""The smoke runs of shipped configs whose rows are pinned in tests/data/golden_rows.json.

A refactor of the driver must not change a single result (beyond the float rounding
that differs between CPUs: ROUNDING_BOUNDS): every case below runs one
shipped config's smoke variant (on the embedded MNIST subset, a small TFDS import of
../shared/data's CIFAR-10, or JPEG ImageNet made by conftest) and its rows, without
wall-clock time, are compared with the rows recorded before the refactor: one case per
shipped config (17), its other variants sharing the code paths of these.

Record again (only when a change of results is intended, and say so in the commit):
    python tests/golden_rows.py [CASE ...]
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOLDEN_FILE = ROOT / "tests" / "data" / "golden_rows.json"
# Fields that differ between equal runs (wall-clock time) or that describe the machine.
VOLATILE = frozenset({"wall_seconds"})

# name -> (config file, argument, data: 'mnist', 'cifar10', 'imagenet' (with Places365),
# or 'imagenet_1percent': labels cycling through the 1% class subset, so that every
# class selection holds images)
CASES = {
    "mnist_lenet": ("mnist_lenet", "smoke", "mnist"),
    "mnist_sources": ("mnist_sources", "smoke", "mnist"),
    "mnist_criteria": ("mnist_criteria", "smoke", "mnist"),
    "mnist_supermask": ("mnist_supermask", "smoke", "mnist"),
    "mnist_p2_controls": ("mnist_p2_controls", "smoke", "mnist"),
    "cifar10_conv": ("cifar10_conv", "conv2,smoke", "cifar10"),
    "cifar10_conv_controls": ("cifar10_conv_controls", "conv2,smoke", "cifar10"),
    "cifar10_sources": ("cifar10_sources", "smoke", "cifar10"),
    "cifar10_p0": ("cifar10_p0", "resnet18,labels,rotnet,smoke", "cifar10"),
    "p1_transfer": ("p1_transfer", "halves,smoke", "cifar10"),
    "p2_deep_cifar": ("p2_deep_cifar", "resnet20,smoke", "cifar10"),
    "p3_resnet20": ("p3_resnet20", "smoke", "cifar10"),
    "p3_cifar": ("p3_cifar", "resnet20,cifar10,smoke", "cifar10"),
    "imagenet_rotnet": ("imagenet_rotnet", "smoke", "imagenet"),
    "imagenet_limited": ("imagenet_limited", "samples10,classes10,semisup,smoke",
                         "imagenet_1percent"),
    "p3_imagenet": ("p3_imagenet", "resnet18,smoke", "imagenet"),
    "p1_cross_dataset": ("p1_cross_dataset", "imagenet2012,smoke", "imagenet"),
}


def prepare_data(kind: str, root: pathlib.Path) -> str | None:
    """A data dir with the images the case needs (None: the embedded MNIST)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import SHARED_DATA, SHARED_FILES, make_jpeg_imagenet

    if kind == "mnist":
        return None
    if kind == "cifar10":  # a fixed random 2,500 / 500 (../shared's files are by class)
        from jaxtickets.data.tfds_io import decode_shared_npz, import_to_tfds

        rng = np.random.default_rng(0)
        indices = {"train": np.sort(rng.choice(50_000, 2500, replace=False)),
                   "test": np.sort(rng.choice(10_000, 500, replace=False))}
        arrays = decode_shared_npz("cifar10", SHARED_DATA / SHARED_FILES["cifar10"],
                                   indices=indices)
        import_to_tfds("cifar10", arrays, root / "cifar10")
        return str(root / "cifar10")
    if kind == "imagenet_1percent":
        from jaxtickets.data.selections import chosen_classes
        from jaxtickets.experiment.sources import CLASS_STREAM, _seed

        cycle = chosen_classes(1000, 0.01, _seed(0, CLASS_STREAM))
        return make_jpeg_imagenet(root / kind, 60, 12, cycle=cycle)
    make_jpeg_imagenet(root / "imagenet", 30, 8, classes=365, name="places365_small")
    return make_jpeg_imagenet(root / "imagenet", 45, 13)


def case_config(name: str, data_dir: str | None):
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import load_config

    config_name, arg, _ = CASES[name]
    config = load_config(config_name, arg)
    if data_dir is not None:
        config.data.data_dir = data_dir
    config.runtime.plot = False
    return config


def comparable(rows: list[dict]) -> list[dict]:
    """The rows without wall-clock times (also in a ticket's `generation` record)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        return value

    return [strip(row) for row in rows]


# Float fields whose last bits depend on the machine's XLA:CPU code (its instruction set
# picks other kernels and so other rounding), and how far they may move: the bounds of
# 8 devices against one (tests/test_experiment.py). Measured between two CPUs on the
# mnist_lenet case: accuracies 0.001 apart, losses 4e-4 relative. Everything else
# (counts, densities, steps, FLOPs, structure) must be equal.
# Near-equal validation losses may swap which evaluation early stopping picks, and a
# network near chance (an untrained supermask) moves most: accuracies get 0.03. A
# learned supermask's mask is drawn from float logits, so its counts move by a few
# weights in 10,000 (the fields of its rows get 1e-3 relative).
ROUNDING_BOUNDS = {"accuracy": ("abs", 0.03), "loss": ("rel", 0.1),
                   "correlation": ("rel", 0.1), "early_stop_step": ("any", None)}
SAMPLED_MASK_BRANCH = "learned_supermask"
SAMPLED_MASK_BOUND = ("rel", 1e-3)


def assert_rows_match(actual: list[dict], golden: list[dict]) -> None:
    """`actual` equals `golden` (both `comparable`), exactly but for the rounding of
    the fields in ROUNDING_BOUNDS."""
    assert len(actual) == len(golden)
    for a, g in zip(actual, golden):
        sampled = str(g.get("branch", "")).startswith(SAMPLED_MASK_BRANCH)
        _assert_match(a, g, f"row {g.get('replicate')}/{g.get('level')}/{g.get('branch')}",
                      sampled=sampled)


def _assert_match(a, g, where: str, field: str = "", sampled: bool = False) -> None:
    if isinstance(g, dict):
        assert isinstance(a, dict) and a.keys() == g.keys(), where
        for k in g:
            _assert_match(a[k], g[k], where, k, sampled)
        return
    bound = next((b for name, b in ROUNDING_BOUNDS.items() if name in field), None)
    if bound is None and sampled and isinstance(g, (int, float)):
        bound = SAMPLED_MASK_BOUND
    if bound is None or not isinstance(g, (int, float)) or a is None:
        assert a == g, (where, field, a, g)
        return
    kind, tolerance = bound
    if kind == "any":
        return
    slack = tolerance if kind == "abs" else tolerance * abs(g)
    assert abs(a - g) <= slack, (where, field, a, g)


def run_case(name: str, data_dirs: dict[str, str | None], workdir: pathlib.Path) -> dict:
    """The case's results (rows and stages) from a run in `workdir`."""
    from jaxtickets.experiment.driver import run_experiment

    config = case_config(name, data_dirs[CASES[name][2]])
    return run_experiment(config, workdir)


def main(names: list[str]) -> None:
    names = names or list(CASES)
    golden = json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        data_dirs = {k: prepare_data(k, tmp) for k in {CASES[n][2] for n in names}}
        for name in names:
            started = time.time()
            results = run_case(name, data_dirs, tmp / name)
            golden[name] = {"rows": comparable(results["rows"]),
                            "total_steps": sum(s["train_steps"] for s in results["stages"]),
                            "train_flops": sum(s["train_flops"] for s in results["stages"])}
            print(f"{name}: {len(results['rows'])} rows in {time.time() - started:.0f}s",
                  flush=True)
            GOLDEN_FILE.parent.mkdir(exist_ok=True)
            GOLDEN_FILE.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
