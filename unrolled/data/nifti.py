"""Magnitude images from NIfTI volumes (``*.nii``, ``*.nii.gz``), read with nibabel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def load_nifti_slices(path: str | Path, size: int = 256, slices: str = "middle", count: int = 8) -> Tensor:
    """Axial slices (last axis) of a 3-D volume, scaled to [0, 1] by the volume's
    99.9th percentile and resized to ``size`` x ``size`` (bilinear, aspect kept by
    zero padding): (S, size, size) float32.

    Args:
        slices: ``middle`` (the ``count`` central slices) or ``all``.

    Raises:
        FileNotFoundError: no such file. ValueError: not a NIfTI file, or not 3-D.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIfTI file {path} does not exist")
    try:
        vol = np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float32)
    except Exception as e:  # nibabel raises ImageFileError and others
        raise ValueError(
            f"{path} could not be read as NIfTI ({type(e).__name__}: {e}); expected a .nii/.nii.gz volume"
        ) from None
    if vol.ndim == 4 and vol.shape[-1] == 1:
        vol = vol[..., 0]
    if vol.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D volume, got shape {vol.shape}")
    vol = np.nan_to_num(vol)
    hi = np.percentile(vol, 99.9)
    vol = np.clip(vol / (hi if hi > 0 else 1.0), 0, 1)
    if slices not in ("middle", "all"):
        raise ValueError(f"unknown slices {slices!r}; valid choices: middle, all")
    z = vol.shape[2]
    idx = range(z) if slices == "all" else range(max(0, z // 2 - count // 2), min(z, z // 2 - count // 2 + count))
    out = []
    for k in idx:
        img = torch.from_numpy(np.rot90(vol[:, :, k]).copy())
        h, w = img.shape
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        img = F.interpolate(img[None, None], size=(nh, nw), mode="bilinear", align_corners=False)[0, 0]
        canvas = torch.zeros(size, size)
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[top : top + nh, left : left + nw] = img
        out.append(canvas)
    return torch.stack(out)
