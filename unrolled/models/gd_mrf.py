"""Gradient-descent MRF: a Markov random field whose inference is unrolled gradient
descent, trained discriminatively through the steps (Sun & Tappen, CVPR 2011;
stage-wise, it is TNRD, Chen & Pock, TPAMI 2017).

Energy, for data ``y`` and a physics object (denoising: ``A = I``; MRI: ``A = M F``)::

    E(x) = lambda/2 ||A x - y||^2 + sum_i sum_p rho_i((k_i (x) x)_p)

Inference, K steps from the physics' zero-filled/noisy image::

    x_{k+1} = x_k - eta_k (sum_i k_i^T phi_i(k_i (x) x_k) + lambda A^H (A x_k - y)),   phi_i = rho_i'

The filters ``k_i`` are zero-mean (learned combinations of the DCT basis without
its DC atom); ``phi_i`` are mixtures of 63 Gaussian radial basis functions (TNRD),
or the Student-t (Fields of Experts) penalty. ``sharing="shared"``: one energy for
all K steps (the MRF of Sun & Tappen; each step its own step size);
``sharing="stagewise"``: each stage its own filters, penalties, lambda (TNRD).

Non-local range variant (Sun & Tappen 2011, Section 3): each clique is an s x s
patch together with its ``n`` most similar patches, found by block matching in a
search window; a range filter is an (n + 1) x s x s filter on the stacked group,
and its adjoint scatters the gradients back to the matched positions.
``range_filters="collaborative"`` restricts the range filter of filter i on the
j-th matched patch to ``c_ji k_i``, a learned multiple of the local filter: the
clique's response is ``(k_i (x) x)_p + sum_j c_ji (k_i (x) x)_{m_j(p)}``, a
weighted pooling of the filter responses over the group of similar patches (the
collaborative filtering of BM3D) with n x F parameters instead of n x F x (s^2 - 1).
``range_filters="averaged"`` gives the local slice the weight ``1 - sum_j c_ji``
instead of 1, so the clique's response is a weighted mean of the filter responses
over the group (weights summing to 1, ``c`` by match rank): on a group of
identical patches it equals the local response whatever ``c`` is, so the
penalties trained for the local responses keep their scale while ``c`` moves
away from 0, and the pooling only averages out the noise in the responses.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2o import native
from unrolled.models.base import State, UnrolledModel
from unrolled.models.filters import FilterBank, basis_as, pad, pad_adjoint, widen_bank

PENALTIES = ("rbf", "student_t")
SHARING = ("shared", "stagewise")
MATCH_ON = ("input", "estimate")
RANGE_FILTERS = ("full", "collaborative", "averaged")
_KERNELS = Path(__file__).resolve().parent.parent / "kernels" / "gd_mrf.c"


def _student_t_phi(z: Tensor, alpha: Tensor, scale: Tensor) -> Tensor:
    """phi(z) = alpha z / (s^2 + z^2 / 2), the derivative of alpha log(1 + z^2 / (2 s^2))."""
    return alpha * z / (scale**2 + 0.5 * z * z)


class RBFPenalty(nn.Module):
    """``phi_i(z) = sum_j w_ij exp(-(z - mu_j)^2 / (2 gamma^2))`` with ``centers``
    equally spaced on [-span, span] and gamma their spacing (TNRD's 63 centres on
    [-310, 310] for 0-255 images with gamma = 10, here for [0, 1] images).

    Evaluated by linear interpolation in a table of the mixture on a fine grid
    (``table`` points on [-span - 3 gamma, span + 3 gamma], constant beyond), which
    differs from the exact mixture by < 1e-3 of its scale, and costs one
    ``grid_sample`` instead of 63 exponentials per response. Initialised to fit
    the Student-t derivative ``init_alpha z / (init_scale^2 + z^2 / 2)``.
    """

    def __init__(
        self,
        num_filters: int,
        centers: int = 63,
        span: float = 1.2,
        table: int = 2049,
        init_alpha: float = 0.005,
        init_scale: float = 0.1,
    ):
        super().__init__()
        mu = torch.linspace(-span, span, centers, dtype=torch.float64)
        gamma = float(mu[1] - mu[0])
        self.extent = span + 3 * gamma
        grid = torch.linspace(-self.extent, self.extent, table, dtype=torch.float64)
        basis = torch.exp(-((grid[:, None] - mu[None]) ** 2) / (2 * gamma**2))  # (table, centers)
        target = _student_t_phi(
            grid, torch.tensor(init_alpha, dtype=torch.float64), torch.tensor(init_scale, dtype=torch.float64)
        )
        w = torch.linalg.lstsq(basis, target[:, None]).solution[:, 0]
        self._basis64 = basis  # the master copy: a dtype change re-derives the buffer from it (see _apply)
        self.register_buffer("basis", basis.to(torch.get_default_dtype()), persistent=False)
        self.weight = nn.Parameter(w.to(torch.get_default_dtype()).repeat(num_filters, 1))
        self.mu, self.gamma = mu, gamma

    def _apply(self, fn, recurse=True):
        """After ``.to``/``.double()``/``.cuda()``: the table basis rounded once from its
        float64 master into the weights' dtype (a cast of the float32 buffer would keep
        float32's rounding in a float64 model)."""
        super()._apply(fn, recurse)
        self.basis = self._basis64.to(device=self.weight.device, dtype=self.weight.dtype)
        return self

    def table(self) -> Tensor:
        """(F, table) values of phi on the grid."""
        return self.weight @ self.basis.to(self.weight.dtype).T

    @torch.no_grad()
    def segments(self) -> tuple[Tensor, Tensor]:
        """The interpolation of ``forward`` as ``a_k + b_k z`` on grid segment ``k``:
        intercepts and slopes (F, table), the last segment flat (beyond the grid)."""
        tab = self.table()
        L, T = tab.shape
        inv = (T - 1) / (2 * self.extent)
        slope = torch.cat([(tab[:, 1:] - tab[:, :-1]) * inv, tab.new_zeros(L, 1)], 1)  # flat beyond the grid
        knots = torch.linspace(-self.extent, self.extent, T, dtype=tab.dtype, device=tab.device)
        return tab - slope * knots, slope

    @torch.no_grad()
    def lookup(self):
        """phi as a function of (F, N) responses for inference (no autograd): the
        ``segments``, with (intercept, slope) pairs stored as one complex table so
        that a single gather fetches both (about twice as fast as ``grid_sample``)."""
        intercept, slope = self.segments()
        L, T = slope.shape
        inv = (T - 1) / (2 * self.extent)
        pairs = torch.complex(intercept, slope).reshape(-1)
        first = (torch.arange(L, device=slope.device, dtype=torch.int32) * T)[:, None]  # each filter's first pair
        extent = self.extent

        def phi(z: Tensor) -> Tensor:
            zc = z.clamp(-extent, extent)
            # segment within the filter's table (clamped, so rounding never reaches another filter's),
            # int32 + index_select: faster than int64 + take
            idx = (zc * inv).add_(extent * inv).clamp_(0, T - 1).int().add_(first)
            ab = torch.view_as_real(pairs.index_select(0, idx.view(-1))).view(*z.shape, 2)
            return torch.addcmul(ab[..., 0], ab[..., 1], zc)

        return phi

    def forward(self, z: Tensor) -> Tensor:
        """z: (B, F, H, W) -> phi_i(z)."""
        B, L, H, W = z.shape
        u = (z / self.extent).transpose(0, 1).reshape(L, 1, B * H * W)
        grid = torch.stack([u, torch.zeros_like(u)], dim=-1)
        y = F.grid_sample(
            self.table()[:, None, None, :], grid, mode="bilinear", padding_mode="border", align_corners=True
        )
        return y.reshape(L, B, H, W).transpose(0, 1)

    def energy(self, z: Tensor) -> Tensor:
        """rho_i(z) = int_0^z phi_i, exactly for the interpolated phi (piecewise
        quadratic inside the grid, linear beyond): (B, F, H, W)."""
        tab = self.table()
        T = tab.shape[1]
        delta = 2 * self.extent / (T - 1)
        cum = torch.cat([tab.new_zeros(tab.shape[0], 1), torch.cumsum((tab[:, 1:] + tab[:, :-1]) * delta / 2, 1)], 1)
        u = (z.clamp(-self.extent, self.extent) + self.extent) / delta
        k = u.floor().clamp(0, T - 2)
        t = u - k
        L = tab.shape[0]
        off = (torch.arange(L, device=z.device) * T).view(1, L, 1, 1)
        idx = k.long() + off
        c0, p0, p1 = cum.reshape(-1)[idx], tab.reshape(-1)[idx], tab.reshape(-1)[idx + 1]
        inside = c0 + delta * (t * p0 + 0.5 * t * t * (p1 - p0))
        hi, lo = tab[:, -1].view(1, L, 1, 1), tab[:, 0].view(1, L, 1, 1)
        beyond = (z - z.clamp(-self.extent, self.extent)) * torch.where(z > 0, hi, lo)
        zero_u = self.extent / delta  # rho(0) = 0
        k0 = min(max(math.floor(zero_u), 0), T - 2)
        t0 = zero_u - k0
        rho0 = cum[:, k0] + delta * (t0 * tab[:, k0] + 0.5 * t0 * t0 * (tab[:, k0 + 1] - tab[:, k0]))
        return inside + beyond - rho0.view(1, L, 1, 1)


