"""Learning-rate schedules: constant, step decay, linear warmup, cosine."""

from __future__ import annotations

import pytest

from jaxtickets.training.schedules import build_schedule

BASE = 0.1
TOTAL = 1000


def _at(schedule, step: int) -> float:
    return float(schedule(step))


@pytest.mark.parametrize("step", [0, 1, 499, TOTAL - 1, TOTAL, 5 * TOTAL])
def test_constant(step):
    assert _at(build_schedule("constant", BASE, TOTAL), step) == pytest.approx(BASE)


@pytest.mark.parametrize("step, expected", [
    (0, BASE),
    (399, BASE),               # just before the first boundary
    (400, BASE * 0.1),         # the decay applies at the boundary step itself
    (401, BASE * 0.1),
    (799, BASE * 0.1),
    (800, BASE * 0.01),
    (TOTAL, BASE * 0.01),
])
def test_step_decay_at_boundaries(step, expected):
    schedule = build_schedule("step", BASE, TOTAL, boundaries=(400, 800), decay_factor=0.1)
    assert _at(schedule, step) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["constant", "step", "cosine"])
def test_linear_warmup_from_zero(name):
    warmup = 100
    schedule = build_schedule(name, BASE, TOTAL, warmup_steps=warmup, boundaries=(400,))
    unwarmed = build_schedule(name, BASE, TOTAL, boundaries=(400,))
    assert _at(schedule, 0) == 0.0
    for step in (10, 25, 50, 99):
        assert _at(schedule, step) == pytest.approx(step / warmup * _at(unwarmed, step),
                                                    rel=1e-5)
    # Reaches the plain schedule at warmup_steps and follows it afterwards.
    for step in (warmup, warmup + 1, 300, 500, TOTAL):
        assert _at(schedule, step) == pytest.approx(_at(unwarmed, step), rel=1e-6)
    if name == "constant":
        assert _at(schedule, warmup) == pytest.approx(BASE)
        assert _at(schedule, warmup // 2) == pytest.approx(BASE / 2)


def test_cosine_endpoints_and_midpoint():
    schedule = build_schedule("cosine", BASE, TOTAL)
    assert _at(schedule, 0) == pytest.approx(BASE)
    assert _at(schedule, TOTAL // 2) == pytest.approx(BASE / 2, rel=1e-5)
    assert _at(schedule, TOTAL) == pytest.approx(0.0, abs=1e-9)
    values = [_at(schedule, s) for s in range(0, TOTAL + 1, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # never increases


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="train.schedule"):
        build_schedule("linear", BASE, TOTAL)
