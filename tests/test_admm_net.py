"""Deep ADMM-Net: the DCT filter basis, the untrained network as plain ADMM, parity
with the authors' trained networks, gradients."""

import contextlib

import numpy as np
import pytest
import torch
from conftest import kernels_or_skip

import unrolled.models.admm_net as admm_net_module
from l2o import native
from unrolled.data.admm_net_data import load_brain, read_admm_net_layers
from unrolled.metrics import nrmse, psnr
from unrolled.models.admm_net import _KERNELS, ADMMNet, PiecewiseLinear, dct_basis, load_authors_network
from unrolled.physics.masks import PseudoRadialMask, load_admm_net_mask
from unrolled.physics.mri import MRI

D = torch.float64


def test_dct_basis_is_orthonormal_without_dc():
    B = dct_basis(3).reshape(8, 9).numpy()
    np.testing.assert_allclose(B @ B.T, np.eye(8), atol=1e-12)
    np.testing.assert_allclose(B.sum(1), 0, atol=1e-12)  # every atom has zero mean (no DC)
    # MATLAB's dctmtx(3) row 1 is cos(pi (2j+1) / 6) * sqrt(2/3); atom 1 = kron row 2, column-major
    d1 = np.sqrt(2 / 3) * np.cos(np.pi * (2 * np.arange(3) + 1) / 6)
    d0 = np.full(3, np.sqrt(1 / 3))
    # kron(D, D) row 1 has entries D[0, j] D[1, l] at column-major position (l, j)
    np.testing.assert_allclose(dct_basis(3)[0].numpy(), np.outer(d1, d0), atol=1e-12)


def plf_reference(x, q, low=-1.0, high=1.0):
    """Piecewise-linear with slope-1 extrapolation, written with np.interp."""
    p = np.linspace(low, high, len(q))
    y = np.interp(x, p, q)
    y = np.where(x < low, x - low + q[0], y)
    return np.where(x > high, x - high + q[-1], y)


def plain_admm(x_true_k, mask_fft, atoms, rho, eta, shrink, iters):
    """ADMM for 1/2 ||M F x - y||^2 + sum_l ||d_l * x||_1 (unitary F), real x,
    circular convolutions by FFT: written independently of the model."""
    H, W = mask_fft.shape
    y = mask_fft * x_true_k
    otfs = []
    for d in atoms:
        psf = np.zeros((H, W))
        psf[:3, :3] = d
        otfs.append(np.fft.fft2(np.roll(psf, (-1, -1), (0, 1))))
    denom = mask_fft + sum(rho * np.abs(o) ** 2 for o in otfs)
    denom[denom == 0] = 1e-6
    z = [np.zeros((H, W)) for _ in atoms]
    b = [np.zeros((H, W)) for _ in atoms]

    def x_step():
        rhs = sum(rho * np.fft.ifft2(np.fft.fft2(zl - bl) * np.conj(o)).real for zl, bl, o in zip(z, b, otfs))
        return np.fft.ifft2((y + np.fft.fft2(rhs, norm="ortho")) / denom, norm="ortho").real

    for _ in range(iters):
        x = x_step()
        for l, o in enumerate(otfs):
            c = np.fft.ifft2(np.fft.fft2(x) * o).real
            z_new = shrink(c + b[l])
            b[l] = b[l] + eta * (c - z_new)
            z[l] = z_new
    return x_step()


@pytest.mark.parametrize("threshold", [0.05, 0.04])
def test_init_net_is_plain_admm(threshold):
    """Untrained ADMM-Net = ADMM with rho = 0.2, eta = 1.6 and the soft threshold
    (interpolated on the 101-point grid; exactly soft thresholding when the threshold
    is a grid point, as 0.04 is)."""
    g = torch.Generator().manual_seed(0)
    H = W = 32
    x = torch.rand(2, H, W, generator=g, dtype=D)
    mask = PseudoRadialMask(0.3)((H, W)).double()
    phys = MRI(mask, fft_norm="ortho")
    y = phys.A(x.to(torch.complex128))
    stages = 6
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # initial values exactly 0.2, 1.6 and the soft threshold
    try:
        net = ADMMNet(stages=stages, threshold=threshold)
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        out = net(y, phys).numpy()
    atoms = dct_basis(3).numpy()
    grid = np.linspace(-1, 1, 101)
    soft_on_grid = np.sign(grid) * np.maximum(np.abs(grid) - threshold, 0)

    def interp_shrink(v):
        return plf_reference(v, soft_on_grid)

    def exact_shrink(v):
        return np.sign(v) * np.maximum(np.abs(v) - threshold, 0)

    for i in range(2):
        xk = np.fft.fft2(x[i].numpy(), norm="ortho")
        ref = plain_admm(xk, phys.mask.numpy(), atoms, 0.2, 1.6, interp_shrink, stages)
        np.testing.assert_allclose(out[i], ref, rtol=0, atol=1e-10)
        if threshold == 0.04:
            exact = plain_admm(xk, phys.mask.numpy(), atoms, 0.2, 1.6, exact_shrink, stages)
            np.testing.assert_allclose(out[i], exact, rtol=0, atol=1e-10)


