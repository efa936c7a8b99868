"""k-space sampling masks, named for their rule. Every mask is (H, W), centred (low
frequencies in the middle), 1 where sampled; every random draw takes a
``torch.Generator``. ``sampling_ratio(mask)`` is the fraction sampled."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def sampling_ratio(mask: Tensor) -> float:
    return float((torch.as_tensor(mask) != 0).float().mean())


def _check_ratio(ratio: float) -> None:
    if not 0 < ratio <= 1:
        raise ValueError(f"sampling ratio must be in (0, 1], got {ratio}")


class PseudoRadialMask:
    """Radial lines through the centre of a Cartesian grid (the "pseudo-radial"
    masks of Deep ADMM-Net). ``n`` lines at angles ``k pi / n`` are rasterised with
    a step of half a pixel; ``n`` is the smallest number of lines whose mask samples
    at least ``ratio`` of k-space. Deterministic (no randomness)."""

    def __init__(self, ratio: float):
        _check_ratio(ratio)
        self.ratio = ratio

    @staticmethod
    def lines(shape: tuple[int, int], n_lines: int) -> Tensor:
        H, W = shape
        mask = np.zeros((H, W), dtype=np.float32)
        cy, cx = H // 2, W // 2
        radius = math.hypot(H, W)
        t = np.arange(-radius, radius, 0.5)
        for k in range(n_lines):
            theta = math.pi * k / n_lines
            ys = np.round(cy + t * math.sin(theta)).astype(int)
            xs = np.round(cx + t * math.cos(theta)).astype(int)
            ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
            mask[ys[ok], xs[ok]] = 1.0
        return torch.from_numpy(mask)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator | None = None) -> Tensor:
        lo, hi = 1, 4 * max(shape)
        if sampling_ratio(self.lines(shape, hi)) < self.ratio:
            return self.lines(shape, hi)
        while lo < hi:  # the sampled fraction grows with the number of lines
            mid = (lo + hi) // 2
            if sampling_ratio(self.lines(shape, mid)) >= self.ratio:
                hi = mid
            else:
                lo = mid + 1
        return self.lines(shape, lo)


class RandomCartesianMask:
    """Random Cartesian undersampling along the last axis (phase encoding), in the
    manner of fastMRI's ``RandomMaskFunc``: the ``round(W * center_fraction)``
    central columns are always sampled; every other column is sampled with
    probability ``(W * ratio - n_center) / (W - n_center)``, so that ``ratio`` of
    the columns are sampled on average."""

    def __init__(self, ratio: float, center_fraction: float = 0.08):
        _check_ratio(ratio)
        if not 0 <= center_fraction <= ratio:
            raise ValueError(f"center_fraction must be in [0, ratio={ratio}], got {center_fraction}")
        self.ratio, self.center_fraction = ratio, center_fraction

    def _center(self, W: int) -> tuple[int, int]:
        n = round(W * self.center_fraction)
        start = (W - n + 1) // 2
        return start, n

    def __call__(self, shape: tuple[int, int], generator: torch.Generator | None = None) -> Tensor:
        if generator is None:
            raise ValueError(f"{type(self).__name__} is random: pass a torch.Generator")
        H, W = shape
        start, n = self._center(W)
        prob = (W * self.ratio - n) / max(W - n, 1)
        cols = torch.rand(W, generator=generator) < prob
        cols[start : start + n] = True
        return cols.float().expand(H, W).clone()


class EquispacedCartesianMask(RandomCartesianMask):
    """Equispaced Cartesian undersampling along the last axis (fastMRI's
    ``EquispacedMaskFunc``): the central ``center_fraction`` of columns, plus every
    ``s``-th column from a random offset, with the spacing ``s`` chosen so that
    about ``ratio`` of the columns are sampled."""

    def __call__(self, shape: tuple[int, int], generator: torch.Generator | None = None) -> Tensor:
        if generator is None:
            raise ValueError("EquispacedCartesianMask draws its offset at random: pass a torch.Generator")
        H, W = shape
        start, n = self._center(W)
        spacing = max(1.0, (W - n) / max(W * self.ratio - n, 1e-9))
        offset = int(torch.randint(0, max(1, round(spacing)), (1,), generator=generator))
        cols = torch.zeros(W, dtype=torch.bool)
        idx = np.round(np.arange(offset, W - 1e-9, spacing)).astype(int)
        cols[idx[idx < W]] = True
        cols[start : start + n] = True
        return cols.float().expand(H, W).clone()


class VariableDensityRandomMask:
    """2-D variable-density random sampling: a fully sampled central disc of radius
    ``center_radius`` (fraction of the half-width), and elsewhere independent
    Bernoulli draws with probability ``c (1 - r)^power`` (r: distance from the
    centre, 1 at the corners' inscribed circle), ``c`` set by bisection so that the
    expected fraction is ``ratio``."""

    def __init__(self, ratio: float, power: float = 3.0, center_radius: float = 0.04):
        _check_ratio(ratio)
        self.ratio, self.power, self.center_radius = ratio, power, center_radius

    def probability(self, shape: tuple[int, int]) -> Tensor:
        H, W = shape
        yy, xx = torch.meshgrid(
            (torch.arange(H, dtype=torch.float64) - H // 2) / (H / 2),
            (torch.arange(W, dtype=torch.float64) - W // 2) / (W / 2),
            indexing="ij",
        )
        r = torch.sqrt(yy**2 + xx**2).clamp(max=1.0)
        base = (1 - r) ** self.power
        center = r <= self.center_radius
        lo, hi = 0.0, 1e6
        for _ in range(200):
            c = (lo + hi) / 2
            p = torch.where(center, torch.ones_like(base), (c * base).clamp(max=1.0))
            if float(p.mean()) < self.ratio:
                lo = c
            else:
                hi = c
        return torch.where(center, torch.ones_like(base), (hi * base).clamp(max=1.0))

    def __call__(self, shape: tuple[int, int], generator: torch.Generator | None = None) -> Tensor:
        if generator is None:
            raise ValueError("VariableDensityRandomMask is random: pass a torch.Generator")
        p = self.probability(shape)
        return (torch.rand(shape, generator=generator, dtype=torch.float64) < p).float()


def load_admm_net_mask(root: str | Path, ratio: float) -> Tensor:
    """The authors' pseudo-radial mask ``mask/mask_{10..50}.mat`` under the Deep
    ADMM-Net data directory ``root`` (MATLAB v7.3, read with h5py), centred."""
    from unrolled.data.admm_net_data import read_mat_array

    pct = round(ratio * 100)
    path = Path(root) / "mask" / f"mask_{pct}.mat"
    if not path.is_file():
        have = (
            sorted(p.name for p in (Path(root) / "mask").glob("mask_*.mat")) if (Path(root) / "mask").is_dir() else []
        )
        raise FileNotFoundError(f"no pseudo-radial mask {path}; expected mask_{pct}.mat among {have or 'nothing'}")
    return torch.from_numpy(read_mat_array(path, "mask").astype(np.float32))


MASKS = {
    "pseudo_radial": PseudoRadialMask,
    "random_cartesian": RandomCartesianMask,
    "equispaced_cartesian": EquispacedCartesianMask,
    "variable_density": VariableDensityRandomMask,
}
