"""The examples in examples/ run as a user would run them, at a small size.

examples/own_model.py finds a ticket in its own NNX CNN with its own training loop and
the jaxtickets.lottery library; its printed weight counts must equal the closed form of
exact layer-wise pruning, and every level must learn MNIST far above chance.
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys

from flax import nnx

from conftest import ROOT
from jaxtickets import lottery

EXAMPLE = ROOT / "examples" / "own_model.py"
LEVELS = 2
RATE = 0.2
OUTPUT_RATE = RATE / 2  # the example's rates={"out": rate / 2}
# Seeds 0-4 at 200 steps per level: every level's test accuracy 92.5%-95.0% (chance
# 10%), so above 88%.
ACCURACY_FLOOR = 88.0


def _example_module():
    spec = importlib.util.spec_from_file_location("own_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_kept() -> list[int]:
    """Kept weights after 0..LEVELS rounds: each layer of the example's CNN loses
    round-half-up(rate x remaining) per round."""
    cnn = nnx.eval_shape(lambda: _example_module().CNN(nnx.Rngs(0)))
    layers = lottery.counts(lottery.ones_mask(nnx.state(cnn, nnx.Param))).layers
    kept = []
    remaining = {name: total for name, (_, total) in layers.items()}
    for _ in range(LEVELS + 1):
        kept.append(sum(remaining.values()))
        for name, r in remaining.items():
            rate = OUTPUT_RATE if name.startswith("out/") else RATE
            remaining[name] = r - math.floor(rate * r + 0.5)
    return kept


def test_own_model_example_finds_a_ticket():
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", "200", "--levels", str(LEVELS),
         "--rewind-step", "20", "--rate", str(RATE)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r"^level (\d+): (\d+)/(\d+) weights \(([\d.]+)%\), "
                      r"test accuracy ([\d.]+)%$", done.stdout, flags=re.MULTILINE)
    assert [int(r[0]) for r in rows] == list(range(LEVELS + 1)), done.stdout
    expected = _expected_kept()
    total = expected[0]
    for (level, kept, of, percent, accuracy), want in zip(rows, expected):
        assert (int(kept), int(of)) == (want, total), (level, done.stdout)
        assert float(percent) == round(100 * want / total, 2)
        assert ACCURACY_FLOOR < float(accuracy) <= 100.0, (level, done.stdout)
    assert float(rows[-1][3]) == 64.10  # 0.8^2 per layer, the output layer at 0.9^2