def test_piecewise_linear_matches_interpolation_and_extrapolates_with_slope_one():
    plf = PiecewiseLinear(3).double()
    with torch.no_grad():
        plf.values.copy_(torch.randn(3, 101, generator=torch.Generator().manual_seed(1), dtype=D))
    x = torch.linspace(-2.5, 2.5, 1001, dtype=D).repeat(1, 3, 1, 1)
    out = plf(x)
    for c in range(3):
        ref = plf_reference(x[0, c, 0].numpy(), plf.values[c].detach().numpy())
        np.testing.assert_allclose(out[0, c, 0].detach().numpy(), ref, atol=1e-12)


def test_gradcheck_one_stage():
    g = torch.Generator().manual_seed(2)
    net = ADMMNet(stages=1).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g, dtype=D))
    phys = MRI(PseudoRadialMask(0.4)((8, 8)).double(), fft_norm="ortho")
    y = phys.A(torch.rand(1, 8, 8, generator=g, dtype=D).to(torch.complex128))
    names = [
        "stages.0.reconstruction.rho",
        "stages.0.multiplier.eta",
        "stages.0.convolution.filters.weight",
        "stages.0.nonlinear.plf.values",
    ]
    base = dict(net.named_parameters())

    def f(*tensors):
        return torch.func.functional_call(net, {**base, **dict(zip(names, tensors))}, (y, phys))

    inputs = tuple(base[n].detach().clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


def test_shared_weights_and_bad_arguments():
    shared, separate = ADMMNet(stages=5, shared_weights=True), ADMMNet(stages=5)
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    per_stage = sum(p.numel() for p in separate.stages[0].parameters())
    assert n_separate - n_shared == 4 * per_stage
    with pytest.raises(ValueError, match="stages must be >= 1"):
        ADMMNet(stages=0)


@pytest.mark.parametrize("shared", [False, True])
def test_widened_network_gives_the_same_reconstruction(shared):
    """widen: more and larger filters (the old ones zero-padded, the new channels at
    rho = 0) reconstruct exactly what the network did, with the kernels and with the
    layers, and the new channels get a gradient; it refuses to shrink."""
    from unrolled.models.admm_net import widen

    g = torch.Generator().manual_seed(21)
    net = ADMMNet(stages=3, num_filters=4, shared_weights=shared).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g, dtype=D))
    phys = MRI(PseudoRadialMask(0.3)((24, 20)).double(), fft_norm="ortho")
    x = torch.rand(2, 24, 20, generator=g, dtype=D)
    y = phys.A(x.to(torch.complex128))
    wide = widen(net, 7, 5)
    assert wide.config["num_filters"] == 7 and wide.config["filter_size"] == 5
    assert wide.stages[0].convolution.filters.weight.shape == (24, 7)
    assert torch.all(wide.final.rho[4:] == 0) and torch.all(wide.stages[2].reconstruction.rho[4:] == 0)
    assert (wide.stages[0] is wide.stages[2]) == shared
    with torch.no_grad():
        ref = net(y, phys)
        torch.testing.assert_close(wide(y, phys), ref, rtol=1e-10, atol=1e-12)
        with native.disabled():
            torch.testing.assert_close(wide(y, phys), ref, rtol=1e-10, atol=1e-12)
    ((wide(y, phys) - x) ** 2).sum().backward()
    assert wide.final.rho.grad[4:].abs().min() > 0
    with pytest.raises(ValueError, match="at least 4 filters of size 3 \\+ 2k, got 3 of 5"):
        widen(net, 3, 5)
    with pytest.raises(ValueError, match="got 4 of 4"):
        widen(net, 4, 4)