class StudentTPenalty(nn.Module):
    """Fields-of-Experts Student-t penalty ``rho_i(z) = alpha_i log(1 + z^2 / (2 s_i^2))``
    with learned ``alpha_i`` and ``s_i`` (positive through exp)."""

    def __init__(self, num_filters: int, init_alpha: float = 0.005, init_scale: float = 0.1):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((num_filters,), math.log(init_alpha)))
        self.log_scale = nn.Parameter(torch.full((num_filters,), math.log(init_scale)))

    def forward(self, z: Tensor) -> Tensor:
        return _student_t_phi(z, self.log_alpha.exp().view(1, -1, 1, 1), self.log_scale.exp().view(1, -1, 1, 1))

    @torch.no_grad()
    def lookup(self):
        """phi on (F, N) responses (inference)."""
        a, s = self.log_alpha.exp()[:, None], self.log_scale.exp()[:, None]
        return lambda z: _student_t_phi(z, a, s)

    def energy(self, z: Tensor) -> Tensor:
        a, s = self.log_alpha.exp().view(1, -1, 1, 1), self.log_scale.exp().view(1, -1, 1, 1)
        return a * torch.log1p(z * z / (2 * s * s))


class BlockMatching:
    """For every pixel, the ``n`` most similar ``patch`` x ``patch`` patches (squared
    distance) centred within a ``window`` x ``window`` search window, itself
    excluded. Returns flat pixel indices (B, n, H * W) of the matched centres."""

    def __init__(self, matches: int = 4, patch: int = 5, window: int = 11):
        if matches < 1 or window < 3 or window % 2 == 0 or patch % 2 == 0:
            raise ValueError("need matches >= 1 and odd patch and window sizes (window >= 3)")
        if matches >= window * window:
            raise ValueError(f"matches={matches} must be < window^2={window * window}")
        self.matches, self.patch, self.window = matches, patch, window

    @torch.no_grad()
    def __call__(self, guide: Tensor) -> Tensor:
        g = guide.real if guide.is_complex() else guide
        B, H, W = g.shape
        r, q = self.window // 2, self.patch // 2
        gp = pad(g, r + q, "symmetric")
        center = gp[:, r : r + H + 2 * q, r : r + W + 2 * q]
        offsets, dists = [], []
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dy == 0 and dx == 0:
                    continue
                shifted = gp[:, r + dy : r + dy + H + 2 * q, r + dx : r + dx + W + 2 * q]
                d = F.avg_pool2d(((center - shifted) ** 2)[:, None], self.patch, stride=1)[:, 0]
                dists.append(d)
                offsets.append((dy, dx))
        best = torch.stack(dists, 1).topk(self.matches, dim=1, largest=False).indices  # (B, n, H, W)
        off = torch.tensor(offsets, device=g.device)
        dy, dx = off[best, 0], off[best, 1]
        yy = torch.arange(H, device=g.device).view(1, 1, H, 1)
        xx = torch.arange(W, device=g.device).view(1, 1, 1, W)
        ty = (yy + dy).clamp(0, H - 1)
        tx = (xx + dx).clamp(0, W - 1)
        return (ty * W + tx).reshape(B, self.matches, H * W)


