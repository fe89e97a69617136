"""Live logs: JSON lines and TensorBoard event files written while a run trains."""

from __future__ import annotations

import json
import struct

import pytest
from tensorboardX.proto import event_pb2


def read_events(directory):
    """Scalar values per tag from TFRecord-framed Event protos (no TensorFlow needed)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            payload = data[offset + 12:offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_jsonl_and_tensorboard_logs_of_each_run(smoke_run):
    workdir, results = smoke_run
    run = workdir / "replicate_0" / "level_01" / "ticket"
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [100, 200, 300]
    for record in lines:
        assert record["learning_rate"] == pytest.approx(1.2e-3)
        assert record["density"] == pytest.approx(0.8004, abs=1e-4)
        assert record["steps_per_second"] > 0
        assert {"train_loss", "train_accuracy", "validation_loss", "test_accuracy"} <= set(record)
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [r["test_accuracy"] for r in lines] == [h["test_accuracy"] for h in history]
    scalars = read_events(run / "tensorboard")
    assert [s for s, _ in scalars["test_accuracy"]] == [100, 200, 300]
    assert [v for _, v in scalars["test_accuracy"]] == pytest.approx(
        [r["test_accuracy"] for r in lines])
    assert set(scalars) >= {"train_loss", "learning_rate", "density", "steps_per_second"}
