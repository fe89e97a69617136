"""One training run: chunks of jitted steps, evaluation, early stopping, resumption.

Everything a run needs to continue after a kill (train state, evaluation history,
elapsed time) is in its step checkpoints, and the batches depend only on the step,
so a resumed run reproduces an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
import time
from typing import Callable, Iterator, Optional

import jax
import numpy as np

from jaxtickets import distributed
from jaxtickets.checkpoints import StepCheckpoints
from jaxtickets.sparsity.masks import remaining_and_total
from jaxtickets.training.run_log import RunLog
from jaxtickets.parallel import batch_sharded, to_host
from jaxtickets.training.batches import BatchOrder, DeviceSplit, device_indices, eval_chunks
from jaxtickets.training.state import TrainState
from jaxtickets.training.steps import CompiledSteps


# Train calls the host may dispatch ahead of the device: enough to hide Python's dispatch
# behind the device's work, few enough that streamed batches cannot pile up on it.
CALLS_IN_FLIGHT = 2


@dataclasses.dataclass(frozen=True)
class RunPlan:
    label: str
    directory: pathlib.Path
    start_step: int
    end_step: int
    eval_every: int
    checkpoint_every: int
    capture_step: Optional[int] = None


@dataclasses.dataclass
class RunOutcome:
    state: TrainState
    history: list[dict]
    wall_seconds: float

    def early_stop(self) -> dict:
        return early_stop(self.history)

    def summary(self) -> dict:
        return summarize(self.history, self.wall_seconds)


# What early stopping chose its evaluation by (a summary's `early_stop_basis`): P2's
# minimum validation loss, or, without a validation split (data.validation_size = 0, as
# in P0, P1 and P3, which report the end of training), the last evaluation.
BY_VALIDATION_LOSS = "validation_loss"
BY_LAST_EVALUATION = "last_evaluation"


def early_stop_basis(history: list[dict]) -> str:
    """BY_VALIDATION_LOSS when every evaluation measured a validation loss; otherwise
    there is nothing held out to choose by, and the run stops at its last evaluation."""
    if all(h.get("validation_loss") is not None for h in history):
        return BY_VALIDATION_LOSS
    return BY_LAST_EVALUATION


def early_stop(history: list[dict]) -> dict:
    """P2's metric: the evaluation of minimum validation loss (first one on ties); the
    last evaluation when the run has no validation split (early_stop_basis). Test
    metrics never choose: that would select on the data the result is reported on."""
    if early_stop_basis(history) == BY_VALIDATION_LOSS:
        return min(history, key=lambda h: (h["validation_loss"], h["step"]))
    return history[-1]


def summarize(history: list[dict], wall_seconds: float) -> dict:
    """A run's summary: its early-stop evaluation and its last one. Validation metrics
    are None without a validation split; `early_stop_basis` says how the early-stop
    evaluation was chosen, so results say what their early_stop_* fields mean."""
    best, last = early_stop(history), history[-1]
    return {
        "early_stop_step": best["step"],
        "early_stop_test_accuracy": best["test_accuracy"],
        "early_stop_validation_loss": best.get("validation_loss"),
        "early_stop_validation_accuracy": best.get("validation_accuracy"),
        "early_stop_basis": early_stop_basis(history),
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "validation_accuracy": last.get("validation_accuracy"),
        "validation_loss": last.get("validation_loss"),
        "train_accuracy": last["train_accuracy"],
        "wall_seconds": wall_seconds,
    }


class Progress:
    """Prints level, step, speed and ETA at most every `every_seconds`."""

    def __init__(self, total_steps: int, every_seconds: float = 10.0,
                 first_step: Callable[[], None] | None = None):
        """`first_step`: called once, before the first report (the start-up line)."""
        self.total_steps = max(total_steps, 1)
        self._first_step = first_step
        self.done_steps = 0
        self.every_seconds = every_seconds
        self._last_print = -math.inf
        self._start = time.time()

    def update(self, label: str, step: int, end: int, steps: int, metrics: dict,
               force: bool = False) -> None:
        if self._first_step is not None:
            first, self._first_step = self._first_step, None
            first()
        self.done_steps += steps
        now = time.time()
        if not force and now - self._last_print < self.every_seconds:
            return
        self._last_print = now
        rate = self.done_steps / max(now - self._start, 1e-9)
        eta = (self.total_steps - self.done_steps) / max(rate, 1e-9)
        acc = metrics.get("test_accuracy")
        acc_text = f" test_acc {100 * acc:.2f}%" if acc is not None else ""
        distributed.primary_print(
            f"[{label}] step {step}/{end}{acc_text} | {rate:.0f} steps/s | "
            f"experiment {100 * self.done_steps / self.total_steps:.1f}% ETA "
            f"{time.strftime('%H:%M:%S', time.gmtime(eta))}", flush=True)


def _eval_outputs(state: TrainState, steps: CompiledSteps, split, batch: int):
    """Per-chunk sums over the split: on-device data by index, or streamed batches."""
    if isinstance(split, DeviceSplit):
        for idx, weights in _device_eval_chunks(split.size, batch, steps.mesh):
            yield steps.eval_batch(state.params, state.batch_stats, state.visible_mask,
                                   split.images, split.labels, idx, weights)
        return
    for images, labels, weights in split.eval_batches(batch_sharded(steps.mesh), batch):
        yield steps.eval_streamed(state.params, state.batch_stats, state.visible_mask,
                                  images, labels, weights)


@functools.lru_cache(maxsize=16)
def _device_eval_chunks(size: int, batch: int, mesh) -> tuple:
    """eval_chunks' indices and weights on the devices, made once per split size: copying
    them at every evaluation cost more than the evaluation itself on a GPU."""
    return tuple((device_indices(idx, mesh, 0), device_indices(weights, mesh, 0))
                 for idx, weights in eval_chunks(size, batch))


def evaluate(state: TrainState, steps: CompiledSteps, split, batch: int) -> dict:
    """Loss and accuracy over the whole split (a DeviceSplit or a StreamedSplit)."""
    totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    outputs = []  # read after the last chunk: the host never waits on each chunk's sums
    for out in _eval_outputs(state, steps, split, batch):
        outputs.append(out)
        if len(outputs) > CALLS_IN_FLIGHT:  # bounds the batches queued on the device
            jax.block_until_ready(outputs[-CALLS_IN_FLIGHT - 1])
    for out in jax.device_get(outputs):
        for k in totals:
            totals[k] += float(out[k])
    assert int(totals["count"]) == split.size, "evaluation must see every example once"
    return {"loss": totals["loss_sum"] / split.size, "accuracy": totals["correct"] / split.size}


def evaluate_if_any(state: TrainState, steps: CompiledSteps, split, batch: int) -> dict:
    """`evaluate` over a split that may be empty: the validation split when
    data.validation_size = 0. An empty split has no loss or accuracy (None, not a
    division by zero), and costs no pass over the data."""
    if split.size == 0:
        return {"loss": None, "accuracy": None}
    return evaluate(state, steps, split, batch)


def _stops(plan: RunPlan) -> list[int]:
    points = {plan.end_step}
    points.update(range(plan.start_step - plan.start_step % plan.eval_every + plan.eval_every,
                        plan.end_step, plan.eval_every))
    points.update(range(plan.start_step - plan.start_step % plan.checkpoint_every
                        + plan.checkpoint_every, plan.end_step, plan.checkpoint_every))
    if plan.capture_step is not None and plan.capture_step > plan.start_step:
        points.add(plan.capture_step)
    return sorted(p for p in points if p > plan.start_step)


def streamed_batches(train, steps: CompiledSteps, order: BatchOrder, start: int,
                     end: int) -> Optional[Iterator]:
    """The host's batches of a streamed split for steps start..end (None for a
    DeviceSplit, whose batches are gathered on the device by index)."""
    if isinstance(train, DeviceSplit):
        return None
    return iter(train.train_batches(batch_sharded(steps.mesh), order, order.seed, start, end))


def train_call(state: TrainState, steps: CompiledSteps, train, order: BatchOrder, step: int,
               most: int, streamed: Optional[Iterator]) -> tuple[TrainState, dict, int]:
    """One call of the compiled step from `step`: a chunk of up to `most` steps gathered
    from a DeviceSplit, or one step on a streamed split's next batch. Returns the state,
    the call's metrics (still on the device) and the steps it took."""
    if streamed is not None:
        state, out = steps.train_streamed(state, *next(streamed))
        return state, out, 1
    count = min(most, steps.steps_per_call)
    idx = order.indices(step, count, steps.steps_per_call)
    state, out = steps.train_chunk(state, train.images, train.labels,
                                   device_indices(idx, steps.mesh, 1), np.int32(count))
    return state, out, count