class MRFEnergy(nn.Module):
    """The prior and the data weight of one MRF energy (see the module docstring).

    Args:
        num_filters, filter_size, padding: the filter bank (48 filters of 7 x 7,
            symmetric boundary).
        penalty: ``rbf`` or ``student_t``.
        centers: RBF centres (63).
        lam: initial data-term weight.
        matches: ``n`` > 0 for the non-local range variant (0: local cliques).
        range_filters: ``full`` (free range filters), ``collaborative`` (multiples
            of the local filters) or ``averaged`` (a weighted mean of the local
            filter's responses over the group; see the module docstring).
    """

    def __init__(
        self,
        num_filters=48,
        filter_size=7,
        padding="symmetric",
        penalty="rbf",
        centers=63,
        lam=1.0,
        matches=0,
        init_alpha=0.005,
        init_scale=0.1,
        range_filters="full",
    ):
        super().__init__()
        if range_filters not in RANGE_FILTERS:
            raise ValueError(f"unknown range_filters {range_filters!r}; valid choices: {', '.join(RANGE_FILTERS)}")
        if penalty not in PENALTIES:
            raise ValueError(f"unknown penalty {penalty!r}; valid choices: {', '.join(PENALTIES)}")
        self.bank = FilterBank(num_filters, filter_size, padding)
        self.penalty = (
            RBFPenalty(num_filters, centers, init_alpha=init_alpha, init_scale=init_scale)
            if penalty == "rbf"
            else StudentTPenalty(num_filters, init_alpha, init_scale)
        )
        self.lam = nn.Parameter(torch.tensor(float(lam)))
        self.strips = True  # CPU inference (no autograd) of the local model in strips; False: the autograd path
        self.matches = int(matches)
        self.collaborative = range_filters in ("collaborative", "averaged")
        self.averaged = range_filters == "averaged"
        # range filters on the matched patches start at zero: the local model
        if self.matches > 0 and self.collaborative:
            self.range_coef = nn.Parameter(torch.zeros(self.matches, num_filters))
        elif self.matches > 0:
            self.range_weight = nn.Parameter(torch.zeros(self.matches, filter_size * filter_size - 1, num_filters))

    def _range_filters(self) -> Tensor:
        """(n + 1, F, s, s): slice 0 the local filters, then one per matched patch."""
        basis = basis_as(self.bank.size, self.bank.weight.dtype, self.bank.weight.device)
        local = self.bank.filters()[None]
        if self.matches == 0:
            return local
        if self.collaborative:
            own = self._self_weight()[None, :, None, None] * local
            return torch.cat([own, self.range_coef[:, :, None, None] * local], 0)
        return torch.cat([local, torch.einsum("jml,mab->jlab", self.range_weight, basis)], 0)

    def _self_weight(self) -> Tensor:
        """(F,): the weight of the clique's own response (collaborative: 1; averaged:
        1 - sum_j c_ji)."""
        one = torch.ones_like(self.range_coef[0])
        return one - self.range_coef.sum(0) if self.averaged else one

    def K(self, x: Tensor, matches: Tensor | None) -> Tensor:
        """Filter responses (B, F, H, W)."""
        if self.matches == 0:
            return self.bank.K(x)
        if self.collaborative:
            r = self.bank.K(x)
            B, L, H, W = r.shape
            flat = r.reshape(B, L, H * W)
            out = self._self_weight()[None, :, None] * flat if self.averaged else flat
            for j in range(self.matches):
                out = out + self.range_coef[j][None, :, None] * flat.gather(
                    2, matches[:, j : j + 1].expand(B, L, H * W)
                )
            return out.reshape(B, L, H, W)
        k = self._range_filters()
        n1, L, s, _ = k.shape
        B, H, W = x.shape
        r = F.conv2d(pad(x, s // 2, self.bank.padding)[:, None], k.reshape(n1 * L, 1, s, s))
        r = r.reshape(B, n1, L, H * W)
        out = r[:, 0]
        for j in range(1, n1):
            idx = matches[:, j - 1 : j].expand(B, L, H * W)
            out = out + r[:, j].gather(2, idx)
        return out.reshape(B, L, H, W)

    def KT(self, v: Tensor, matches: Tensor | None) -> Tensor:
        """The adjoint of ``K``: (B, F, H, W) -> (B, H, W)."""
        if self.matches == 0:
            return self.bank.KT(v)
        if self.collaborative:
            B, L, H, W = v.shape
            flat = v.reshape(B, L, H * W)
            out = self._self_weight()[None, :, None] * flat if self.averaged else flat
            for j in range(self.matches):
                idx = matches[:, j : j + 1].expand(B, L, H * W)
                out = out.scatter_add(2, idx, self.range_coef[j][None, :, None] * flat)
            return self.bank.KT(out.reshape(B, L, H, W))
        k = self._range_filters()
        n1, L, s, _ = k.shape
        B, _, H, W = v.shape
        flat = v.reshape(B, L, H * W)
        slices = [flat]
        for j in range(1, n1):
            idx = matches[:, j - 1 : j].expand(B, L, H * W)
            slices.append(torch.zeros_like(flat).scatter_add(2, idx, flat))
        stacked = torch.stack(slices, 1).reshape(B, n1 * L, H, W)
        return pad_adjoint(F.conv_transpose2d(stacked, k.reshape(n1 * L, 1, s, s)), s // 2, self.bank.padding)[:, 0]

    def prior_gradient(self, x: Tensor, matches: Tensor | None = None) -> Tensor:
        if (
            self.strips
            and self.matches == 0
            and x.device.type == "cpu"
            and not x.is_complex()
            and not torch.is_grad_enabled()
        ):
            return self._prior_gradient_in_strips(x)
        return self.KT(self.penalty(self.K(x, matches)), matches)

    @torch.no_grad()
    def _prior_gradient_in_strips(self, x: Tensor, strip_pixels: int = 8192) -> Tensor:
        """``K^T phi(K x)`` of the local model for CPU inference, in strips of rows.

        The (F, H, W) responses of a whole image do not fit in the CPU's caches, and
        every element-wise pass over them is a trip to memory. Here each strip of
        about ``strip_pixels`` pixels (plus the filter's halo) goes through im2col,
        ``k @ patches``, phi, ``k^T @ phi`` and col2im while it is in cache, and is
        added into the padded result (the strips' halos overlap; the sum is exact).
        im2col, phi and col2im are C kernels (``unrolled/kernels/gd_mrf.inc``)
        writing into buffers reused from strip to strip (fresh ones would be fresh
        pages from the OS every time); without a compiler, PyTorch operations.
        Same result as the autograd path to rounding (tested).
        """
        bank = self.bank
        k = bank.filters().to(x.dtype)
        L, s, _ = k.shape
        q = s // 2
        w = k.reshape(L, s * s).contiguous()
        wt = w.T.contiguous()
        B, H, W = x.shape
        xp = pad(x, q, bank.padding).contiguous()
        out = xp.new_zeros(B, H + 2 * q, W + 2 * q)
        rows = max(1, strip_pixels // W)
        lib = None if x.is_complex() else native.library_for(_KERNELS, x)
        if lib is None:
            phi = self.penalty.lookup()
            for r0 in range(0, H, rows):
                r1 = min(r0 + rows, H)
                patches = F.unfold(xp[:, None, r0 : r1 + 2 * q], s)  # (B, s^2, rows W)
                cols = torch.empty_like(patches)
                for b in range(B):
                    torch.mm(wt, phi(w @ patches[b]), out=cols[b])
                out[:, None, r0 : r1 + 2 * q] += F.fold(cols, (r1 - r0 + 2 * q, W + 2 * q), s)
            return pad_adjoint(out, q, bank.padding)
        if isinstance(self.penalty, RBFPenalty):
            tabs = [t.to(x.dtype).contiguous() for t in self.penalty.segments()]
            T, extent = tabs[0].shape[1], self.penalty.extent
            phi, ints, floats = "gd_phi_table", (T,), (extent, (T - 1) / (2 * extent))
        else:
            alpha, scale = (t.exp().to(x.dtype).contiguous() for t in (self.penalty.log_alpha, self.penalty.log_scale))
            phi, tabs, ints, floats = "gd_phi_student", [alpha, (scale * scale).contiguous()], (), ()
        patches, responses, cols = (x.new_empty(m * rows * W) for m in (s * s, L, s * s))
        for b in range(B):
            for r0 in range(0, H, rows):
                n = min(rows, H - r0) * W
                p, r, c = (buf[: m * n].view(m, n) for buf, m in ((patches, s * s), (responses, L), (cols, s * s)))
                geometry = (W + 2 * q, s, r0, n // W, W)
                native.call(lib, "gd_im2col", (xp[b], p), geometry)
                torch.mm(w, p, out=r)
                native.call(lib, phi, (r, *tabs), (L, n, *ints), floats)
                torch.mm(wt, r, out=c)
                native.call(lib, "gd_col2im", (c, out[b]), geometry)
        return pad_adjoint(out, q, bank.padding)

    def value(self, x: Tensor, y: Tensor, physics, matches: Tensor | None = None) -> Tensor:
        """E(x) per image (B,)."""
        prior = self.penalty.energy(self.K(x, matches)).flatten(1).sum(1)
        return self.lam * physics.data_fidelity(x, y) + prior


class GDMRFStage(nn.Module):
    """One gradient step ``x - eta (K^T phi(K x) + lambda A^H (A x - y))``. State:
    ``(x, matches)``."""

    def __init__(
        self, energy: MRFEnergy, step: float = 1.0, matcher: BlockMatching | None = None, match_on: str = "input"
    ):
        super().__init__()
        self.energy = energy
        self.step = nn.Parameter(torch.tensor(float(step)))
        self.matcher, self.match_on = matcher, match_on

    def forward(self, state: State, y: Tensor, physics) -> State:
        x, matches = state
        if self.matcher is not None and self.match_on == "estimate":
            matches = self.matcher(x.detach())
        grad = self.energy.prior_gradient(x, matches if self.matcher is not None else None)
        grad = grad + self.energy.lam * physics.data_gradient(x, y)
        return x - self.step * grad, matches


class GDMRF(UnrolledModel):
    """Gradient-descent MRF (see the module docstring).

    Args:
        stages: K gradient steps (5).
        sharing: ``stagewise`` (TNRD, default) or ``shared`` (one energy).
        num_filters, filter_size: 48 filters of 7 x 7 (TNRD).
        penalty: ``rbf`` (63 Gaussian RBFs) or ``student_t``.
        padding: boundary rule of the convolutions (symmetric; circular for k-space data).
        lam, step: initial data weight and step size.
        nonlocal_range: the non-local range variant; ``matches`` similar patches of
            ``filter_size`` found in a ``window`` x ``window`` window, on the
            ``match_on`` image (``input``: the noisy/zero-filled input, once;
            ``estimate``: the current estimate at every step); ``range_filters``:
            ``full`` or ``collaborative`` (see the module docstring).
        real_images: keep x real (MRI of real-valued images; denoising).
        init_alpha, init_scale: the initial penalty derivative, ``phi(z) = alpha z /
            (s^2 + z^2 / 2)`` (RBF: fitted to it); alpha defaults to ``0.5 s^2 / F``.
    """

    def __init__(
        self,
        stages: int = 5,
        sharing: str = "stagewise",
        num_filters: int = 48,
        filter_size: int = 7,
        penalty: str = "rbf",
        centers: int = 63,
        padding: str = "symmetric",
        lam: float = 1.0,
        step: float = 1.0,
        nonlocal_range: bool = False,
        matches: int = 4,
        window: int = 11,
        match_on: str = "input",
        range_filters: str = "full",
        real_images: bool = True,
        init_alpha: float | None = None,
        init_scale: float = 0.1,
    ):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        if sharing not in SHARING:
            raise ValueError(f"unknown sharing {sharing!r}; valid choices: {', '.join(SHARING)}")
        if match_on not in MATCH_ON:
            raise ValueError(f"unknown match_on {match_on!r}; valid choices: {', '.join(MATCH_ON)}")
        self.config = dict(
            stages=stages,
            sharing=sharing,
            num_filters=num_filters,
            filter_size=filter_size,
            penalty=penalty,
            centers=centers,
            padding=padding,
            lam=lam,
            step=step,
            nonlocal_range=nonlocal_range,
            matches=matches,
            window=window,
            match_on=match_on,
            range_filters=range_filters,
            real_images=real_images,
            init_alpha=init_alpha,
            init_scale=init_scale,
        )
        n = matches if nonlocal_range else 0
        if init_alpha is None:  # slope 0.5 / F at 0: with F unit-norm filters K^T K ~ F I, one step halves the noise
            init_alpha = 0.5 * init_scale**2 / num_filters
        self.matcher = BlockMatching(matches, filter_size, window) if nonlocal_range else None

        def energy():
            return MRFEnergy(
                num_filters, filter_size, padding, penalty, centers, lam, n, init_alpha, init_scale, range_filters
            )

        shared = energy() if sharing == "shared" else None
        self.stages = nn.ModuleList(
            GDMRFStage(shared if shared is not None else energy(), step, self.matcher, match_on) for _ in range(stages)
        )
        self.real_images, self.match_on = real_images, match_on

    def init_state(self, y: Tensor, physics) -> State:
        x = physics.zero_filled(y)
        if self.real_images and x.is_complex():
            x = x.real
        if self.matcher is not None:
            matches = self.matcher(x)
        else:  # no matches, but a batch dimension, so that trainers can index the state per image
            matches = torch.zeros(x.shape[0], 0, dtype=torch.long, device=x.device)
        return x, matches

    def output(self, state: State, y: Tensor, physics) -> Tensor:
        return state[0]

    def energy(self, x: Tensor, y: Tensor, physics, stage: int = 0) -> Tensor:
        """The energy of stage ``stage`` at x (shared: the energy), per image."""
        matches = self.matcher(physics.zero_filled(y).real if self.match_on == "input" else x) if self.matcher else None
        return self.stages[stage].energy.value(x, y, physics, matches)


@torch.no_grad()
def widen(model: GDMRF, num_filters: int, filter_size: int) -> GDMRF:
    """A copy of a local RBF ``model`` with ``num_filters`` filters of ``filter_size``
    (both at least the model's) that computes the same output: each old filter,
    zero-padded to the new size, is re-expressed in the new DCT basis (a zero-mean
    filter stays zero-mean), keeps its penalty, and the added filters (the next DCT
    atoms) get a zero penalty (phi = 0), so training starts from ``model``."""
    cfg = dict(model.config)
    if cfg["nonlocal_range"] or cfg["penalty"] != "rbf":
        raise ValueError("widen takes a local GD-MRF with RBF penalties")
    old_n, old_s = cfg["num_filters"], cfg["filter_size"]
    if num_filters < old_n or filter_size < old_s or filter_size % 2 == 0:
        raise ValueError(
            f"widen needs at least {old_n} filters of an odd size >= {old_s}, got {num_filters} of {filter_size}"
        )
    like = next(model.parameters())
    new = GDMRF(**{**cfg, "num_filters": num_filters, "filter_size": filter_size}).to(like)
    for old_stage, new_stage in zip(model.stages, new.stages):
        old_e, new_e = old_stage.energy, new_stage.energy
        new_stage.step.copy_(old_stage.step)
        new_e.lam.copy_(old_e.lam)
        widen_bank(old_e.bank, new_e.bank)
        new_e.penalty.weight.zero_()
        new_e.penalty.weight[:old_n] = old_e.penalty.weight
    return new


def rbf_exact(penalty: RBFPenalty, z: np.ndarray, i: int) -> np.ndarray:
    """The RBF mixture of filter i evaluated exactly (for tests and plots)."""
    w = penalty.weight[i].detach().double().numpy()
    mu = penalty.mu.numpy()
    return (w[None] * np.exp(-((z[:, None] - mu[None]) ** 2) / (2 * penalty.gamma**2))).sum(1)


def plot_filters_and_penalties(model: GDMRF, path, stage: int = 0, title: str = "") -> None:
    """The filters k_i of one stage (as images) and their penalty derivatives phi_i
    (curves), in the manner of the figures of Chen & Pock (TNRD)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    energy = model.stages[stage].energy
    k = energy.bank.filters().detach().cpu().double()
    F_ = k.shape[0]
    cols = 8
    rows = math.ceil(F_ / cols)
    fig = plt.figure(figsize=(2.0 * cols, 2.0 * rows * 2 + 0.6), dpi=100)
    z = torch.linspace(-0.6, 0.6, 401, dtype=torch.float64)
    with torch.no_grad():
        phi = energy.penalty.to(torch.float64)(z.view(1, 1, 1, -1).expand(1, F_, 1, -1))[0, :, 0].cpu()
    energy.penalty.to(next(model.parameters()).dtype)
    for i in range(F_):
        ax = fig.add_subplot(2 * rows, cols, (2 * (i // cols)) * cols + i % cols + 1)
        ax.imshow(k[i], cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"k{i + 1}", fontsize=7)
        ax = fig.add_subplot(2 * rows, cols, (2 * (i // cols) + 1) * cols + i % cols + 1)
        ax.plot(z.numpy(), phi[i].numpy(), lw=1)
        ax.axhline(0, color="gray", lw=0.5)
        ax.set_xticks([-0.5, 0, 0.5])
        ax.tick_params(labelsize=5)
        ax.set_title(f"phi{i + 1}", fontsize=7)
    fig.suptitle(title or f"GD-MRF stage {stage + 1}: filters and penalty derivatives", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
