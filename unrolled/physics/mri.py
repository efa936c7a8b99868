"""Single-coil MRI with a sampling mask: ``A x = M . F x``.

FFT normalisation (``fft_norm``):

- ``"ortho"``: ``F`` is the unitary 2-D DFT, ``F^H F = I``; ``A^H y = F^H (M y)``.
- ``"backward"``: ``F`` is the unnormalised DFT of ``torch.fft.fft2`` (and of
  MATLAB's ``fft2``), as in the Deep ADMM-Net code: ``y = fft2(x) .* mask``. Its
  true adjoint is ``N ifft2`` (``N = H W``), so ``A^H A = N F_u^H M F_u``.

Either way ``zero_filled(y) = ifft2(M y)`` with the matching normalisation is the
zero-filling reconstruction, and ``unitary(y)`` rescales k-space data to the
unitary convention, in which models such as ADMM-Net are written.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import torch
from torch import Tensor

from l2o import native

FFT_NORMS = ("ortho", "backward")
_KERNELS = Path(__file__).resolve().parent.parent / "kernels" / "mri.c"


def _kernels(data: Tensor, spectrum: Tensor):
    """The compiled half-grid solve (``unrolled/kernels/mri.inc``) for complex CPU
    data of ``spectrum``'s precision with autograd off; else None."""
    pair = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(data.dtype)
    if pair != spectrum.dtype or data.ndim > 3:
        return None
    return native.library_for(_KERNELS, data, inference_only=True)


