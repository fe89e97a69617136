"""Imports the offline copies of MNIST / CIFAR-10 into a TFDS data dir, once.

    python -m jaxtickets.data.prepare --dataset mnist --source ../shared/data/mnist.npz \
        --data_dir ~/tensorflow_datasets

Afterwards `tfds.data_source('mnist', data_dir=...)` (and configs with
data.source='tfds', data.data_dir=...) read it without any download.
"""

from __future__ import annotations

import time

from absl import app, flags, logging

_DATASET = flags.DEFINE_enum("dataset", None, ["mnist", "cifar10"], "Dataset to import.")
_SOURCE = flags.DEFINE_string("source", None, "The .npz file (mnist.npz, cifar10_jpeg.npz).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir to write into.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing prepared copy.")
flags.mark_flags_as_required(["dataset", "source", "data_dir"])


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    from jaxtickets.data.tfds_io import decode_shared_npz, import_to_tfds

    start = time.time()
    arrays = decode_shared_npz(_DATASET.value, _SOURCE.value)
    path = import_to_tfds(_DATASET.value, arrays, _DATA_DIR.value, overwrite=_OVERWRITE.value)
    sizes = {split: len(labels) for split, (_, labels) in arrays.items()}
    print(f"prepared {_DATASET.value} {sizes} in {path} ({time.time() - start:.1f}s)")


if __name__ == "__main__":
    app.run(main)