@dataclasses.dataclass
class RunStart:
    """Where a run starts: its plan's start, or its latest step checkpoint (with the
    evaluation history and elapsed time saved beside it)."""

    step: int
    state: TrainState
    history: list[dict]
    wall_seconds: float
    resumed: bool


def run_start(plan: RunPlan, state: TrainState, checkpoints: StepCheckpoints,
              at_most: Optional[int] = None) -> RunStart:
    """`state` at plan.start_step, unless the run has a step checkpoint to resume from
    (at step `at_most` or before, if given: lanes resume a group at a common step)."""
    resumed = checkpoints.latest(state, at_most)
    if resumed is None:
        return RunStart(plan.start_step, state, [], 0.0, False)
    step, state, meta = resumed
    return RunStart(step, state, meta["history"], meta["wall_seconds"], True)


def train_run(plan: RunPlan, state: TrainState, steps: CompiledSteps, train: DeviceSplit,
              order: BatchOrder, validation: DeviceSplit, test: DeviceSplit,
              eval_batch: int, progress: Progress,
              on_capture: Optional[Callable[[TrainState], None]] = None) -> RunOutcome:
    """Trains from `state` (or from the run's latest step checkpoint) to plan.end_step.

    The splits are DeviceSplits (data on the device, batches gathered by index) or
    StreamedSplits (data/pipeline.py: batches built on the host, one step per call).
    An empty `validation` (data.validation_size = 0) is not evaluated: its metrics are
    None and early stopping takes the last evaluation (early_stop_basis)."""
    checkpoints = StepCheckpoints(plan.directory / "steps")
    start = run_start(plan, state, checkpoints)
    step, state, history = start.step, start.state, start.history
    if start.resumed:
        progress.update(plan.label, step, plan.end_step, step - plan.start_step, {},
                        force=True)
    elif on_capture is not None and plan.capture_step == step:
        on_capture(state)
    log = RunLog(plan.directory, step if start.resumed else None)
    remaining, total = remaining_and_total(state.mask)
    started = time.time() - start.wall_seconds
    interval = new_interval()
    streamed = streamed_batches(train, steps, order, step, plan.end_step)
    for stop in _stops(plan):
        if stop <= step:
            continue
        pending = []  # (metrics on the device, steps): read once the stop is reached
        while step < stop:
            state, out, count = train_call(state, steps, train, order, step, stop - step,
                                           streamed)
            pending.append((out, count))
            if len(pending) > CALLS_IN_FLIGHT:  # bounds the batches queued on the device
                jax.block_until_ready(pending[-CALLS_IN_FLIGHT - 1][0]["losses"])
            step += count
            progress.update(plan.label, step, plan.end_step, count, {})
        _add_chunk_metrics(interval, pending)
        if on_capture is not None and step == plan.capture_step:
            on_capture(state)
        if step % plan.eval_every == 0 or step == plan.end_step:
            record = _evaluate_all(state, steps, validation, test, eval_batch, interval,
                                   order.batch_size, step, plan.label)
            history.append(record)
            log.write(log_entry(record, remaining / total, interval, steps))
            interval = new_interval()
            progress.update(plan.label, step, plan.end_step, 0, record,
                            force=step == plan.end_step)
        if step % plan.checkpoint_every == 0 and step < plan.end_step:
            checkpoints.save(step, state, {"history": history,
                                           "wall_seconds": time.time() - started})
    checkpoints.close()
    log.close()
    if not history:
        raise ValueError(f"{plan.label}: the run has no training steps "
                         f"(start {plan.start_step}, end {plan.end_step})")
    return RunOutcome(state, history, time.time() - started)


