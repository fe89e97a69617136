r"""Prepares MNIST or CIFAR-10 in a TFDS data dir, once: downloaded, or from an offline copy.

With internet access (fetches the original files: 12 MB for MNIST, 170 MB for CIFAR-10):

    python -m jaxtickets.data.prepare --dataset mnist --data_dir ~/tensorflow_datasets

From an offline .npz copy (the layouts of jaxtickets/data/npz_files.py, e.g.
mnist.npz or cifar10_jpeg.npz):

    python -m jaxtickets.data.prepare --dataset mnist --source ../shared/data/mnist.npz \
        --data_dir ~/tensorflow_datasets

Neither way needs TensorFlow. Without --source, TFDS's download manager fetches the
files that TFDS's own builder would, from the same URLs, checks them against the
checksums TFDS registers, and keeps them in --download_dir (default
DATA_DIR/downloads, TFDS's default; a rerun reuses them, and they may be deleted once
the dataset is prepared). They are decoded with numpy (jaxtickets/data/originals.py):
TFDS's builders would need TensorFlow for that step. Either way TFDS's writer builds the
dataset in a temporary folder inside DATA_DIR, its split sizes are checked, and only
then is it renamed into place: a failed or interrupted run leaves nothing that loads
as prepared, and running the same command again starts over (or resumes the download).

Afterwards `tfds.data_source('mnist', data_dir=...)` (and configs with
data.source='tfds', data.data_dir=...) read it without any download. When the dataset
cannot be prepared, the command says why and exits with status 1.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags, logging

_DATASET = flags.DEFINE_enum("dataset", None, ["mnist", "cifar10"], "Dataset to prepare.")
_SOURCE = flags.DEFINE_string(
    "source", None,
    "Offline copy to import (.npz: mnist.npz, cifar10_jpeg.npz). Without it the original "
    "files are downloaded (no TensorFlow needed).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir to write into.")
_DOWNLOAD_DIR = flags.DEFINE_string(
    "download_dir", None,
    "Where downloaded files are kept (and reused from); default DATA_DIR/downloads. "
    "Not used with --source.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing prepared copy.")
flags.mark_flags_as_required(["dataset", "data_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    import tensorflow_datasets as tfds

    from jaxtickets.data import originals, tfds_io

    name, data_dir = _DATASET.value, os.path.expanduser(_DATA_DIR.value)
    start = time.time()
    try:
        if _SOURCE.value:
            if _DOWNLOAD_DIR.value:
                raise app.UsageError("--download_dir goes with a download, not --source")
            arrays = tfds_io.decode_shared_npz(name, os.path.expanduser(_SOURCE.value))
            path = tfds_io.import_to_tfds(name, arrays, data_dir, overwrite=_OVERWRITE.value)
        else:
            path = originals.download_and_prepare(name, data_dir,
                                                  download_dir=_DOWNLOAD_DIR.value,
                                                  overwrite=_OVERWRITE.value)
    except originals.DownloadFailed as err:
        sys.exit(f"error: {err}\nNothing was prepared. Run the same command again to retry "
                 "(files already downloaded are reused), or import an offline copy:\n  "
                 f"{tfds_io.prepare_command(name, data_dir, source='FILE.npz')}")
    except (FileExistsError, FileNotFoundError, ValueError, KeyError) as err:
        sys.exit(f"error: {err}" if not isinstance(err, KeyError) else
                 f"error: {_SOURCE.value} lacks the array {err}")
    # Read back from disk what a run will see.
    splits = tfds.builder(name, data_dir=data_dir).info.splits
    sizes = {split: splits[split].num_examples for split in sorted(splits)}
    print(f"prepared {name} {sizes} in {path} ({time.time() - start:.1f}s)")


if __name__ == "__main__":
    app.run(main)