class MRI:
    """Cartesian-grid MRI forward model with a binary (or weighted) sampling mask.

    Args:
        mask: (H, W) sampling mask. ``centered=True`` (default): low frequencies in
            the middle, as the masks are stored and drawn; it is moved to FFT order
            with ``ifftshift``. Pseudo-radial masks are Cartesian-grid masks too.
        fft_norm: ``"ortho"`` or ``"backward"`` (see the module docstring).
        noise_std: standard deviation of complex Gaussian k-space noise added by
            ``simulate`` (per real and imaginary part, in this normalisation).

    Shapes: images (B, H, W), real or complex; k-space (B, H, W) complex, in FFT
    order (DC at index [0, 0]).
    """

    def __init__(self, mask: Tensor, fft_norm: str = "ortho", centered: bool = True, noise_std: float = 0.0):
        if fft_norm not in FFT_NORMS:
            raise ValueError(f"unknown fft_norm {fft_norm!r}; valid choices: {', '.join(FFT_NORMS)}")
        mask = torch.as_tensor(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be 2-D (H, W), got shape {tuple(mask.shape)}")
        self.mask = torch.fft.ifftshift(mask, dim=(-2, -1)) if centered else mask
        self.fft_norm, self.noise_std = fft_norm, float(noise_std)
        self.shape = tuple(self.mask.shape)
        self.n = self.shape[0] * self.shape[1]
        self._derive()

    def _derive(self) -> None:
        """What ``solve_unitary_real`` reads off the mask: on the ``rfft2`` half grid
        (H, W // 2 + 1), the index of every frequency's negative ``-k`` and ``M^2``
        at ``k`` and at ``-k``."""
        H, W = self.shape
        rows = (-torch.arange(H, device=self.mask.device)) % H
        cols = (-torch.arange(W // 2 + 1, device=self.mask.device)) % W
        self._neg = (rows[:, None], cols[None, :])
        m2 = self.mask * self.mask
        self._m2_half, self._m2_neg_half = m2[:, : W // 2 + 1], m2[self._neg]

    # -- bookkeeping ------------------------------------------------------------------
    def to(self, device=None, dtype=None) -> MRI:
        out = object.__new__(MRI)
        out.__dict__.update(self.__dict__)
        out.mask = self.mask.to(device=device, dtype=dtype if dtype is not None else self.mask.dtype)
        out.__dict__.pop("_half_cache", None)
        out._derive()
        return out

    @property
    def sampling_ratio(self) -> float:
        return float((self.mask != 0).float().mean())

    def check(self, x: Tensor, what: str = "image") -> None:
        """``ValueError`` naming both shapes unless ``x``'s last two dimensions are the
        mask's (``what``: the name the message gives ``x``)."""
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"{what} of shape {tuple(x.shape[-2:])} does not match the mask's shape {self.shape}")

    # -- the operator -----------------------------------------------------------------
    def A(self, x: Tensor) -> Tensor:
        self.check(x)
        return self.mask * torch.fft.fft2(x, norm=self.fft_norm)

    def A_adjoint(self, y: Tensor) -> Tensor:
        """The true adjoint: ``<A x, y> = <x, A^H y>``."""
        self.check(y, "k-space data")
        if self.fft_norm == "ortho":
            return torch.fft.ifft2(self.mask * y, norm="ortho")
        return torch.fft.ifft2(self.mask * y, norm="forward")  # = N * ifft2(., "backward")

    def zero_filled(self, y: Tensor) -> Tensor:
        """Inverse FFT of the zero-filled k-space, in image scale."""
        self.check(y, "k-space data")
        return torch.fft.ifft2(self.mask * y, norm=self.fft_norm)

    def unitary(self, y: Tensor) -> Tensor:
        """k-space data rescaled to the unitary convention."""
        return y if self.fft_norm == "ortho" else y / self.n**0.5

    def gram_spectrum(self) -> Tensor:
        """The Fourier-domain diagonal of ``A^H A`` (``F^H diag(.) F``, unitary F)."""
        m2 = self.mask * self.mask
        return m2 if self.fft_norm == "ortho" else self.n * m2

    def solve(self, b: Tensor, rho: float | Tensor) -> Tensor:
        """``(A^H A + rho I)^{-1} b``, as a division in k-space (the Gram matrix is
        diagonal in the Fourier basis for a Cartesian mask)."""
        self.check(b)
        spec = self.gram_spectrum() + rho
        return torch.fft.ifft2(torch.fft.fft2(b, norm="ortho") / spec, norm="ortho")

    def solve_unitary(self, y: Tensor, rhs: Tensor | None, spectrum: Tensor) -> Tensor:
        """Solve ``(A_u^H A_u + S) x = A_u^H y_u + rhs`` in the unitary convention,
        where ``S = F^H diag(spectrum) F`` is any Fourier-diagonal operator (e.g.
        ``sum_k rho_k H_k^T H_k`` for circular convolutions H_k)::

            x = F^H [(M y_u + F rhs) / (M^2 + spectrum)]

        Frequencies where ``M + spectrum = 0`` get the denominator 1e-6 (as in
        the Deep ADMM-Net code). ``spectrum`` is (H, W) or broadcastable to (B, H, W).
        """
        self.check(y, "k-space data")
        if rhs is not None:
            self.check(rhs, "right-hand side")
        denom = self.mask * self.mask + spectrum
        denom = torch.where(denom == 0, torch.full_like(denom, 1e-6), denom)
        num = self.mask * self.unitary(y)
        if rhs is not None:
            num = num + torch.fft.fft2(rhs, norm="ortho")
        return torch.fft.ifft2(num / denom, norm="ortho")

    def solve_unitary_real(self, y: Tensor, rhs: Tensor | None, spectrum_half: Tensor) -> Tensor:
        """``Re solve_unitary(y, rhs, spectrum)`` for a real ``rhs`` and a real, even
        ``spectrum`` (``S[-k] = S[k]``, as for ``sum_k rho_k H_k^T H_k`` with real
        filters), given as its ``rfft2`` half ``spectrum_half`` (H, W // 2 + 1), by
        one real FFT pair instead of two complex FFTs.

        With ``Q = (M y_u + F rhs) d`` and ``d = 1 / (M^2 + S)``, ``Re F^H Q`` is the
        inverse transform of the Hermitian part ``(Q[k] + conj Q[-k]) / 2``; as
        ``F rhs`` is Hermitian and ``S`` even, on the half grid that is::

            ((M y_u + R)[k] d[k] + (conj (M y_u)[-k] + R[k]) d[-k]) / 2,   R = rfft2(rhs)

        which ``irfft2`` turns into ``x``. The mask and ``y`` need no symmetry.
        Zero denominators get 1e-6, as in ``solve_unitary``.
        """
        self.check(y, "k-space data")
        if rhs is not None:
            self.check(rhs, "right-hand side")
        pos, neg = self._half_data(y)
        r = None if rhs is None else torch.fft.rfft2(rhs, norm="ortho")
        half = self._m2_half.shape
        fits = (r is None or r.dtype == pos.dtype) and tuple(spectrum_half.shape) == tuple(half)
        lib = _kernels(pos, spectrum_half) if fits else None
        if lib is not None:  # the combination below, in one pass
            out = torch.empty_like(pos)
            real = (t.to(spectrum_half.dtype).contiguous() for t in (self._m2_half, self._m2_neg_half, spectrum_half))
            k = half[0] * half[1]
            native.call(
                lib,
                "mri_half_solve",
                (pos, neg, pos if r is None else r, *real, out),
                (pos.numel() // k, k, r is not None),
            )
            return torch.fft.irfft2(out, s=self.shape, norm="ortho")

        def inverse(denom: Tensor) -> Tensor:
            return 1 / torch.where(denom == 0, torch.full_like(denom, 1e-6), denom)

        d_pos, d_neg = inverse(self._m2_half + spectrum_half), inverse(self._m2_neg_half + spectrum_half)
        if r is not None:
            pos, neg = pos + r, neg + r
        return torch.fft.irfft2((pos * d_pos + neg * d_neg) * 0.5, s=self.shape, norm="ortho")

    def _half_data(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(M y_u)[k]`` and ``conj (M y_u)[-k]`` on the half grid, kept for the last
        ``y`` seen (by identity and version: an unrolled network solves with the same
        data at every stage); computed afresh for a ``y`` that requires grad."""
        key = (id(y), y._version)
        cached = getattr(self, "_half_cache", None)
        if cached is not None and cached[0] == key and cached[1]() is y:
            return cached[2]
        my = self.mask * self.unitary(y)
        out = (my[..., : self.shape[1] // 2 + 1].contiguous(), my[(..., *self._neg)].conj().resolve_conj())
        if not y.requires_grad:
            self._half_cache = (key, weakref.ref(y), out)
        return out

    def data_fidelity(self, x: Tensor, y: Tensor) -> Tensor:
        """``1/2 ||A_u x - y_u||^2`` per image (unitary convention)."""
        self.check(x)
        self.check(y, "k-space data")
        r = self.mask * torch.fft.fft2(x, norm="ortho") - self.mask * self.unitary(y)
        return 0.5 * r.abs().pow(2).flatten(1).sum(1)

    def data_gradient(self, x: Tensor, y: Tensor) -> Tensor:
        """Gradient of ``1/2 ||A_u x - y_u||^2`` (unitary convention, so its scale does
        not depend on ``fft_norm``): ``F^H (M^2 F x - M y_u)``. Real for real ``x``."""
        self.check(x)
        self.check(y, "k-space data")
        r = self.mask * (self.mask * torch.fft.fft2(x, norm="ortho") - self.unitary(y))
        g = torch.fft.ifft2(r, norm="ortho")
        return g if x.is_complex() else g.real

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``y = A x + M n`` with complex Gaussian noise ``n`` of std ``noise_std``."""
        y = self.A(x)
        if self.noise_std > 0:
            if generator is None:
                raise ValueError("noise_std > 0 needs a torch.Generator for the noise")
            real_dtype = torch.float64 if y.dtype == torch.complex128 else torch.float32
            noise = torch.complex(
                torch.randn(y.shape, generator=generator, dtype=real_dtype),
                torch.randn(y.shape, generator=generator, dtype=real_dtype),
            ).to(y.device)
            y = y + self.noise_std * self.mask * noise
        return y
