"""Reconstruction metrics, defined once for every model and baseline.

Conventions (Deep ADMM-Net's tables, fastMRI):

- ``nrmse = ||x_hat - x|| / ||x||`` (what the ADMM-Net tables call "NMSE");
- ``nmse = ||x_hat - x||^2 / ||x||^2`` (fastMRI's NMSE);
- ``psnr = 10 log10(peak^2 / mean((|x_hat| - |x|)^2))`` on magnitudes, with
  ``peak = 1`` (Deep ADMM-Net, MATLAB's default for floating point images) or
  ``peak = max |x|`` per image (fastMRI);
- ``ssim``: Wang et al. 2004, Gaussian window (sigma 1.5, 11 x 11), K1 = 0.01,
  K2 = 0.03, on magnitudes, ``data_range = peak`` (as skimage with
  ``gaussian_weights=True, use_sample_covariance=False``).

All take (B, H, W) or (H, W) tensors and return one value per image. For complex
inputs ``nrmse``/``nmse`` compare the complex values; pass magnitudes to compare
magnitudes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PEAKS = ("one", "max")


def _batch(x: Tensor) -> Tensor:
    return x[None] if x.ndim == 2 else x


def _norms(diff: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    return diff.abs().pow(2).flatten(1).sum(1), ref.abs().pow(2).flatten(1).sum(1)


def nrmse(x_hat: Tensor, x: Tensor) -> Tensor:
    x_hat, x = _batch(x_hat), _batch(x)
    num, den = _norms(x_hat - x, x)
    return (num / den).sqrt()


def nmse(x_hat: Tensor, x: Tensor) -> Tensor:
    x_hat, x = _batch(x_hat), _batch(x)
    num, den = _norms(x_hat - x, x)
    return num / den


def _peak(x: Tensor, peak: str) -> Tensor:
    if peak not in PEAKS:
        raise ValueError(f"unknown peak convention {peak!r}; valid choices: {', '.join(PEAKS)}")
    if peak == "one":
        return torch.ones(x.shape[0], dtype=x.real.dtype, device=x.device)
    return x.abs().flatten(1).amax(1)


def psnr(x_hat: Tensor, x: Tensor, peak: str = "one") -> Tensor:
    x_hat, x = _batch(x_hat), _batch(x)
    mse = (x_hat.abs() - x.abs()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(_peak(x, peak) ** 2 / mse)


def _gaussian_window(sigma: float, truncate: float, dtype, device) -> Tensor:
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def ssim(x_hat: Tensor, x: Tensor, peak: str = "one", sigma: float = 1.5) -> Tensor:
    """Mean SSIM over the image, ignoring a border of the window radius (as skimage)."""
    x_hat, x = _batch(x_hat).abs(), _batch(x).abs()
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x_hat, x = x_hat.to(dtype), x.to(dtype)
    L = _peak(x, peak).to(dtype)[:, None, None, None]
    g = _gaussian_window(sigma, 3.5, dtype, x.device)

    def blur(img):
        img = F.conv2d(img, g.view(1, 1, 1, -1))
        return F.conv2d(img, g.view(1, 1, -1, 1))

    a, b = x_hat[:, None], x[:, None]
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)  # 'valid' convolutions: the border of the window radius is left out


def reconstruction_metrics(x_hat: Tensor, x: Tensor, peak: str = "one") -> dict[str, Tensor]:
    """PSNR, SSIM (magnitudes) and NRMSE, NMSE (complex values if either input is
    complex, else the real values, as Deep ADMM-Net's loss)."""
    return {
        "psnr": psnr(x_hat, x, peak),
        "ssim": ssim(x_hat, x, peak),
        "nrmse": nrmse(x_hat, x),
        "nmse": nmse(x_hat, x),
    }