def new_interval() -> dict:
    """The training metrics summed between two evaluations."""
    return {"loss_sum": 0.0, "correct": 0, "count": 0, "steps": 0, "start": time.time()}


def _add_chunk_metrics(interval: dict, pending: list[tuple[dict, int]]) -> None:
    """Adds the chunks' training metrics to `interval`, fetched in one transfer.

    Reading a chunk's loss right after its call would make the host wait for the device
    before dispatching the next chunk; an accelerator would idle between chunks. The
    losses are summed one by one in step order, so the totals are the same whatever
    the chunking."""
    fetched = jax.device_get([out for out, _ in pending])
    for out, (_, count) in zip(fetched, pending):
        for loss in np.asarray(out["losses"])[:count]:
            interval["loss_sum"] += float(loss)
        interval["correct"] += int(out["correct"])
        interval["count"] += int(out["count"])
        interval["steps"] += count


def evaluate_untrained(state: TrainState, steps: CompiledSteps, validation: DeviceSplit,
                       test: DeviceSplit, eval_batch: int) -> RunOutcome:
    """A run of zero steps: the network as given (P4's supermasks on the untrained
    network), evaluated once; its single record is both the early-stop and final one."""
    started = time.time()
    val = evaluate_if_any(state, steps, validation, eval_batch)
    tst = evaluate(state, steps, test, eval_batch)
    record = {"step": int(state.step), "train_loss": None, "train_accuracy": None,
              "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
              "test_loss": tst["loss"], "test_accuracy": tst["accuracy"]}
    return RunOutcome(state, [record], time.time() - started)


