"""Train-step throughput per model: masked (20% of every prunable kernel kept) beside dense.

Both variants are jaxtickets' own compiled train chunk (training/steps.py) on random
uint8 images held on the device, with the steps per call the driver would choose on this
backend (training/backend_defaults.py). Each is compiled ahead of time, so compilation
is timed apart from training, and the compiled program reports its memory. The two
variants are timed interleaved (bench/common.py), so a slow spell hits both alike.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import interleaved
from bench.masked_step import sparse_mask
from jaxtickets.models import abstract_variables, create_model
from jaxtickets.parallel import make_mesh, replicated
from jaxtickets.training import backend_defaults
from jaxtickets.training.batches import BatchOrder, device_indices, put_split
from jaxtickets.training.optimizers import build_optimizer
from jaxtickets.training.schedules import build_schedule
from jaxtickets.training.state import fresh_state
from jaxtickets.training.steps import InputSpec, make_steps

KEEP = 0.2  # fraction of every prunable kernel the masked variant keeps


@dataclasses.dataclass(frozen=True)
class StepCase:
    """One model at the batch, input and precision the papers train it with."""

    model: str
    image: tuple[int, int, int]   # [H, W, C]
    classes: int
    batch: int
    optimizer: str
    compute_dtype: str = "float32"
    # None: the driver's choice on this backend; 1 for streamed data (one batch per call).
    steps_per_call: int | None = None


CASES = (
    StepCase("lenet300_100", (28, 28, 1), 10, 60, "adam"),
    StepCase("conv2", (32, 32, 3), 10, 60, "adam"),
    StepCase("conv4", (32, 32, 3), 10, 60, "adam"),
    StepCase("conv6", (32, 32, 3), 10, 60, "adam"),
    StepCase("resnet20", (32, 32, 3), 10, 128, "momentum"),
    StepCase("vgg19", (32, 32, 3), 10, 64, "momentum"),
    StepCase("resnet50", (224, 224, 3), 1000, 256, "momentum", "bfloat16", 1),
)


def smoke_cases() -> tuple[StepCase, ...]:
    """Every case at toy size: batch 4, ResNet-50 on 32-pixel images."""
    return tuple(dataclasses.replace(c, batch=4, image=(32, 32, 3) if c.image[0] > 32
                                     else c.image) for c in CASES)


def random_variables(shapes: dict, seed: int = 0) -> dict:
    """Variables of the given shapes drawn on the host: He-normal kernels, zero biases,
    unit BN scales and variances. Speed does not depend on the values, and the model's
    own initialisers would cost a compilation per model (seconds on a CPU)."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['kernel']"):
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.normal(0, np.sqrt(2 / fan_in), leaf.shape).astype(leaf.dtype)
        ones = name.endswith("['scale']") or name.endswith("['var']")
        return np.full(leaf.shape, 1 if ones else 0, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


class CompiledVariant:
    """One variant's compiled train chunk, its state and its data: call() runs `calls`
    chunks and blocks until the device is done."""

    def __init__(self, case: StepCase, mask_kind: str, steps_per_call: int):
        model = create_model(case.model, case.classes)
        variables = random_variables(abstract_variables(model, case.image))
        params = variables["params"]
        mesh = make_mesh(case.batch)
        examples = 4 * case.batch
        rng = np.random.default_rng(0)
        self.split = put_split(rng.integers(0, 256, (examples,) + case.image, np.uint8),
                               rng.integers(0, case.classes, examples), mesh)
        tx = build_optimizer(case.optimizer, build_schedule("constant", 1e-3, 1000))
        spec = InputSpec((0.5,) * case.image[2], (0.25,) * case.image[2],
                         compute_dtype=case.compute_dtype)
        steps = make_steps(model, tx, spec, mesh, steps_per_call)
        mask = (sparse_mask(params, KEEP) if mask_kind == "masked"
                else jax.tree_util.tree_map(lambda _: None, params))
        # One compiled program for the whole state: op by op, every leaf's masking and
        # optimizer moments would compile programs of their own.
        build = jax.jit(lambda p, s, m: fresh_state(p, s, m, tx, 0, jax.random.PRNGKey(1)),
                        out_shardings=replicated(mesh))
        self.state = build(params, variables.get("batch_stats", {}), mask)
        order = BatchOrder(examples, case.batch, 0)
        self.idx = device_indices(order.indices(0, steps_per_call, steps_per_call), mesh, 1)
        self.count = np.int32(steps_per_call)
        self.lowered = steps.train_chunk.lower(self.state, self.split.images,
                                               self.split.labels, self.idx, self.count)
        self.compiled, self.compile_seconds = None, None
        self.calls = 1
        self.losses = None

    def compile(self) -> None:
        start = time.perf_counter()
        self.compiled = self.lowered.compile()
        self.compile_seconds = time.perf_counter() - start

    def __call__(self) -> None:
        for _ in range(self.calls):
            self.state, out = self.compiled(self.state, self.split.images,
                                            self.split.labels, self.idx, self.count)
        self.losses = out["losses"]
        jax.block_until_ready(self.losses)

    def program_bytes(self) -> int | None:
        """Device memory the compiled program needs: its arguments, outputs not aliased
        to donated arguments, and temporaries (XLA's memory analysis)."""
        try:
            m = self.compiled.memory_analysis()
        except Exception:  # noqa: BLE001 - not every backend reports it
            return None
        if m is None:
            return None
        return int(m.argument_size_in_bytes + m.output_size_in_bytes
                   - m.alias_size_in_bytes + m.temp_size_in_bytes)


def process_peak_bytes() -> int | None:
    """The device's peak memory in use by this process so far (GPU and TPU report it)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def compile_all(variants: list[CompiledVariant]) -> None:
    """Compiles the variants one after another. In parallel threads on an H200 host the
    compilations contended (ResNet-50: 246 s) and XLA's convolution autotuning timed its
    candidates on a shared GPU (BENCHMARKS.md); one at a time, each time is its own."""
    for variant in variants:
        variant.compile()


def time_variants(variants: dict, sample_seconds: float, repeats: int) -> dict[str, float]:
    """Median seconds per sample of each variant, interleaved. A sample is as many calls
    as take about `sample_seconds` after a warm call (0: one call, no warm-up)."""
    for v in variants.values():
        if sample_seconds > 0:
            v()
            start = time.perf_counter()
            v()
            v.calls = max(1, math.ceil(sample_seconds / max(time.perf_counter() - start,
                                                            1e-6)))
    return interleaved(variants, repeats, warmup=0)


def driver_steps_per_call(case: StepCase) -> int:
    """The steps per call the driver would use for this case on this backend."""
    if case.steps_per_call:
        return case.steps_per_call
    convolutional = backend_defaults.has_convolutions(
        create_model(case.model, case.classes), case.image)
    return backend_defaults.steps_per_call(backend_defaults.AUTO, jax.default_backend(),
                                           convolutional)


def measure_cases(cases: tuple[StepCase, ...], sample_seconds: float, repeats: int,
                  on_row=None) -> list[dict]:
    """Steps/s, images/s, compile seconds and memory of each case, masked and dense."""
    rows = []
    for case in cases:
        pair = {kind: CompiledVariant(case, kind, driver_steps_per_call(case))
                for kind in ("masked", "dense")}
        compile_all(list(pair.values()))
        rows.append(_row(case, pair, time_variants(pair, sample_seconds, repeats)))
        del pair  # frees the case's device buffers before the next one runs
        if on_row is not None:
            on_row(rows)
    return rows


def _row(case: StepCase, variants: dict, seconds: dict) -> dict:
    per_call = int(variants["masked"].count)
    row = {"model": case.model, "image": list(case.image), "batch": case.batch,
           "compute_dtype": case.compute_dtype, "optimizer": case.optimizer,
           "steps_per_call": per_call}
    for kind, v in variants.items():
        steps = v.calls * per_call
        if not np.isfinite(np.asarray(v.losses)).all():
            raise FloatingPointError(f"{case.model} {kind}: non-finite training loss")
        row[kind] = {"steps_per_second": steps / seconds[kind],
                     "images_per_second": steps * case.batch / seconds[kind],
                     "compile_seconds": v.compile_seconds,
                     "program_bytes": v.program_bytes(),
                     "steps_timed": steps}
    row["masked_over_dense_time"] = (row["dense"]["steps_per_second"]
                                     / row["masked"]["steps_per_second"])
    row["process_peak_bytes"] = process_peak_bytes()
    return row


def chunk_length_study(case: StepCase, lengths: tuple[int, ...], sample_seconds: float,
                       repeats: int) -> list[dict]:
    """The masked step at several steps per call: where a call's fixed cost (Python
    dispatch, launches, the host round trip) stops mattering."""
    variants = {n: CompiledVariant(case, "masked", n) for n in lengths}
    compile_all(list(variants.values()))
    seconds = time_variants(variants, sample_seconds, repeats)
    return [{"model": case.model, "batch": case.batch, "steps_per_call": n,
             "steps_per_second": v.calls * n / seconds[n]} for n, v in variants.items()]
