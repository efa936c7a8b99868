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

import torch
from torch import Tensor

FFT_NORMS = ("ortho", "backward")


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

    # -- bookkeeping ------------------------------------------------------------------
    def to(self, device=None, dtype=None) -> MRI:
        out = object.__new__(MRI)
        out.__dict__.update(self.__dict__)
        out.mask = self.mask.to(device=device, dtype=dtype if dtype is not None else self.mask.dtype)
        return out

    @property
    def sampling_ratio(self) -> float:
        return float((self.mask != 0).float().mean())

    def check(self, x: Tensor) -> None:
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"image of shape {tuple(x.shape[-2:])} does not match the mask's shape {self.shape}")

    # -- the operator -----------------------------------------------------------------
    def A(self, x: Tensor) -> Tensor:
        self.check(x)
        return self.mask * torch.fft.fft2(x, norm=self.fft_norm)

    def A_adjoint(self, y: Tensor) -> Tensor:
        """The true adjoint: ``<A x, y> = <x, A^H y>``."""
        self.check(y)
        if self.fft_norm == "ortho":
            return torch.fft.ifft2(self.mask * y, norm="ortho")
        return torch.fft.ifft2(self.mask * y, norm="forward")  # = N * ifft2(., "backward")

    def zero_filled(self, y: Tensor) -> Tensor:
        """Inverse FFT of the zero-filled k-space, in image scale."""
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
        denom = self.mask * self.mask + spectrum
        denom = torch.where(denom == 0, torch.full_like(denom, 1e-6), denom)
        num = self.mask * self.unitary(y)
        if rhs is not None:
            num = num + torch.fft.fft2(rhs, norm="ortho")
        return torch.fft.ifft2(num / denom, norm="ortho")

    def data_fidelity(self, x: Tensor, y: Tensor) -> Tensor:
        """``1/2 ||A_u x - y_u||^2`` per image (unitary convention)."""
        r = self.mask * torch.fft.fft2(x, norm="ortho") - self.mask * self.unitary(y)
        return 0.5 * r.abs().pow(2).flatten(1).sum(1)

    def data_gradient(self, x: Tensor, y: Tensor) -> Tensor:
        """Gradient of ``1/2 ||A_u x - y_u||^2`` (unitary convention, so its scale does
        not depend on ``fft_norm``): ``F^H (M^2 F x - M y_u)``. Real for real ``x``."""
        self.check(x)
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
