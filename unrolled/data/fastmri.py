"""fastMRI single-coil HDF5 volumes (Zbontar et al. 2018): ``kspace`` (slices, H, W)
complex and ``reconstruction_esc`` (slices, 320, 320), one file per volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

KEYS = ("kspace", "reconstruction_esc")


@dataclass
class FastMRIVolume:
    kspace: Tensor  # (S, H, W) complex64, centred (fastMRI stores k-space fftshifted)
    target: Tensor  # (S, h, w) float32, reconstruction_esc
    path: Path

    def images(self, size: tuple[int, int] | None = None) -> Tensor:
        """Complex images ``ifft2c(kspace)`` (orthonormal, centred), centre-cropped
        to ``size`` (the target's size by default)."""
        k = torch.fft.ifftshift(self.kspace, dim=(-2, -1))
        img = torch.fft.fftshift(torch.fft.ifft2(k, norm="ortho"), dim=(-2, -1))
        h, w = size or tuple(self.target.shape[-2:])
        H, W = img.shape[-2:]
        if h > H or w > W:
            raise ValueError(f"crop {(h, w)} larger than the images {(H, W)} of {self.path}")
        top, left = (H - h) // 2, (W - w) // 2
        return img[..., top : top + h, left : left + w]


def load_fastmri_volume(path: str | Path) -> FastMRIVolume:
    """Raises FileNotFoundError (no file) or ValueError (not HDF5, or without the
    ``kspace``/``reconstruction_esc`` datasets, or with inconsistent shapes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fastMRI file {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not an HDF5 file ({e}); expected a fastMRI single-coil volume") from None
    with f:
        missing = [k for k in KEYS if k not in f]
        if missing:
            raise ValueError(
                f"{path} lacks {missing}; a fastMRI single-coil file has datasets {list(KEYS)} "
                f"(found {sorted(f.keys())})"
            )
        kspace, target = np.asarray(f["kspace"][()]), np.asarray(f["reconstruction_esc"][()])
    if kspace.ndim != 3 or not np.iscomplexobj(kspace):
        raise ValueError(f"{path}: kspace must be complex (slices, H, W), got {kspace.dtype} {kspace.shape}")
    if target.ndim != 3 or target.shape[0] != kspace.shape[0]:
        raise ValueError(
            f"{path}: reconstruction_esc must be (slices, h, w) with {kspace.shape[0]} slices, got {target.shape}"
        )
    return FastMRIVolume(
        torch.from_numpy(kspace.astype(np.complex64)), torch.from_numpy(target.astype(np.float32)), path
    )


def fastmri_files(root: str | Path) -> list[Path]:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"fastMRI directory {root} does not exist; expected *.h5 single-coil volumes in it")
    files = sorted(root.glob("*.h5"))
    if not files:
        raise FileNotFoundError(f"no *.h5 files in {root}; expected fastMRI single-coil volumes")
    return files