class DivergenceError(FloatingPointError):
    """Training produced NaN or Inf; the stage stops before writing anything."""


def check_finite(params, train_loss: float, step: int, interval_steps: int,
                 steps: CompiledSteps, label: str) -> None:
    """Raises DivergenceError naming the step window, the first bad layer and the LR."""
    bad_layers = [jax.tree_util.keystr(path) for path, leaf in
                  jax.tree_util.tree_flatten_with_path(params)[0]
                  if not bool(np.isfinite(to_host(leaf)).all())]
    if math.isfinite(train_loss) and not bad_layers:
        return
    lr = (f"{float(steps.learning_rate(step)):.4g}" if steps.learning_rate is not None
          else "unknown")
    raise DivergenceError(
        f"{label}: training diverged between steps {step - interval_steps} and {step}: "
        f"mean training loss {train_loss}; non-finite parameters: "
        f"{', '.join(bad_layers) if bad_layers else 'none'}; learning rate at step {step}: "
        f"{lr}. The stage stopped without writing results; lower the learning rate or "
        "add warmup, then rerun the same command.")


def _evaluate_all(state, steps, validation, test, eval_batch, interval, batch_size, step,
                  label) -> dict:
    check_finite(state.params, mean_train_loss(interval), step, interval["steps"], steps,
                 label)
    val = evaluate_if_any(state, steps, validation, eval_batch)
    tst = evaluate(state, steps, test, eval_batch)
    return evaluation_record(step, interval, val, tst)


def mean_train_loss(interval: dict) -> float:
    return interval["loss_sum"] / max(interval["steps"], 1)


def evaluation_record(step: int, interval: dict, val: dict, tst: dict) -> dict:
    """One entry of a run's history: training metrics since the last evaluation, and
    the validation and test metrics at `step`."""
    return {"step": step, "train_loss": mean_train_loss(interval),
            "train_accuracy": interval["correct"] / max(interval["count"], 1),
            "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
            "test_loss": tst["loss"], "test_accuracy": tst["accuracy"]}


def log_entry(record: dict, density: float, interval: dict, steps: CompiledSteps) -> dict:
    """What the run log (training/run_log.py) gets at an evaluation."""
    return {**record, "density": density,
            "steps_per_second": interval["steps"] / max(time.time() - interval["start"], 1e-9),
            **({"learning_rate": float(steps.learning_rate(record["step"]))}
               if steps.learning_rate is not None else {})}


def host_copy(tree):
    """A host (numpy) copy, safe to keep after the device buffers are donated."""
    return jax.tree_util.tree_map(to_host, tree)

