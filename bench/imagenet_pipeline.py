r"""Target 7 (issue 6), the ImageNet JPEG path: images per second the streamed pipeline
delivers (TFDS read, JPEG decode, random-resized crop, flip, colour jitter, global batch)
beside the masked ResNet-50 train step that consumes them, side by side in one process.

The images are synthetic JPEGs at ImageNet's typical size (500 x 375, quality 90),
written in TFDS format into a temporary folder (tfds_io.import_jpegs_to_tfds), so the
decoding cost is real.

  python -m bench.imagenet_pipeline [--images 256] [--batch 32] [--threads 1] \
      [--size 224] [--repeats 3] [--model resnet50]
Prints one markdown row: delivered images/s, consumed images/s, delivered / consumed.
"""

from __future__ import annotations

import argparse
import io
import tempfile

import jax
import numpy as np
from PIL import Image

from bench.common import interleaved, table
from bench.mixed_precision import step_runner
from jaxtickets.data import augment, pipeline, tfds_io
from jaxtickets.parallel import batch_sharded, make_mesh
from jaxtickets.training.batches import BatchOrder


def synthetic_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Photo-like JPEGs: smooth gradients plus texture, 500 x 375 like most of ImageNet."""
    rng = np.random.default_rng(seed)
    out = []
    y, x = np.mgrid[0:375, 0:500]
    for _ in range(count):
        base = np.stack([x * rng.uniform(0.2, 0.5), y * rng.uniform(0.2, 0.6),
                         (x + y) * rng.uniform(0.1, 0.3)], -1)
        image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def delivery(data_dir: str, batch: int, threads: int, size: int):
    """A callable that pulls one epoch of global batches through the pipeline."""
    split = pipeline.StreamedSplit.open("imagenet2012", "train", data_dir,
                                        augment.ImageRecipe(size=size), threads=threads)
    sharding = batch_sharded(make_mesh(batch))
    order = BatchOrder(len(split), batch, seed=0)
    calls = {"epoch": 0}

    def run():
        start = calls["epoch"] * order.steps_per_epoch
        calls["epoch"] += 1
        for images_, _ in split.train_batches(sharding, order, 0, start,
                                              start + order.steps_per_epoch):
            jax.block_until_ready(images_)

    run.images = order.steps_per_epoch * batch
    return run


def measure(images: int, batch: int, threads: int, size: int, repeats: int,
            model: str = "resnet50") -> list:
    with tempfile.TemporaryDirectory() as tmp:
        labels = np.random.default_rng(1).integers(0, 1000, images)
        tfds_io.import_jpegs_to_tfds("imagenet2012", {"train": (synthetic_jpegs(images),
                                                                labels)}, tmp)
        deliver = delivery(tmp, batch, threads, size)
        consume = step_runner(model, size, batch, 1, "float32")
        seconds = interleaved({"deliver": deliver, "consume": consume}, repeats)
    delivered = deliver.images / seconds["deliver"]
    consumed = batch / seconds["consume"]
    return [model, size, batch, threads, delivered, consumed, delivered / consumed]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="resnet50")
    args = parser.parse_args(argv)
    row = measure(args.images, args.batch, args.threads, args.size, args.repeats,
                  args.model)
    out = table(["model", "size", "batch", "reader threads", "delivered images/s",
                 "consumed images/s", "delivered / consumed"], [row])
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