AUTHORS = {  # the authors' README: NRMSE ("re_LOss") and PSNR for the two brain images
    7: ((0.0578, 35.60), (0.0957, 30.40)),
    14: ((0.0562, 35.83), (0.0929, 30.65)),
    15: ((0.0561, 35.85), (0.0927, 30.67)),
}


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "pytorch"])
@pytest.mark.parametrize("stage", [7, 14, 15])
def test_parity_with_the_authors_trained_networks(admm_net_root, stage, kernels):
    x = load_brain(admm_net_root)
    phys = MRI(load_admm_net_mask(admm_net_root, 0.2).double(), fft_norm="backward")
    y = phys.A(x.to(torch.complex128))
    net = load_authors_network(admm_net_root / "net" / "network_20" / f"net-stage{stage}.mat")
    with torch.no_grad(), contextlib.nullcontext() if kernels else native.disabled():
        out = net(y, phys)
    for i, (e, p) in enumerate(AUTHORS[stage]):
        assert abs(psnr(out[i], x[i]).item() - p) <= 0.05, (stage, i, psnr(out[i], x[i]).item())
        assert abs(nrmse(out[i], x[i]).item() - e) <= 0.00051, (stage, i, nrmse(out[i], x[i]).item())


def test_authors_file_errors(admm_net_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_admm_net_layers(tmp_path / "net.mat")
    with pytest.raises(ValueError, match="not a Deep ADMM-Net network file"):
        load_authors_network(admm_net_root / "mask" / "mask_20.mat")


def _perturbed_net(dtype, scale=0.01, stages=15, seed=0, **config):
    """An ADMM-Net off its initial values by ``scale`` (larger perturbations make the
    untrained 15-stage network chaotic: float32 and float64 then differ by 20%)."""
    g = torch.Generator().manual_seed(seed)
    net = ADMMNet(stages=stages, **config).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=D))
    return net.to(dtype)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-4)])
def test_cpu_kernels_equal_the_pytorch_layers(dtype, tol):
    """Inference on the CPU runs the fused stage kernels (unrolled/kernels/admm_net.inc); they
    compute what the layers compute, for a non-square batch, end to end (through
    the alternating buffers of ``forward``) and stage by stage (``run``)."""
    kernels_or_skip(_KERNELS)
    g = torch.Generator().manual_seed(3)
    phys = MRI(PseudoRadialMask(0.25)((40, 28)).to(dtype), fft_norm="backward")
    y = phys.A(torch.rand(3, 40, 28, generator=g, dtype=D).to(dtype))
    net = _perturbed_net(dtype)
    with torch.no_grad():
        fast, state = net(y, phys), net.run(y, phys, num_stages=4)
        with native.disabled():
            slow, slow_state = net(y, phys), net.run(y, phys, num_stages=4)
    assert fast.dtype == dtype
    scale = slow.abs().max()
    assert ((fast - slow).abs().max() / scale).item() < tol
    for a, b in zip(state, slow_state):
        assert ((a - b).abs().max() / b.abs().max()).item() < tol
    # a batch larger than KERNEL_CHUNK_BYTES allows goes in chunks (here of 2 and 1 images): the same bits
    sizes, one_chunk = [], ADMMNet._forward_in_kernels
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(admm_net_module, "KERNEL_CHUNK_BYTES", 2 * net.num_filters * 40 * 28 * y.real.element_size())
        mp.setattr(
            ADMMNet, "_forward_in_kernels", lambda self, lib, y, *a: sizes.append(len(y)) or one_chunk(self, lib, y, *a)
        )
        assert torch.equal(net(y, phys), fast)
    assert sizes == [2, 1]
    # the last X layer after run (``output``) takes the kernel adjoint too
    with torch.no_grad():
        out_fast = net.output(state, y, phys)
        with native.disabled():
            out_slow = net.output(slow_state, y, phys)
    assert ((out_fast - out_slow).abs().max() / out_slow.abs().max()).item() < tol
    # with autograd on, the layers run (and the gradient flows)
    out = net(y, phys)
    assert out.requires_grad and ((out.detach() - slow).abs().max() / scale).item() < tol


@pytest.mark.parametrize("filters, size", [(6, 5), (4, 7), (3, 9)])
@pytest.mark.parametrize("shared", [False, True])
def test_cpu_kernels_equal_the_pytorch_layers_for_other_filter_sizes(filters, size, shared):
    """The kernels' loops differ by filter size (all taps in one pass for 3 and 5, a
    row of taps per pass, one tap per pass); each, and the stage constants computed
    for all stages at once (shared weights too), against the layers in float64, on
    an image whose height is odd and smaller than some thread's row range."""
    kernels_or_skip(_KERNELS)
    g = torch.Generator().manual_seed(4)
    phys = MRI(PseudoRadialMask(0.3)((19, 24)).to(D), fft_norm="ortho")
    y = phys.A(torch.rand(2, 19, 24, generator=g, dtype=D))
    net = _perturbed_net(D, stages=4, num_filters=filters, filter_size=size, shared_weights=shared)
    with torch.no_grad():
        fast = net(y, phys)
        with native.disabled():
            slow = net(y, phys)
    assert ((fast - slow).abs().max() / slow.abs().max()).item() < 1e-12


