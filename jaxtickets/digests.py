"""Integrity digests: a sha256 per leaf over its dtype, shape and bytes.

Orbax does not checksum array data, so a flipped byte in a checkpoint reads back as
a wrong weight. Every stage artifact and step checkpoint carries these digests, and
every restore is verified against them before anything trains from it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np

from jaxtickets.errors import CheckpointError
from jaxtickets.parallel import to_host

PyTree = Any
DIGEST_FORMAT = "jaxtickets-sha256-v1"


# ---- digests --------------------------------------------------------------------------
def _leaf_array(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype,
                                                             jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(to_host(leaf), order="C")  # (ascontiguousarray makes 0-d arrays 1-d)


def tree_digest(tree: PyTree) -> dict:
    """sha256 of every leaf over its dtype, shape and bytes, keyed by the leaf's path."""
    leaves = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = _leaf_array(leaf)
        h = hashlib.sha256(f"{arr.dtype.name}|{list(arr.shape)}|".encode())
        h.update(arr.reshape(-1).view(np.uint8).data)
        leaves[jax.tree_util.keystr(path)] = {"dtype": arr.dtype.name,
                                             "shape": list(arr.shape),
                                             "sha256": h.hexdigest()}
    total = hashlib.sha256("".join(f"{k}={v['sha256']};" for k, v in sorted(leaves.items()))
                           .encode()).hexdigest()
    return {"format": DIGEST_FORMAT, "sha256": total, "leaves": leaves}


def shape_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    """A leaf's stored shape and dtype without copying it (arrays, ShapeDtypeStructs)."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        struct = jax.eval_shape(jax.random.key_data, leaf)
        return tuple(struct.shape), np.dtype(struct.dtype)
    if dtype is None or not hasattr(leaf, "shape"):
        arr = np.asarray(leaf)
        return arr.shape, arr.dtype
    return tuple(leaf.shape), np.dtype(dtype)


def check_digest_shape(digest: Any, like: PyTree, where: str) -> None:
    """The stored leaves, shapes and dtypes (from the digest) against the expected tree."""
    if (not isinstance(digest, dict) or digest.get("format") != DIGEST_FORMAT
            or not isinstance(digest.get("leaves"), dict)):
        raise CheckpointError(f"{where}: integrity digest is unreadable; delete it to recompute")
    stored = {k: v if isinstance(v, dict) else {} for k, v in digest["leaves"].items()}
    expected = {jax.tree_util.keystr(p): shape_dtype(x)
                for p, x in jax.tree_util.tree_flatten_with_path(like)[0]}
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{where}: stored tree differs from the model's (missing "
                              f"{missing[:3]}, unexpected {extra[:3]})")
    for key, (shape, dtype) in expected.items():
        got = stored[key]
        if (list(shape) != list(got.get("shape", [])) or dtype.name != got.get("dtype")
                or not isinstance(got.get("sha256"), str)):
            raise CheckpointError(
                f"{where}: {key} stored as {tuple(got.get('shape', []))} {got.get('dtype')}, "
                f"expected {shape} {dtype.name}")


def verify_digest(tree: PyTree, digest: Any, where: str,
                  advice: str = "; delete it to recompute") -> None:
    """Raises CheckpointError naming `where` and the first leaf whose bytes changed."""
    check_digest_shape(digest, tree, where)
    actual = tree_digest(tree)
    for key, got in actual["leaves"].items():
        if got["sha256"] != digest["leaves"][key]["sha256"]:
            raise CheckpointError(f"{where} is corrupt: {key} does not match its sha256 "
                                  f"digest{advice}")
    if actual["sha256"] != digest.get("sha256"):
        raise CheckpointError(f"{where} is corrupt: its sha256 digest does not match{advice}")
