"""Filter banks built on the 2-D DCT basis, convolutions with exact adjoints, and
the padding operators they need."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PADDINGS = ("circular", "symmetric", "zero")


@functools.lru_cache(maxsize=8)
def dct_basis(size: int = 3) -> Tensor:
    """The 2-D DCT basis without its DC atom, (size^2 - 1, size, size) float64, as
    the authors' ``filter_base.m``: rows 2..size^2 of ``kron(dctmtx(size),
    dctmtx(size))``, each reshaped column-major."""
    n = np.arange(size)
    d = np.sqrt(2.0 / size) * np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size))
    d[0] /= np.sqrt(2.0)
    kron = np.kron(d, d)
    return torch.from_numpy(np.stack([kron[i].reshape(size, size, order="F") for i in range(1, size * size)]))


@functools.lru_cache(maxsize=16)
def basis_as(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``dct_basis(size)`` in ``dtype`` on ``device``, converted once from the float64
    master copy (callers must not modify it)."""
    return dct_basis(size).to(device=device, dtype=dtype)


def apply_real(fn, t: Tensor) -> Tensor:
    """Apply a real function to a real tensor, or to both parts of a complex one."""
    if t.is_complex():
        return torch.complex(fn(t.real), fn(t.imag))
    return fn(t)


class DCTFilters(nn.Module):
    """L filters of size s x s, ``h_l = sum_m w_{m,l} B_m`` over the DCT atoms B_m.

    ``weight``: (s^2 - 1, L) coefficients (the authors' ``gamma``), initialised to
    the identity: filter l is the l-th DCT atom.
    """

    def __init__(self, num_filters: int = 8, size: int = 3):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(torch.eye(size * size - 1, num_filters))

    def filters(self) -> Tensor:
        """(L, s, s)."""
        return bank_filters(self.weight, self.size)

    def conv(self, x: Tensor) -> Tensor:
        """Circular convolution of real (B, H, W) with every filter -> (B, L, H, W).

        As one matrix product with the s^2 shifted copies of the image (im2col):
        a 1-to-L channel convolution is too thin for the convolution kernels to
        run fast on a CPU."""
        h = self.filters()
        s = h.shape[-1]
        B, H, W = x.shape
        xp = F.pad(x[:, None], (s // 2,) * 4, mode="circular")[:, 0]
        cols = torch.stack([xp[:, a : a + H, b : b + W] for a in range(s) for b in range(s)], 1)
        return torch.matmul(h.flip(-1, -2).reshape(-1, s * s), cols.view(B, s * s, H * W)).view(B, -1, H, W)

    def conv_adjoint(self, u: Tensor, weights: Tensor) -> Tensor:
        """``sum_l weights_l H_l^T u_l`` for real u (B, L, H, W) -> (B, H, W).

        ``V = h^T u`` (one matrix product over the L channels, (B, s^2, H W)),
        then every tap's plane added at its shift into a padded image whose
        borders are wrapped around (col2im with circular boundaries)."""
        h = self.filters() * weights[:, None, None]
        s = h.shape[-1]
        p = s // 2
        B, L, H, W = u.shape
        v = torch.matmul(h.reshape(L, s * s).T, u.reshape(B, L, H * W)).view(B, s, s, H, W)
        out = u.new_zeros(B, H + 2 * p, W + 2 * p)
        for a in range(s):
            for b in range(s):
                out[:, s - 1 - a : s - 1 - a + H, s - 1 - b : s - 1 - b + W] += v[:, a, b]
        out[:, H : H + p] += out[:, :p]
        out[:, p : 2 * p] += out[:, H + p :]
        out[:, :, W : W + p] += out[:, :, :p]
        out[:, :, p : 2 * p] += out[:, :, W + p :]
        return out[:, p : p + H, p : p + W]

    def spectrum(self, weights: Tensor, shape: tuple[int, int], onesided: bool = False) -> Tensor:
        """``sum_l weights_l |F h_l|^2`` on the (H, W) frequency grid (MATLAB's
        ``abs(psf2otf(sqrt(rho) h, [H, W])).^2`` summed); see ``filter_spectrum``.

        ``onesided=True``: only the columns ``0 .. W // 2`` (the ``rfft2`` half,
        (H, W // 2 + 1)); the spectrum is real and even, so that half holds all of it."""
        return filter_spectrum(self.filters(), weights, shape, onesided)


def bank_filters(weight: Tensor, size: int) -> Tensor:
    """The filters of DCT coefficients ``weight`` (..., s^2 - 1, L): (..., L, s, s)
    (``DCTFilters.filters``, for one bank or a stack of them)."""
    basis = basis_as(size, weight.dtype, weight.device).reshape(-1, size * size)
    return (weight.transpose(-1, -2) @ basis).reshape(*weight.shape[:-2], -1, size, size)


def filter_spectrum(h: Tensor, weights: Tensor, shape: tuple[int, int], onesided: bool = False) -> Tensor:
    """``sum_l weights_l |F h_l|^2`` for filters ``h`` (..., L, s, s) and ``weights``
    (..., L): (..., H, W), or (..., H, W // 2 + 1) with ``onesided``.

    As the DFT of the weighted sum of the filters' autocorrelations: one transform
    instead of L. The (2s-1)^2 autocorrelation kernel is small, so its DFT is two
    small matrix products with the Fourier matrices of its offsets rather than an
    FFT of a mostly zero image."""
    s = h.shape[-1]
    lead = h.shape[:-3]
    # kernel[d] = sum_l weights_l sum_u h_l[u] h_l[u + d], d in [-(s-1), s-1]^2: the weighted Gram
    # matrix of the filters' taps, summed along each offset
    flat = h.reshape(*lead, h.shape[-3], s * s)
    gram = flat.transpose(-1, -2) @ (weights[..., :, None] * flat)
    incidence = _offset_incidence(s, gram.dtype, gram.device)
    kernel = (gram.reshape(*lead, 1, -1) @ incidence).reshape(*lead, 2 * s - 1, 2 * s - 1)
    H, W = shape
    # Re(E1 kernel E2^T) with E = exp(-i angle) = C - i S, as real products: C1 kernel C2^T - S1 kernel S2^T,
    # written as one product [C1 kernel, S1 kernel] [C2, -S2]^T
    c1, s1 = _offset_dft(H, H, s, kernel.dtype, kernel.device)
    c2, s2 = _offset_dft(W, W // 2 + 1 if onesided else W, s, kernel.dtype, kernel.device)
    spec = torch.cat([c1 @ kernel, s1 @ kernel], -1) @ torch.cat([c2, -s2], -1).T
    # the filters are zero-mean (no DC atom), so the DC term is exactly 0; computed, it is rounding noise
    # (~1e-16, float32 ~3e-7) whose value differs between the full and one-sided grids and between CPUs,
    # and where the mask leaves DC unsampled the solve divides by it (a zero denominator becomes 1e-6)
    spec[..., 0, 0] = 0
    return spec


def widen_bank(old: DCTFilters, new: DCTFilters) -> None:
    """Set ``new``'s first filters to ``old``'s, zero-padded to ``new``'s (odd, not
    smaller) size and re-expressed in its DCT basis, an orthonormal basis of the
    zero-mean filters, so the coefficients are inner products and a zero-mean filter
    stays exact; ``new``'s other filters are left as they are. In place, no grad."""
    s, q = new.size, (new.size - old.size) // 2
    with torch.no_grad():
        padded = F.pad(old.filters(), (q, q, q, q))
        basis = basis_as(s, padded.dtype, padded.device).reshape(-1, s * s)
        new.weight[:, : padded.shape[0]] = basis @ padded.reshape(padded.shape[0], -1).T


@functools.lru_cache(maxsize=8)
def _offset_incidence(s: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(s^4, (2s-1)^2): entry ((u, v), d) is 1 where tap v is tap u shifted by
    d (2-D offsets, row-major)."""
    a = np.arange(s)
    du = (a[None, :] - a[:, None]) + s - 1  # offset of v from u along one axis, shifted to >= 0
    d = (du[:, None, :, None] * (2 * s - 1) + du[None, :, None, :]).reshape(s * s, s * s)  # (u, v) taps row-major
    out = np.zeros((s**4, (2 * s - 1) ** 2))
    out[np.arange(s**4), d.reshape(-1)] = 1
    return torch.from_numpy(out).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=32)
def _offset_dft(n: int, k: int, s: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """The DFT matrix ``exp(-2 pi i f d / n)`` for frequencies f < k and offsets d in
    [-(s-1), s-1] as its real and negated imaginary parts ``(cos, sin)`` of the angle
    ``2 pi f d / n``: (k, 2s - 1) each, in ``dtype`` (angles in float64). Real, because
    small complex matrix products are slow on the CPU."""
    d = torch.arange(-(s - 1), s, dtype=torch.float64)
    angle = (2 * math.pi / n) * torch.arange(k, dtype=torch.float64)[:, None] * d
    return angle.cos().to(device=device, dtype=dtype), angle.sin().to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
def _pad_index(H: int, W: int, p: int, mode: str) -> Tensor:
    """Flat source index of every pixel of the padded (H + 2p, W + 2p) image; H * W
    (a slot that holds 0) for zero padding outside the image."""
    if mode not in PADDINGS:
        raise ValueError(f"unknown padding {mode!r}; valid choices: {', '.join(PADDINGS)}")

    def axis(n: int) -> np.ndarray:
        i = np.arange(-p, n + p)
        if mode == "circular":
            return i % n
        if mode == "symmetric":  # x[-1] = x[0], x[n] = x[n-1] (MATLAB's 'symmetric')
            period = np.mod(i, 2 * n)
            return np.where(period < n, period, 2 * n - 1 - period)
        return np.where((i >= 0) & (i < n), i, -1)

    ry, rx = axis(H), axis(W)
    idx = ry[:, None] * W + rx[None, :]
    if mode == "zero":
        idx = np.where((ry[:, None] < 0) | (rx[None, :] < 0), H * W, idx)
    return torch.from_numpy(idx.reshape(-1).astype(np.int64))


def pad(x: Tensor, p: int, mode: str) -> Tensor:
    """(..., H, W) -> (..., H + 2p, W + 2p)."""
    H, W = x.shape[-2:]
    idx = _pad_index(H, W, p, mode).to(x.device)
    flat = x.reshape(*x.shape[:-2], H * W)
    if mode == "zero":
        flat = torch.cat([flat, flat.new_zeros(*flat.shape[:-1], 1)], dim=-1)
    return flat[..., idx].reshape(*x.shape[:-2], H + 2 * p, W + 2 * p)


def pad_adjoint(v: Tensor, p: int, mode: str) -> Tensor:
    """The adjoint of ``pad``: (..., H + 2p, W + 2p) -> (..., H, W), padded values
    added back to the pixels they were copied from."""
    Hp, Wp = v.shape[-2:]
    H, W = Hp - 2 * p, Wp - 2 * p
    idx = _pad_index(H, W, p, mode).to(v.device)
    lead = v.shape[:-2]
    flat = v.reshape(-1, Hp * Wp)
    out = flat.new_zeros(flat.shape[0], H * W + 1).index_add_(1, idx, flat)
    return out[:, : H * W].reshape(*lead, H, W)


class FilterBank(DCTFilters):
    """``F`` zero-mean s x s filters, each a learned combination of the 2-D DCT atoms
    without DC (initialised to the first F atoms), with the correlation
    ``K x = [k_i (x) x]_i`` and its exact adjoint under a padding rule.

    Shapes: ``K``: (B, H, W) -> (B, F, H, W); ``K^T``: (B, F, H, W) -> (B, H, W).
    """

    def __init__(self, num_filters: int = 48, size: int = 7, padding: str = "symmetric"):
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; valid choices: {', '.join(PADDINGS)}")
        if size % 2 == 0 or size < 3:
            raise ValueError(f"filter size must be odd and >= 3, got {size}")
        super().__init__(num_filters, size)
        self.padding = padding

    def K(self, x: Tensor, filters: Tensor | None = None) -> Tensor:
        k = self.filters() if filters is None else filters
        return F.conv2d(pad(x, self.size // 2, self.padding)[:, None], k[:, None])

    def KT(self, v: Tensor, filters: Tensor | None = None) -> Tensor:
        k = self.filters() if filters is None else filters
        return pad_adjoint(F.conv_transpose2d(v, k[:, None]), self.size // 2, self.padding)[:, 0]