def _roll_correlate(u, t):
    """sum_{a,b} t[a, b] u[i + a - p, j + b - p], circular (the kernels' correlation)."""
    size = t.shape[-1]
    p = size // 2
    return sum(t[a, b] * torch.roll(u, (p - a, p - b), (-2, -1)) for a in range(size) for b in range(size))


def _check_kernels_against_roll(B, L, H, W, size, seed, threads=None, dtype=D):
    """Both stage kernels on random inputs (Z as the identity: intercept 0 and slope 1
    on every piece, so z = c + beta and beta' = beta - eta beta) against
    ``_roll_correlate``, to 1e-12 in float64 (1e-4 in float32, for sums of about 1e2
    terms of order 1); with ``threads`` OpenMP threads if given."""
    atol = 1e-12 if dtype == torch.float64 else 1e-4
    g = torch.Generator().manual_seed(seed)
    z, beta = (torch.randn(B, L, H, W, generator=g, dtype=dtype) for _ in range(2))
    taps = torch.randn(L, size, size, generator=g, dtype=dtype)
    x = torch.randn(B, H, W, generator=g, dtype=dtype)
    lib = native.load_library(_KERNELS)
    rhs, z_out, beta_out = torch.empty(B, H, W, dtype=dtype), torch.empty_like(beta), torch.empty_like(beta)
    n = 8
    zero, one = torch.zeros(L, n, dtype=dtype), torch.ones(L, n, dtype=dtype)
    eta = torch.rand(L, generator=g, dtype=dtype)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        native.call(lib, "admm_adjoint", (z, beta, taps, rhs), (B, L, H, W, size))
        native.call(
            lib, "admm_tail", (x, taps, beta, zero, one, eta, z_out, beta_out), (B, L, H, W, size, n), (1.0, 0.0)
        )
    finally:
        torch.set_num_threads(before)
    want = sum(_roll_correlate((z - beta)[:, l], taps[l]) for l in range(L))
    assert torch.allclose(rhs, want, rtol=0, atol=atol)
    c = torch.stack([_roll_correlate(x, taps[l]) for l in range(L)], 1)
    assert torch.allclose(z_out, c + beta, rtol=0, atol=atol)
    assert torch.allclose(beta_out, beta - eta.view(1, L, 1, 1) * beta, rtol=0, atol=atol)


def test_cpu_kernel_buffers_are_reused_between_calls_without_carrying_state():
    """``forward`` on the kernels keeps its (z, beta) buffers for the next call
    (``_state_buffers``): the same memory is used again, a call's output does not alias
    it, and what an earlier call (here: NaN) left there does not reach the next result,
    for 3 stages and for none (the last X layer on the zero state)."""
    kernels_or_skip(_KERNELS)
    g = torch.Generator().manual_seed(4)
    phys = MRI(PseudoRadialMask(0.25)((40, 28)), fft_norm="backward")
    y1, y2 = (phys.A(torch.rand(2, 40, 28, generator=g)) for _ in range(2))
    net = _perturbed_net(torch.float32, stages=3)
    with torch.no_grad():
        with native.disabled():
            want = {k: net(y1, phys, num_stages=k) for k in (3, 0)}
        out = net(y1, phys)
        kept = out.clone()
        ptrs = [t.data_ptr() for t in admm_net_module._workspace.buffers]
        net(y2, phys)
        assert [t.data_ptr() for t in admm_net_module._workspace.buffers] == ptrs
        assert torch.equal(out, kept)
        for k in (3, 0):
            for t in admm_net_module._workspace.buffers:
                t.fill_(float("nan"))
            got = net(y1, phys, num_stages=k)
            assert ((got - want[k]).abs().max() / want[k].abs().max()).item() < 2e-4, k
        assert torch.equal(net(y1, phys), kept)  # after the NaN too: bit for bit the first call
        # buffers made under inference mode are written by a later call under no_grad
        admm_net_module.release_kernel_buffers()
        assert not hasattr(admm_net_module._workspace, "buffers")
        with torch.inference_mode():
            net(y1, phys)
    with torch.no_grad():
        assert torch.equal(net(y1, phys), kept)


