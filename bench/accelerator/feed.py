"""Can the host feed the accelerator? The streamed JPEG pipeline's images per second.

The pipeline (data/pipeline.py: TFDS records, JPEG decode, random-resized crop, flip,
global batch) reads synthetic photo-like JPEGs at ImageNet's typical size, written in
TFDS format into a temporary folder, with one reader thread per host core. Its rate is
compared with what the masked ResNet-50 step consumes (steps.py): below 1, the
accelerator waits for input.
"""

from __future__ import annotations

import concurrent.futures
import tempfile
import time

import numpy as np

from jaxtickets.training import backend_defaults


def missing_packages() -> list[str]:
    """The streamed pipeline's packages that this Python cannot import."""
    import importlib.util

    def importable(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ImportError:  # a finder that refuses the name outright
            return False

    return [name for name in ("tensorflow_datasets", "grain", "array_record")
            if not importable(name)]


def _jpegs(count: int, threads: int) -> list[bytes]:
    from bench.imagenet_pipeline import synthetic_jpegs

    shares = [count // threads + (i < count % threads) for i in range(threads)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        parts = pool.map(synthetic_jpegs, shares, range(threads))
    return [jpeg for part in parts for jpeg in part]


def measure(images: int, batch: int, size: int, epochs: int) -> dict:
    """Images/s delivered over `epochs` passes of `images` JPEGs, after one warm pass."""
    from bench.imagenet_pipeline import delivery
    from jaxtickets.data import tfds_io

    threads = backend_defaults.reader_threads(backend_defaults.AUTO)
    with tempfile.TemporaryDirectory() as tmp:
        labels = np.random.default_rng(1).integers(0, 1000, images)
        tfds_io.import_jpegs_to_tfds("imagenet2012",
                                     {"train": (_jpegs(images, threads), labels)}, tmp)
        deliver = delivery(tmp, batch, threads, size)
        deliver()  # opens the files, starts the threads
        start = time.perf_counter()
        for _ in range(epochs):
            deliver()
        seconds = time.perf_counter() - start
    return {"reader_threads": threads, "images": images, "batch": batch, "size": size,
            "images_per_second": epochs * deliver.images / seconds}
