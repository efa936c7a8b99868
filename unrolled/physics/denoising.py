"""Denoising: ``y = x + n``, ``n ~ N(0, sigma^2)``; the identity forward operator."""

from __future__ import annotations

import torch
from torch import Tensor


class Denoising:
    """Additive white Gaussian noise.

    Args:
        sigma: noise standard deviation on the 0-255 scale (images are in [0, 1],
            so the noise std is ``sigma / 255``).

    The interface of the MRI physics: ``A``, ``A_adjoint``, ``zero_filled``
    (the noisy image itself), ``data_gradient``, ``solve``, ``simulate``.
    """

    def __init__(self, sigma: float = 25.0):
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.noise_std = self.sigma / 255.0
        self.shape = None  # any image size

    def to(self, device=None, dtype=None) -> Denoising:
        return self

    def check(self, x: Tensor) -> None:
        pass

    def A(self, x: Tensor) -> Tensor:
        return x

    def A_adjoint(self, y: Tensor) -> Tensor:
        return y

    def zero_filled(self, y: Tensor) -> Tensor:
        return y

    def unitary(self, y: Tensor) -> Tensor:
        return y

    def data_gradient(self, x: Tensor, y: Tensor) -> Tensor:
        """Gradient of ``1/2 ||x - y||^2``."""
        return x - y

    def data_fidelity(self, x: Tensor, y: Tensor) -> Tensor:
        """``1/2 ||x - y||^2`` per image."""
        return 0.5 * (x - y).abs().pow(2).flatten(1).sum(1)

    def solve(self, b: Tensor, rho: float | Tensor) -> Tensor:
        """``(I + rho I)^{-1} b``."""
        return b / (1 + rho)

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.noise_std == 0:
            return x
        if generator is None:
            raise ValueError("sigma > 0 needs a torch.Generator for the noise")
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return x + self.noise_std * noise
