"""Read a finished (or partly finished) workdir back: config, model, and every stage artifact.

`RunArtifacts.open(workdir)` rebuilds the run's model from `workdir/config.json`,
derives a zero-filled tree with the exact shapes and dtypes of the model's variables
(`jax.eval_shape` of `model.init`, no compute), and restores the driver's Orbax stage
outputs through `checkpoints.load_tree`, which checks every shape and dtype:

    replicate_R/theta_0                   {"params", "batch_stats"} at initialization
    replicate_R/rewind                    the rewind snapshot
    replicate_R/level_LL/mask             boolean mask (None = never pruned), LL > 0
    replicate_R/level_LL/<branch>/final   {"params", "batch_stats"} after training
                                          (draw d > 0 of a random control: <branch>_draw<d>)

Level 0 has no mask on disk: it is the all-ones mask over the prunable set, built from
the config's `pruning.prune` policy exactly as the driver builds it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

import jax
import numpy as np

from jaxtickets import checkpoints
from jaxtickets.checkpoints import CheckpointError
from jaxtickets.data.datasets import input_shape, is_known, num_classes
from jaxtickets.branches import run_name
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.sparsity import masks as masks_lib

PyTree = Any
CONFIG_FILE = "config.json"
_LEVEL_DIR = re.compile(r"^level_(\d+)$")


def _zeros_like_shapes(shapes: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


@dataclasses.dataclass
class RunArtifacts:
    """Typed access to one workdir's stage artifacts (host numpy trees)."""

    workdir: pathlib.Path
    config: dict            # the resolved config (config.json's "config")
    model: Any              # the flax module, rebuilt by name
    like: PyTree            # {"params", "batch_stats"} zeros shaped like the model
    policy: masks_lib.PrunablePolicy

    @classmethod
    def open(cls, workdir) -> "RunArtifacts":
        workdir = pathlib.Path(workdir)
        path = workdir / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {workdir} is not a jaxtickets workdir "
                                    "(or the run never started)")
        stored = checkpoints.read_json(path)
        try:
            config = stored["config"]
            name, dropout = config["model"]["name"], float(config["model"]["dropout"])
            dataset = config["data"]["dataset"]
            prune = dict(config["pruning"]["prune"])
        except (KeyError, TypeError) as err:
            raise CheckpointError(f"{path}: missing key {err} in the stored config") from err
        if not is_known(dataset):
            raise CheckpointError(f"{path}: unknown dataset {dataset!r}")
        model = create_model(name, num_classes(dataset), dropout)
        image_size = int(config["data"].get("image_size", 224))
        shapes = abstract_variables(model, input_shape(dataset, image_size))
        like = {"params": _zeros_like_shapes(shapes["params"]),
                "batch_stats": _zeros_like_shapes(shapes.get("batch_stats", {}))}
        return cls(workdir, config, model, like, masks_lib.PrunablePolicy(**prune))

    # ---- paths --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.config['model']['name']}/{self.config['data']['dataset']}"

    def replicate_dir(self, replicate: int) -> pathlib.Path:
        return self.workdir / f"replicate_{replicate}"

    def level_dir(self, replicate: int, level: int) -> pathlib.Path:
        return self.replicate_dir(replicate) / f"level_{level:02d}"

    def _load(self, path: pathlib.Path, like: PyTree, what: str, replicate: int) -> PyTree:
        if not checkpoints.exists(path):
            raise CheckpointError(f"{what}: checkpoint {path} is missing or unfinished "
                                  f"(levels on disk for replicate {replicate}: "
                                  f"{self.levels(replicate)})")
        return checkpoints.load_tree(path, like)

    # ---- artifacts ----------------------------------------------------------------------
    def theta_0(self, replicate: int = 0) -> PyTree:
        """{"params", "batch_stats"} at initialization."""
        return self._load(self.replicate_dir(replicate) / "theta_0", self.like, "theta_0",
                          replicate)

    def rewind(self, replicate: int = 0) -> PyTree:
        """{"params", "batch_stats"} at the rewind step (equal to theta_0 for '0st')."""
        return self._load(self.replicate_dir(replicate) / "rewind", self.like, "rewind",
                          replicate)

    def init_mask(self) -> PyTree:
        """The all-ones mask over the prunable set (the level-0 mask)."""
        return masks_lib.init_mask(self.like["params"], self.policy)

    def mask(self, replicate: int = 0, level: int = 0) -> PyTree:
        """Level `level`'s boolean mask; None leaves are never pruned. Level 0: all ones."""
        if level < 0:
            raise ValueError(f"level must be >= 0, got {level}")
        if level == 0:
            return self.init_mask()
        return self._load(self.level_dir(replicate, level) / "mask", self.init_mask(),
                          f"mask of level {level}", replicate)

    def final(self, replicate: int = 0, level: int = 0, branch: str = "ticket",
              draw: int = 0) -> PyTree:
        """{"params", "batch_stats"} at the end of training of (level, branch, draw)."""
        name = run_name(branch, draw)
        what = f"final weights of level {level} branch {branch!r}" + (
            f" draw {draw}" if draw else "")
        return self._load(self.level_dir(replicate, level) / name / "final", self.like,
                          what, replicate)

    # ---- what is on disk ----------------------------------------------------------------
    def replicates(self) -> list[int]:
        out = []
        for p in self.workdir.glob("replicate_*"):
            suffix = p.name.split("_", 1)[1]
            if p.is_dir() and suffix.isdigit():
                out.append(int(suffix))
        return sorted(out)

    def levels(self, replicate: int = 0) -> list[int]:
        """Levels with a finished mask (L > 0) or a finished final of any branch."""
        rdir = self.replicate_dir(replicate)
        if not rdir.is_dir():
            return []
        out = []
        for p in rdir.iterdir():
            m = _LEVEL_DIR.match(p.name)
            if not (m and p.is_dir()):
                continue
            level = int(m.group(1))
            if (level > 0 and checkpoints.exists(p / "mask")) or self.branches(replicate, level):
                out.append(level)
        return sorted(out)

    def branches(self, replicate: int = 0, level: int = 0) -> list[str]:
        """Branches of (replicate, level) whose final weights are on disk."""
        ldir = self.level_dir(replicate, level)
        if not ldir.is_dir():
            return []
        return sorted(p.name for p in ldir.iterdir()
                      if p.is_dir() and checkpoints.exists(p / "final"))
