"""Live logs of a training run: JSON lines and TensorBoard event files.

Both are written while the run trains, so a long level can be watched with `tail -f
RUN/log.jsonl` or `tensorboard --logdir WORKDIR`. TensorBoard files come from
tensorboardX, which needs no TensorFlow. On resume the JSON lines past the resumed
step are dropped (they are logged again); TensorBoard shows such repeats as is.
"""

from __future__ import annotations

import json
import pathlib
from typing import Optional

from jaxtickets import distributed

LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"


class RunLog:
    """The run's JSON lines and TensorBoard files (the primary process's copy only:
    in a multi-host run the others log nothing, their metrics being the same)."""

    def __init__(self, run_dir: pathlib.Path, resumed_step: Optional[int] = None):
        self._enabled = distributed.is_primary()
        if not self._enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / LOG_FILE
        if resumed_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if _step_of(line) is not None and _step_of(line) <= resumed_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a")
        self._writer = _summary_writer()(str(run_dir / TENSORBOARD_DIR))

    def write(self, record: dict) -> None:
        if not self._enabled:
            return
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self._writer.add_scalar(key, value, record["step"])
        self._writer.flush()

    def close(self) -> None:
        if not self._enabled:
            return
        self._file.close()
        self._writer.close()


def _summary_writer() -> type:
    """tensorboardX's SummaryWriter, imported without PyTorch. tensorboardX imports torch
    whenever it is installed (only to accept torch tensors, which are never logged here),
    and that import took 1.5-2 s of every run's start-up on a 2-core CPU. The import is
    refused for as long as tensorboardX loads; a torch that is already loaded is used."""
    import sys

    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # `import torch` raises ImportError, as if not installed
    try:
        from tensorboardX import SummaryWriter
    finally:
        if sys.modules.get("torch", ...) is None:
            del sys.modules["torch"]
    return SummaryWriter


def _step_of(line: str) -> Optional[int]:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut by a kill
