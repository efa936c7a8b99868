"""The Deep ADMM-Net data (Yang, Sun, Li, Xu, NIPS 2016): 100 chest and 2 brain MR
images, pseudo-radial masks and the authors' trained networks, read from the
directory the authors' repository ships (MATLAB v7.3 files, HDF5)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

CHEST_TRAIN = [f"im-{i:02d}" if i < 100 else f"im-{i}" for i in range(1, 81)]
CHEST_TEST = [f"im-{i:02d}" if i < 100 else f"im-{i}" for i in range(81, 101)]
BRAIN = ["Brain_data1", "Brain_data2"]


@contextmanager
def _open_mat(path: str | Path, what: str = "file") -> Iterator[h5py.File]:
    """A MATLAB v7.3 file open for reading; h5py's ``OSError`` (not HDF5, truncated),
    raised on opening or while reading, becomes one ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            yield f
    except OSError as e:
        raise ValueError(f"{path} is not a MATLAB v7.3 (HDF5) {what}: {e}") from None


def read_mat_array(path: str | Path, key: str) -> np.ndarray:
    """One array of a MATLAB v7.3 file, in MATLAB's orientation (h5py reads the
    transpose).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an HDF5/v7.3 MAT file, or no variable ``key``.
    """
    with _open_mat(path) as f:
        if key not in f:
            raise ValueError(f"{path} has no variable {key!r} (it has {sorted(f.keys())})")
        return np.asarray(f[key][()]).T


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not (root / "data" / "ChestTrain").is_dir() and not (root / "data" / "Brain_data").is_dir():
        raise FileNotFoundError(
            f"{root} is not the Deep ADMM-Net data directory: expected data/ChestTrain/im-XX.mat, "
            "data/Brain_data/Brain_dataN.mat, mask/mask_XX.mat, net/network_20/net-stageN.mat under it"
        )
    return root


def load_images(root: str | Path, names: list[str], folder: str = "ChestTrain") -> Tensor:
    """Images ``data/<folder>/<name>.mat`` (key ``im_ori``) as a (N, 256, 256) float64
    tensor in [0, 1]."""
    root = _check_root(root)
    return torch.stack([torch.from_numpy(read_mat_array(root / "data" / folder / f"{n}.mat", "im_ori")) for n in names])


def load_chest(root: str | Path, split: str = "train") -> Tensor:
    """Chest images: ``train`` = im-01..80, ``test`` = im-81..100."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown chest split {split!r}; valid choices: train, test")
    return load_images(root, CHEST_TRAIN if split == "train" else CHEST_TEST, "ChestTrain")


def load_brain(root: str | Path) -> Tensor:
    return load_images(root, BRAIN, "Brain_data")


def read_admm_net_layers(path: str | Path) -> list[tuple[str, list[np.ndarray]]]:
    """The layers of an authors' trained network (``net/network_20/net-stageN.mat``):
    a list of ``(type, [weights...])`` with weights in MATLAB orientation.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an HDF5/v7.3 MAT file, or one without the network's layers.
    """
    out = []
    with _open_mat(path, "network file") as f:
        if "net" not in f or "layers" not in f["net"]:
            raise ValueError(f"{path} is not a Deep ADMM-Net network file (no net/layers)")
        refs = f["net"]["layers"][()].reshape(-1)
        for ref in refs:
            layer = f[ref]
            kind = "".join(chr(c) for c in layer["type"][()].reshape(-1))
            weights = []
            if "weights" in layer:
                for wref in layer["weights"][()].reshape(-1):
                    weights.append(np.asarray(f[wref][()]).T)
            out.append((kind, weights))
    return out