@pytest.mark.parametrize("threads", [1, 3, 4])
@pytest.mark.parametrize("size", [3, 5])
def test_cpu_kernels_tiles_of_rows(size, threads):
    """The kernels go over each image in tiles of up to 32 rows (fewer when a thread would
    get none: 4 threads on one 45-row image take tiles of 8); tiles that end inside the
    image and wrap around its top and bottom, against ``torch.roll`` correlations."""
    kernels_or_skip(_KERNELS)
    _check_kernels_against_roll(B=1, L=3, H=45, W=20, size=size, seed=6, threads=threads)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [5, 7])
def test_cpu_kernels_two_rows_at_a_time(size, dtype, threads):
    """For 5x5 and 7x7 filters the adjoint makes two output rows at once, over blocks of
    4 vectors of 32 bytes (32 floats, 16 doubles) and a remainder one value at a time:
    45 columns give one or two blocks and a remainder of 13; 45 rows of one image give
    tiles of odd length (32 + 13; 3 threads: 16 + 16 + 13), whose last row goes alone.
    Against ``torch.roll`` correlations, and bit for bit against itself on the image
    shifted by a row and by a column: the shift moves every output row between the
    pair and the single-row path and every column between the blocks and the remainder,
    which therefore add the same terms in the same order."""
    kernels_or_skip(_KERNELS)
    _check_kernels_against_roll(B=1, L=3, H=45, W=45, size=size, seed=7, threads=threads, dtype=dtype)
    g = torch.Generator().manual_seed(8)
    z, beta = (torch.randn(1, 3, 45, 45, generator=g, dtype=dtype) for _ in range(2))
    taps = torch.randn(3, size, size, generator=g, dtype=dtype)
    lib = native.load_library(_KERNELS)

    def adjoint(z, beta):
        rhs = torch.empty(1, 45, 45, dtype=dtype)
        native.call(lib, "admm_adjoint", (z.contiguous(), beta.contiguous(), taps, rhs), (1, 3, 45, 45, size))
        return rhs

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = adjoint(z, beta)
        for axis in (-2, -1):  # rows, columns
            assert torch.equal(adjoint(z.roll(1, axis), beta.roll(1, axis)), out.roll(1, axis)), axis
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("size", [3, 5, 7])
def test_cpu_kernels_wrap_rows_narrower_than_the_filter(size):
    """Circular padding of a row narrower than half the filter (5 and 7) wraps it more than
    once; both kernels against correlations written with ``torch.roll`` (the layers'
    circular ``F.pad`` refuses such images)."""
    kernels_or_skip(_KERNELS)
    p = size // 2
    _check_kernels_against_roll(B=2, L=3, H=5, W=max(1, p - 1), size=size, seed=5)  # narrower than p where it can be


def test_cpu_kernels_pass_nan_through_without_crashing():
    phys = MRI(PseudoRadialMask(0.3)((16, 16)), fft_norm="ortho")
    y = phys.A(torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0)))
    y[0, 0, 0] = float("nan")
    with torch.no_grad():
        out = ADMMNet(stages=3)(y, phys)
    assert out.isnan().any()


def test_shipped_chest_networks_against_tv(admm_net_root):
    """The shipped 20% networks on chest im-81..100 with the authors' mask_20, beside
    TV at the lambda ``eval_unrolled`` tunes on the training images (1e-3): the paper's
    8 3x3 filters 35.43 dB, the 16 5x5 variant 35.82 dB, TV 33.69 dB (README)."""
    from unrolled.baselines.tv import tv_reconstruction
    from unrolled.data.admm_net_data import load_chest
    from unrolled.models import WEIGHTS_DIR, load_model

    x = load_chest(admm_net_root, "test").float()
    phys = MRI(load_admm_net_mask(admm_net_root, 0.2).float(), fft_norm="ortho")
    y = phys.A(x)
    with torch.no_grad():
        tv = psnr(tv_reconstruction(y, phys, 1e-3, iterations=100), x).mean().item()
        nets = {name: load_model(WEIGHTS_DIR / f"admm_net_chest_{name}.pt")[0].eval() for name in ("r20", "r20_16x5")}
        got = {name: psnr(net(y, phys), x).mean().item() for name, net in nets.items()}
    assert nets["r20_16x5"].config["num_filters"] == 16 and nets["r20_16x5"].config["filter_size"] == 5
    assert abs(tv - 33.69) < 0.02
    assert abs(got["r20"] - 35.43) < 0.02
    assert abs(got["r20_16x5"] - 35.82) < 0.02 and got["r20_16x5"] - tv >= 2.0
