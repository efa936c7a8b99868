"""Deep ADMM-Net for compressive-sensing MRI (Yang, Sun, Li, Xu, NIPS 2016).

ADMM for ``min_x 1/2 ||A x - y||^2 + sum_l lambda_l g(D_l x)`` with the splitting
``z_l = D_l x`` unrolled into stages of four layers (Section 2 of the paper):

- reconstruction layer X:  x = F^H [P^T y + sum_l rho_l F H_l^T (z_l - beta_l)]
                                 / [P^T P + sum_l rho_l |F H_l|^2]
- convolution layer C:     c_l = D_l x
- nonlinear transform Z:   z_l = S_PLF(c_l + beta_l; q_l)
- multiplier update M:     beta_l = beta_l + eta_l (c_l - z_l)

and a last reconstruction layer. ``H_l`` and ``D_l`` are 3x3 filters, each a
learned combination of the 2-D DCT basis without its DC atom; ``S_PLF`` is a
piecewise-linear function with 101 control points on [-1, 1]. All convolutions
are circular (so H^T H is diagonal in the Fourier basis). The layer semantics
follow the authors' MATLAB code (``layersfunction/``): true convolution
(MATLAB ``imfilter(..., 'circular', 'conv')``), denominators that vanish set to
1e-6, slope-1 extrapolation of ``S_PLF`` outside [-1, 1], and the real part of x
for real images. Zero ``z, beta`` before the first stage make the paper's first
stage (``X_org``, ``Non_linorg``, ``Multi_org``) the general one.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from l2o import native
from unrolled.models.base import State, UnrolledModel
from unrolled.models.filters import (  # noqa: F401  (dct_basis: public API)
    DCTFilters,
    apply_real,
    bank_filters,
    dct_basis,
    filter_spectrum,
    widen_bank,
)

_KERNELS = Path(__file__).resolve().parent.parent / "kernels" / "admm_net.c"


def _kernels(t: Tensor):
    """The compiled stage kernels (``unrolled/kernels/admm_net.inc``) for a real CPU
    tensor with autograd off (inference); else None."""
    return None if t.is_complex() else native.library_for(_KERNELS, t, inference_only=True)


def _adjoint_in_kernel(lib, z: Tensor, beta: Tensor, taps: Tensor) -> Tensor:
    """X's right-hand side ``sum_l H_l^T (z_l - beta_l)`` (``taps``: the rho-weighted
    filters, (L, s, s) contiguous, of z's dtype) by the ``admm_adjoint`` kernel, with
    ``z - beta`` fused in: (B, H, W)."""
    B, L, H, W = z.shape
    rhs = z.new_empty(B, H, W)
    native.call(lib, "admm_adjoint", (z.contiguous(), beta.contiguous(), taps, rhs), (B, L, H, W, taps.shape[-1]))
    return rhs


def _tail_in_kernel(lib, x, beta, taps, intercepts, slopes, eta, plf: PiecewiseLinear, out: State | None) -> State:
    """C, Z and M of one stage by the ``admm_tail`` kernel (``taps``: the flipped C
    filters; ``intercepts, slopes``: ``plf``'s tables; all contiguous, of x's dtype):
    ``(z, beta)``, written into ``out`` if given."""
    B, L, H, W = beta.shape
    beta = beta.contiguous()
    z, beta_out = out if out is not None else (torch.empty_like(beta), torch.empty_like(beta))
    native.call(
        lib,
        "admm_tail",
        (x.contiguous(), taps, beta, intercepts, slopes, eta, z, beta_out),
        (B, L, H, W, taps.shape[-1], plf.points + 1),
        (1 / plf.step, 1 - plf.low / plf.step),
    )
    return z, beta_out


# the most bytes of z (and of beta) that one pass of the CPU kernels takes: a larger batch goes in
# chunks of images, so that the stages' four state buffers stay in the last-level cache (8 filters of
# 3x3 at batch 16 on 256x256 images: chunks of 2, 1.14x faster per image than one pass of 16 (median
# of 7 paired rounds, 0.77-1.55x; 16 of 5x5: chunks of 1, 1.09x) on the 2-core machine measured,
# whose L3 holds 32 MB)
KERNEL_CHUNK_BYTES = 4 << 20

# the kernels' two (z, beta) buffer pairs, kept between calls: per thread, for the last (L, H, W) and
# dtype only, until the thread ends or ``release_kernel_buffers()``; 4 chunks' worth, i.e. at most
# 4 x KERNEL_CHUNK_BYTES, or 4 images where one image's z is larger (16 filters of 256x256 in float32:
# 16 MB). Fresh MB-sized tensors can be fresh pages from the OS, whose first touch costs; how often
# depends on what glibc kept from earlier frees. Measured (2 threads, 256x256): with old and new
# alternately in one process (median of 11 or 5 paired calls), 8 filters of 3x3 at batch 1 20.0 ->
# 17.2 ms per image (1.16x), at batch 16 1.02x, 16 of 5x5 1.01x (40.5 -> 37.4 ms at batch 1 in a
# process that had allocated nothing else); the speed benchmark's separate runs show no clear change
# for 8x3 (18.4 ms before, 19.0 and 20.4 after)
_workspace = threading.local()


def _state_buffers(shape: tuple[int, ...], dtype: torch.dtype) -> list[Tensor]:
    """Four uninitialised (B, L, H, W) tensors for ``_forward_in_kernels``: the first B
    images of the buffers kept on this thread when their (L, H, W) and dtype match and
    they hold at least B images (the last, smaller chunk of a batch), else new ones.
    They are made outside inference mode, so that calls under ``torch.no_grad`` may
    write them after one under ``torch.inference_mode`` made them."""
    B, *rest = shape
    key = (tuple(rest), dtype)
    if getattr(_workspace, "key", None) != key or _workspace.buffers[0].shape[0] < B:
        _workspace.key, _workspace.buffers = None, None  # the old ones are freed before the new are made
        with torch.inference_mode(False):
            _workspace.buffers = [torch.empty(shape, dtype=dtype) for _ in range(4)]
        _workspace.key = key
    return [t[:B] for t in _workspace.buffers]


def release_kernel_buffers() -> None:
    """Free the (z, beta) buffers that CPU inference keeps on the calling thread
    between calls (``_state_buffers``); the next call makes new ones."""
    _workspace.__dict__.clear()


def _kernel_constants(stages: list, recon: list, shape: tuple[int, int], dtype: torch.dtype) -> dict:
    """What the kernels take from the weights of the ADMM-Net ``stages`` and the X
    layers ``recon`` (the stages' and, after them, any more), computed for all of them
    at once (a handful of operations on stacked parameters instead of a few dozen
    small ones per stage): ``x_taps`` (len(recon), L, s, s) the rho-weighted X filters,
    ``spectra`` (len(recon), H, W // 2 + 1) their one-sided ``sum_l rho_l |F H_l|^2``
    (in the weights' dtype, as the layers give it), ``c_taps`` (N, L, s, s) the
    flipped C filters, ``intercepts`` and ``slopes`` (N, L, P + 1) the Z tables,
    ``eta`` (N, L); all but ``spectra`` in ``dtype``, each row contiguous."""
    size = recon[0].filters.size
    rho = torch.stack([r.rho for r in recon])
    h = bank_filters(torch.stack([r.filters.weight for r in recon]), size)
    out = {
        "x_taps": (h * rho[..., None, None]).to(dtype),
        "spectra": filter_spectrum(h, rho, shape, onesided=True),
    }
    if stages:
        plf = stages[0].nonlinear.plf
        out["eta"] = torch.stack([st.multiplier.eta for st in stages]).to(dtype)
        c = bank_filters(torch.stack([st.convolution.filters.weight for st in stages]), size)
        out["c_taps"] = c.flip(-1, -2).to(dtype)
        tables = plf_tables(torch.stack([st.nonlinear.plf.values for st in stages]), plf.low, plf.high)
        out["intercepts"], out["slopes"] = (t.to(dtype) for t in tables)
    return {k: v.contiguous() for k, v in out.items()}


def _stage_in_kernels(lib, state: State, y: Tensor, physics, c: dict, i: int, plf, out, zero_state=False) -> State:
    """Stage ``i`` of the constants ``c`` on ``state``: X (its adjoint in a kernel,
    skipped for a ``zero_state``, whose right-hand side is 0), then C, Z and M."""
    z, beta = state
    rhs = None if zero_state else _adjoint_in_kernel(lib, z, beta, c["x_taps"][i])
    x = physics.solve_unitary_real(y, rhs, c["spectra"][i])
    return _tail_in_kernel(lib, x, beta, c["c_taps"][i], c["intercepts"][i], c["slopes"][i], c["eta"][i], plf, out)


def plf_tables(q: Tensor, low: float, high: float) -> tuple[Tensor, Tensor]:
    """Intercepts and slopes of the linear pieces of piecewise-linear functions with
    values ``q`` (..., P) at P knots evenly spaced on [low, high] and slope 1 outside:
    (..., P + 1) each. Piece 0 is ``x < p_0``, piece j ``p_{j-1} <= x < p_j``, piece P
    is ``x >= p_{P-1}``; differentiable in ``q``."""
    points = q.shape[-1]
    step = (high - low) / (points - 1)
    knots = low + step * torch.arange(points - 1, dtype=q.dtype, device=q.device)
    inner = (q[..., 1:] - q[..., :-1]) / step
    ones = torch.ones_like(q[..., :1])
    slopes = torch.cat([ones, inner, ones], -1)
    intercepts = torch.cat([q[..., :1] - low, q[..., :-1] - inner * knots, q[..., -1:] - high], -1)
    return intercepts, slopes


class ReconstructionLayer(nn.Module):
    """X: solves ``(P^T P + sum_l rho_l H_l^T H_l) x = P^T y + sum_l rho_l H_l^T
    (z_l - beta_l)`` in the Fourier domain (unitary convention, ``physics.solve_unitary``)."""

    def __init__(self, num_filters: int = 8, size: int = 3, rho: float = 0.2, real_images: bool = True):
        super().__init__()
        self.filters = DCTFilters(num_filters, size)
        self.rho = nn.Parameter(torch.full((num_filters,), rho))
        self.real_images = real_images

    def forward(self, z: Tensor | None, beta: Tensor | None, y: Tensor, physics) -> Tensor:
        lib = None if z is None else _kernels(z)
        if lib is not None and self.real_images:  # fused z - beta and the adjoint's col2im, as one pass
            c = _kernel_constants([], [self], physics.shape, z.dtype)
            return physics.solve_unitary_real(y, _adjoint_in_kernel(lib, z, beta, c["x_taps"][0]), c["spectra"][0])
        rhs = None if z is None else apply_real(lambda u: self.filters.conv_adjoint(u, self.rho), z - beta)
        if self.real_images:  # x.real by one real FFT pair (the spectrum is even)
            return physics.solve_unitary_real(y, rhs, self.filters.spectrum(self.rho, physics.shape, onesided=True))
        return physics.solve_unitary(y, rhs, self.filters.spectrum(self.rho, physics.shape))


class ConvolutionLayer(nn.Module):
    """C: ``c_l = D_l x`` (circular convolution with L DCT-combination filters)."""

    def __init__(self, num_filters: int = 8, size: int = 3):
        super().__init__()
        self.filters = DCTFilters(num_filters, size)

    def forward(self, x: Tensor) -> Tensor:
        return apply_real(self.filters.conv, x)


class PiecewiseLinear(nn.Module):
    """A learnable piecewise-linear function per channel: control points
    ``p_0 < ... < p_{P-1}`` evenly spaced on [low, high] with values ``q_l`` (L, P);
    linear interpolation inside, slope 1 outside (the authors' ``nnlinemex``)::

        S(x) = x - p_0 + q_0             x < p_0
        S(x) = x - p_{P-1} + q_{P-1}     x >= p_{P-1}
    """

    def __init__(
        self, num_channels: int = 8, points: int = 101, low: float = -1.0, high: float = 1.0, threshold: float = 0.05
    ):
        super().__init__()
        self.low, self.high, self.points = low, high, points
        self.step = (high - low) / (points - 1)  # knot spacing
        p = torch.linspace(low, high, points, dtype=torch.float64)
        soft = torch.sign(p) * torch.clamp(p.abs() - threshold, min=0)
        self.values = nn.Parameter(soft.to(torch.get_default_dtype()).repeat(num_channels, 1))

    def tables(self) -> tuple[Tensor, Tensor]:
        """Intercepts and slopes of the P + 1 linear pieces of every channel, (L, P + 1)
        each: piece 0 is ``x < p_0``, piece j ``p_{j-1} <= x < p_j``, piece P is
        ``x >= p_{P-1}``; differentiable in ``values``."""
        return plf_tables(self.values, self.low, self.high)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, H, W) real.

        ``S(x) = a_j + b_j x`` with ``j`` the piece ``x`` falls in: the position on
        the knot grid clamped to [0, P], truncated to an index, offset by the
        channel's place in the flattened tables, then two gathers (a uniform grid
        needs no search)."""
        L, n = self.values.shape[0], self.points + 1
        intercepts, slopes = self.tables()
        with torch.no_grad():
            index = x.mul(1 / self.step).add_(1 - self.low / self.step).clamp_(0, n - 1).to(torch.int32)
            index += torch.arange(0, L * n, n, dtype=torch.int32, device=x.device).view(1, L, 1, 1)
            index = index.view(-1)
        a = intercepts.reshape(-1).index_select(0, index).view_as(x)
        b = slopes.reshape(-1).index_select(0, index).view_as(x)
        return torch.addcmul(a, b, x)


class NonlinearTransformLayer(nn.Module):
    """Z: ``z_l = S_PLF(c_l + beta_l)`` (real and imaginary parts separately)."""

    def __init__(self, num_filters: int = 8, points: int = 101, threshold: float = 0.05):
        super().__init__()
        self.plf = PiecewiseLinear(num_filters, points, threshold=threshold)

    def forward(self, c: Tensor, beta: Tensor) -> Tensor:
        return apply_real(self.plf, c + beta)


class MultiplierUpdateLayer(nn.Module):
    """M: ``beta_l = beta_l + eta_l (c_l - z_l)``."""

    def __init__(self, num_filters: int = 8, eta: float = 1.6):
        super().__init__()
        self.eta = nn.Parameter(torch.full((num_filters,), eta))

    def forward(self, beta: Tensor, c: Tensor, z: Tensor) -> Tensor:
        return torch.addcmul(beta, self.eta.view(1, -1, 1, 1), c - z)


class ADMMNetStage(nn.Module):
    """One stage: X, C, Z, M. State: ``(z, beta)``, each (B, L, H, W)."""

    def __init__(self, num_filters=8, size=3, points=101, rho=0.2, eta=1.6, threshold=0.05, real_images=True):
        super().__init__()
        self.reconstruction = ReconstructionLayer(num_filters, size, rho, real_images)
        self.convolution = ConvolutionLayer(num_filters, size)
        self.nonlinear = NonlinearTransformLayer(num_filters, points, threshold)
        self.multiplier = MultiplierUpdateLayer(num_filters, eta)

    def forward(self, state: State, y: Tensor, physics) -> State:
        lib = _kernels(state[1]) if self.reconstruction.real_images else None
        if lib is not None:
            return self.forward_in_kernels(lib, state, y, physics)
        z, beta = state
        x = self.reconstruction(z, beta, y, physics)
        c = self.convolution(x)
        z = self.nonlinear(c, beta)
        beta = self.multiplier(beta, c, z)
        return z, beta

    def forward_in_kernels(self, lib, state: State, y: Tensor, physics, out: State | None = None) -> State:
        """The stage for inference on the CPU: X (its adjoint in a kernel), then C, Z
        and M fused in one pass over the responses; the same arithmetic as the
        layers, without the (B, L, H, W) temporaries. ``out``: two contiguous
        tensors shaped like ``beta`` (not ``state``'s) to write ``(z, beta)`` into."""
        c = _kernel_constants([self], [self.reconstruction], physics.shape, state[1].dtype)
        return _stage_in_kernels(lib, state, y, physics, c, 0, self.nonlinear.plf, out)


class ADMMNet(UnrolledModel):
    """Deep ADMM-Net: ``stages`` stages of (X, C, Z, M) and a last X layer.

    Untrained, it is ADMM for ``1/2 ||A x - y||^2 + sum_l lambda ||D_l x||_1`` with
    D_l the DCT atoms, ``rho = 0.2``, ``eta = 1.6`` and the soft threshold 0.05 (the
    authors' "Init-Net"), up to the piecewise-linear approximation of the soft
    threshold on the control-point grid.

    Args:
        stages: number of (X, C, Z, M) stages.
        num_filters: L (8); filter_size: s (3); points: PLF control points (101).
        rho, eta, threshold: initial values.
        real_images: keep the real part of x (the authors' code, real-valued
            images); False reconstructs complex images (real filters act on the
            real and imaginary parts, ``S_PLF`` too).
        shared_weights: one set of stage parameters for all stages.

    Input ``y``: (B, H, W) k-space in ``physics``' convention; output (B, H, W).
    """

    def __init__(
        self,
        stages: int = 15,
        num_filters: int = 8,
        filter_size: int = 3,
        points: int = 101,
        rho: float = 0.2,
        eta: float = 1.6,
        threshold: float = 0.05,
        real_images: bool = True,
        shared_weights: bool = False,
    ):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        self.config = dict(
            stages=stages,
            num_filters=num_filters,
            filter_size=filter_size,
            points=points,
            rho=rho,
            eta=eta,
            threshold=threshold,
            real_images=real_images,
            shared_weights=shared_weights,
        )
        make = lambda: ADMMNetStage(num_filters, filter_size, points, rho, eta, threshold, real_images)  # noqa: E731
        if shared_weights:
            one = make()
            self.stages = nn.ModuleList([one] * stages)
        else:
            self.stages = nn.ModuleList(make() for _ in range(stages))
        self.final = ReconstructionLayer(num_filters, filter_size, rho, real_images)
        self.num_filters = num_filters

    def init_state(self, y: Tensor, physics) -> State:
        B = y.shape[0]
        zeros = torch.zeros(B, self.num_filters, *physics.shape, dtype=self._state_dtype(y), device=y.device)
        return zeros, zeros

    def _state_dtype(self, y: Tensor) -> torch.dtype:
        real_dtype = torch.float64 if y.dtype == torch.complex128 else torch.float32
        return real_dtype if self.config["real_images"] else y.dtype

    def output(self, state: State, y: Tensor, physics) -> Tensor:
        z, beta = state
        return self.final(z, beta, y, physics)

    def forward(self, y: Tensor, physics, num_stages: int | None = None, checkpoint: bool = False) -> Tensor:
        probe = torch.empty(0, dtype=self._state_dtype(y), device=y.device)  # the state's kind of tensor
        lib = _kernels(probe) if self.config["real_images"] else None
        if lib is None:
            return self.output(self.run(y, physics, num_stages, checkpoint), y, physics)
        # inference on the CPU. The constants the kernels take from the weights are computed once; a
        # batch goes through in chunks whose (z, beta) stay in the CPU's cache between stages (the
        # images are independent: the same output as one pass)
        stages = list(self.stages[: len(self.stages) if num_stages is None else num_stages])
        recon = [st.reconstruction for st in stages] + [self.final]
        c = _kernel_constants(stages, recon, physics.shape, probe.dtype)
        chunk = max(1, KERNEL_CHUNK_BYTES // (self.num_filters * math.prod(physics.shape) * probe.element_size()))
        if y.shape[0] > chunk:
            return torch.cat([self._forward_in_kernels(lib, part, physics, c, len(stages)) for part in y.split(chunk)])
        return self._forward_in_kernels(lib, y, physics, c, len(stages))

    def _forward_in_kernels(self, lib, y: Tensor, physics, c: dict, num_stages: int) -> Tensor:
        """The first ``num_stages`` stages and the last X layer on ``y`` by the kernels, from
        the constants ``c`` of ``_kernel_constants``. The stages' (z, beta) alternate
        between two pairs of buffers, which no caller sees and the next call reuses
        (``_state_buffers``: a fresh pair per stage, or per call, would be fresh pages from
        the OS, a cost comparable to the stage's arithmetic)."""
        z, beta, *spare = _state_buffers((y.shape[0], self.num_filters, *physics.shape), self._state_dtype(y))
        beta.zero_()  # the initial state is zero; stage 0 reads only its beta (its X has no adjoint)
        if num_stages == 0:
            z.zero_()
        state, spare = (z, beta), tuple(spare)
        plf = self.stages[0].nonlinear.plf
        for i in range(num_stages):
            state, spare = _stage_in_kernels(lib, state, y, physics, c, i, plf, spare, zero_state=i == 0), state
        z, beta = state
        return physics.solve_unitary_real(y, _adjoint_in_kernel(lib, z, beta, c["x_taps"][-1]), c["spectra"][-1])


def widen(model: ADMMNet, num_filters: int, filter_size: int) -> ADMMNet:
    """A copy of ``model`` with ``num_filters`` filters of ``filter_size`` per layer
    (both at least the model's) that computes the same reconstruction: every filter of
    the X and C layers zero-padded to the new size, and the added channels entering the
    X layers with ``rho = 0`` (so they change nothing until training moves them; their
    filters, Z and M start as a fresh stage's). Training from it starts where ``model``
    ended."""
    cfg = dict(model.config)
    old_n, old_s = cfg["num_filters"], cfg["filter_size"]
    if num_filters < old_n or filter_size < old_s or (filter_size - old_s) % 2:
        raise ValueError(
            f"widen needs at least {old_n} filters of size {old_s} + 2k, got {num_filters} of {filter_size}"
        )
    like = next(model.parameters())
    new = ADMMNet(**{**cfg, "num_filters": num_filters, "filter_size": filter_size}).to(like)
    with torch.no_grad():
        recon = [(o.reconstruction, n.reconstruction) for o, n in zip(model.stages, new.stages)]
        for old_x, new_x in [*recon, (model.final, new.final)]:
            widen_bank(old_x.filters, new_x.filters)
            new_x.rho.zero_()
            new_x.rho[:old_n] = old_x.rho
        for old, stage in zip(model.stages, new.stages):
            widen_bank(old.convolution.filters, stage.convolution.filters)
            stage.nonlinear.plf.values[:old_n] = old.nonlinear.plf.values
            stage.multiplier.eta[:old_n] = old.multiplier.eta
    return new


def load_authors_network(path, dtype=torch.float64) -> ADMMNet:
    """An ``ADMMNet`` with the weights of an authors' trained network file
    (``net/network_20/net-stageN.mat`` of the Deep ADMM-Net repository).

    The file is a MatConvNet-style layer list: ``X_org, Convo, Non_linorg,
    Multi_org``, then ``X_mid, Convo, Non_linmid, Multi_mid`` per stage (the last
    one ``Multi_final``), a last ``X_mid`` and ``loss``.

    Raises:
        ValueError: the file's layer list is not of that form.
    """
    from unrolled.data.admm_net_data import read_admm_net_layers

    layers = [(k, w) for k, w in read_admm_net_layers(path) if k != "loss"]
    if (len(layers) - 1) % 4 or layers[-1][0] != "X_mid" or layers[0][0] != "X_org":
        raise ValueError(f"{path}: unexpected layer sequence {[k for k, _ in layers][:8]}...")
    n_stages = (len(layers) - 1) // 4
    gamma0 = layers[0][1][0]
    L = gamma0.shape[1]
    size = int(round(math.sqrt(gamma0.shape[0] + 1)))
    points = layers[2][1][0].shape[0]
    net = ADMMNet(stages=n_stages, num_filters=L, filter_size=size, points=points).to(dtype)
    expected = [("X_org", "X_mid"), ("Convo",), ("Non_linorg", "Non_linmid"), ("Multi_org", "Multi_mid", "Multi_final")]

    def t(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(a.shape), dtype=dtype)

    with torch.no_grad():
        for s in range(n_stages):
            (kx, wx), (kc, wc), (kz, wz), (km, wm) = layers[4 * s : 4 * s + 4]
            for kind, allowed in zip((kx, kc, kz, km), expected):
                if kind not in allowed:
                    raise ValueError(f"{path}: stage {s}: layer {kind!r}, expected one of {allowed}")
            stage = net.stages[s]
            stage.reconstruction.filters.weight.copy_(t(wx[0]))
            stage.reconstruction.rho.copy_(t(wx[1]).reshape(-1))
            stage.convolution.filters.weight.copy_(t(wc[0]))
            stage.nonlinear.plf.values.copy_(t(wz[0]).T)
            stage.multiplier.eta.copy_(t(wm[0]).reshape(-1))
        kx, wx = layers[-1]
        net.final.filters.weight.copy_(t(wx[0]))
        net.final.rho.copy_(t(wx[1]).reshape(-1))
    return net
