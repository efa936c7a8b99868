"""Classical reconstructions: zero-filling and total-variation regularisation.

TV reconstruction solves, in the unitary convention of ``physics``::

    min_x  1/2 ||A x - y||^2 + lam * TV(x)
    TV(x) = sum_p sqrt(|D_h x|_p^2 + |D_v x|_p^2)   (isotropic)
          = sum_p |D_h x|_p + |D_v x|_p             (anisotropic)

with circular forward differences, by ADMM on the splitting ``d = D x``::

    x <- (A^H A + rho D^T D)^{-1} (A^H y + rho D^T (d - u))   (a division in k-space)
    d <- shrink(D x + u, lam / rho)                             (soft threshold, vectorial if isotropic)
    u <- u + D x - d

Batched over the first dimension, with a per-image or shared ``lam``; runs on
whatever device the inputs are on.
"""

from __future__ import annotations

import torch
from torch import Tensor


def finite_difference_spectrum(shape: tuple[int, int], dtype=torch.float64, device=None) -> Tensor:
    """``|F d_h|^2 + |F d_v|^2`` of circular forward differences on (H, W)."""
    H, W = shape
    wy = 2 * torch.pi * torch.arange(H, dtype=dtype, device=device) / H
    wx = 2 * torch.pi * torch.arange(W, dtype=dtype, device=device) / W
    return (2 - 2 * torch.cos(wy))[:, None] + (2 - 2 * torch.cos(wx))[None, :]


def grad(x: Tensor) -> Tensor:
    """Circular forward differences (B, H, W) -> (B, 2, H, W)."""
    return torch.stack([torch.roll(x, -1, -2) - x, torch.roll(x, -1, -1) - x], dim=1)


def grad_adjoint(g: Tensor) -> Tensor:
    """Adjoint of ``grad`` (the negative divergence)."""
    return (torch.roll(g[:, 0], 1, -2) - g[:, 0]) + (torch.roll(g[:, 1], 1, -1) - g[:, 1])


def _shrink(v: Tensor, t: Tensor, isotropic: bool) -> Tensor:
    """Soft thresholding of (B, 2, H, W), vectorial over the two components if isotropic."""
    if isotropic:
        mag = v.abs().pow(2).sum(1, keepdim=True).sqrt()
        scale = torch.clamp(1 - t / torch.clamp(mag, min=1e-12), min=0)
        return v * scale
    mag = v.abs()
    return v * torch.clamp(1 - t / torch.clamp(mag, min=1e-12), min=0)


def zero_filling(y: Tensor, physics, real_images: bool = True) -> Tensor:
    """Inverse FFT of the zero-filled k-space; magnitude for real-valued images."""
    x = physics.zero_filled(y)
    return x.abs() if real_images else x


def tv_reconstruction(
    y: Tensor,
    physics,
    lam: float | Tensor,
    isotropic: bool = True,
    iterations: int = 100,
    rho: float | None = None,
    real_images: bool = True,
) -> Tensor:
    """TV-regularised reconstruction by ADMM (see the module docstring).

    Args:
        y: (B, H, W) k-space in ``physics``' convention.
        physics: an MRI (or any object with ``solve_unitary``, ``zero_filled`` and
            ``unitary``) operator.
        lam: regularisation weight (unitary convention), scalar or (B,).
        isotropic: isotropic (True) or anisotropic TV.
        iterations: ADMM iterations.
        rho: ADMM penalty; default ``10 * lam`` (a good speed on MR images scaled to [0, 1]).
        real_images: constrain x to be real (projection after each x-step).

    Returns:
        (B, H, W) reconstruction (real if ``real_images``).
    """
    lam_t = torch.as_tensor(lam, dtype=torch.float64, device=y.device).reshape(-1)
    if lam_t.numel() not in (1, y.shape[0]):
        raise ValueError(f"lam must be a scalar or one value per image ({y.shape[0]}), got {lam_t.numel()}")
    if (lam_t <= 0).any():
        raise ValueError("lam must be > 0")
    rho_t = 10 * lam_t if rho is None else torch.full_like(lam_t, float(rho))
    real_dtype = torch.float64 if y.dtype == torch.complex128 else torch.float32
    lam_b = lam_t.to(real_dtype).view(-1, 1, 1, 1)
    rho_b = rho_t.to(real_dtype).view(-1, 1, 1, 1)
    spectrum = rho_t.to(real_dtype).view(-1, 1, 1) * finite_difference_spectrum(physics.shape, real_dtype, y.device)
    x = physics.zero_filled(y)
    x = x.real if real_images else x
    d = grad(x)
    u = torch.zeros_like(d)
    for _ in range(iterations):
        rhs = rho_b[:, 0] * grad_adjoint(d - u)
        x = physics.solve_unitary(y, rhs, spectrum)
        x = x.real if real_images else x
        gx = grad(x)
        d = _shrink(gx + u, lam_b / rho_b, isotropic)
        u = u + gx - d
    return x
