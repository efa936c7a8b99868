"""MRI physics, masks and metrics."""

import contextlib

import numpy as np
import pytest
import torch
from conftest import kernels_or_skip
from skimage.metrics import structural_similarity

from unrolled.metrics import nmse, nrmse, psnr, ssim
from unrolled.physics.masks import (
    EquispacedCartesianMask,
    PseudoRadialMask,
    RandomCartesianMask,
    VariableDensityRandomMask,
    load_admm_net_mask,
    sampling_ratio,
)
from unrolled.physics.mri import MRI

D = torch.float64


def rand_complex(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=g, dtype=D), torch.randn(shape, generator=g, dtype=D))


def random_mask(shape=(32, 40), seed=0):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=D) < 0.3).to(D)


@pytest.mark.parametrize("norm", ["ortho", "backward"])
def test_adjointness(norm):
    phys = MRI(random_mask(), fft_norm=norm)
    x, y = rand_complex((3, 32, 40), 1), rand_complex((3, 32, 40), 2)
    lhs = torch.vdot(phys.A(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), phys.A_adjoint(y).flatten())
    assert abs(lhs - rhs) <= 1e-6 * abs(lhs)


def conjugate_gradient(apply, b, iters=500, tol=1e-14):
    x = torch.zeros_like(b)
    r = b - apply(x)
    p = r.clone()
    rs = torch.vdot(r.flatten(), r.flatten()).real
    for _ in range(iters):
        Ap = apply(p)
        alpha = rs / torch.vdot(p.flatten(), Ap.flatten()).real
        x = x + alpha * p
        r = r - alpha * Ap
        new = torch.vdot(r.flatten(), r.flatten()).real
        if new.sqrt() < tol:
            break
        p = r + new / rs * p
        rs = new
    return x


@pytest.mark.parametrize("norm", ["ortho", "backward"])
def test_closed_form_solve_matches_conjugate_gradient(norm):
    phys = MRI(random_mask(seed=3), fft_norm=norm)
    b = rand_complex((2, 32, 40), 4)
    rho = 0.37
    closed = phys.solve(b, rho)
    cg = conjugate_gradient(lambda v: phys.A_adjoint(phys.A(v)) + rho * v, b)
    assert (closed - cg).abs().max() <= 1e-6 * cg.abs().max()


def test_solve_unitary_is_the_regularised_least_squares_solution():
    """(A_u^H A_u + F^H diag(s) F) x = A_u^H y_u + r, checked by applying the operator."""
    for norm in ("ortho", "backward"):
        phys = MRI(random_mask(seed=5), fft_norm=norm)
        y = phys.A(rand_complex((2, 32, 40), 6))
        r = rand_complex((2, 32, 40), 7)
        s = torch.rand(32, 40, generator=torch.Generator().manual_seed(8), dtype=D) + 0.1
        x = phys.solve_unitary(y, r, s)
        unitary = MRI(random_mask(seed=5), fft_norm="ortho")
        lhs = unitary.A_adjoint(unitary.A(x)) + torch.fft.ifft2(s * torch.fft.fft2(x, norm="ortho"), norm="ortho")
        rhs = unitary.A_adjoint(phys.unitary(y)) + r
        assert (lhs - rhs).abs().max() < 1e-10


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "pytorch"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_solve_unitary_real_is_the_real_part_of_solve_unitary(dtype, kernels):
    """The real-FFT solve (Hermitian part on the half grid; the C kernel without
    autograd, PyTorch with it) for an asymmetric mask, odd and even widths, batched
    and not, a zero denominator (DC unsampled, zero-mean filters), no right-hand side."""
    from l2o import native
    from unrolled.models.filters import DCTFilters
    from unrolled.physics.mri import _KERNELS

    if kernels:
        kernels_or_skip(_KERNELS)

    tol = 1e-12 if dtype == torch.float64 else 1e-5
    g = torch.Generator().manual_seed(10)
    for shape in ((12, 16), (9, 11)):
        mask = random_mask(shape, seed=11).to(dtype)
        mask[0, 0] = 0
        for norm in ("ortho", "backward"):
            phys = MRI(mask, fft_norm=norm, centered=False)
            bank = DCTFilters(8, 3).to(dtype)
            weights = torch.rand(8, generator=g, dtype=D).to(dtype)
            # zero-mean filters: DC exactly 0 on both grids (not rounding noise that an unsampled DC divides by)
            assert bank.spectrum(weights, shape)[0, 0] == 0 and bank.spectrum(weights, shape, onesided=True)[0, 0] == 0
            for batch in ((2,), ()):
                y = phys.A(rand_complex((*batch, *shape), 12).to(torch.promote_types(dtype, torch.complex64)))
                rhs = torch.randn((*batch, *shape), generator=g, dtype=D).to(dtype)
                for r in (rhs, None):
                    with torch.no_grad(), contextlib.nullcontext() if kernels else native.disabled():
                        got = phys.solve_unitary_real(y, r, bank.spectrum(weights, shape, onesided=True))
                    want = phys.solve_unitary(y, r, bank.spectrum(weights, shape)).real
                    assert got.shape == want.shape and got.dtype == dtype
                    assert ((got - want).abs().max() / want.abs().max()).item() < tol, (shape, norm, batch, r is None)


def test_zero_filled_and_simulate():
    x = rand_complex((2, 16, 16), 9)
    for norm in ("ortho", "backward"):
        phys = MRI(torch.ones(16, 16, dtype=D), fft_norm=norm)
        torch.testing.assert_close(phys.zero_filled(phys.A(x)), x)
    noisy = MRI(random_mask((16, 16)), noise_std=0.1)
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        noisy.simulate(x)
    a = noisy.simulate(x, torch.Generator().manual_seed(0))
    b = noisy.simulate(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, noisy.A(x))
    assert torch.all(a[:, noisy.mask == 0] == 0)  # noise only where sampled


def test_shape_mismatch_names_both_shapes():
    phys = MRI(torch.ones(32, 32))
    with pytest.raises(ValueError, match=r"image of shape \(30, 32\) does not match the mask's shape \(32, 32\)"):
        phys.A(torch.zeros(1, 30, 32))
    # every entry point that takes k-space data or images checks them, the reconstructions too
    from unrolled.baselines.tv import tv_reconstruction
    from unrolled.models.admm_net import ADMMNet

    y = torch.zeros(1, 30, 32, dtype=torch.complex64)
    x, s = torch.zeros(1, 30, 32), torch.ones(32, 32)
    calls = {
        "A_adjoint": lambda: phys.A_adjoint(y),
        "zero_filled": lambda: phys.zero_filled(y),
        "solve_unitary": lambda: phys.solve_unitary(y, None, s),
        "solve_unitary_real": lambda: phys.solve_unitary_real(y, None, s[:, :17]),
        "data_fidelity": lambda: phys.data_fidelity(x, y),
        "data_gradient": lambda: phys.data_gradient(x, y),
        "tv_reconstruction": lambda: tv_reconstruction(y, phys, 1e-3, iterations=2),
        "ADMMNet": lambda: ADMMNet(stages=2)(y, phys),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"of shape \(30, 32\) does not match the mask's shape \(32, 32\)"):
            with torch.no_grad():
                call()
            pytest.fail(name)
    with pytest.raises(ValueError, match=r"right-hand side of shape \(30, 32\)"):
        phys.solve_unitary_real(torch.zeros(1, 32, 32, dtype=torch.complex64), x, s[:, :17])
    with pytest.raises(ValueError, match="mask must be 2-D"):
        MRI(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="valid choices: ortho, backward"):
        MRI(torch.ones(4, 4), fft_norm="forward")


def test_masks_report_their_ratio_and_are_seeded():
    shape = (128, 128)
    pr = PseudoRadialMask(0.2)(shape)
    assert 0.2 <= sampling_ratio(pr) < 0.215
    yy, xx = torch.meshgrid(torch.arange(128) - 64, torch.arange(128) - 64, indexing="ij")
    r = (yy**2 + xx**2).sqrt()
    assert pr[64, 64] == 1 and pr[r < 6].mean() > 0.9 > 0.3 > pr[r > 50].mean()  # radial: dense centre
    g = torch.Generator
    for rule in (RandomCartesianMask(0.25, 0.08), EquispacedCartesianMask(0.25, 0.08), VariableDensityRandomMask(0.25)):
        a, b = rule(shape, g().manual_seed(1)), rule(shape, g().manual_seed(1))
        assert torch.equal(a, b)
        ratios = [sampling_ratio(rule(shape, g().manual_seed(s))) for s in range(20)]
        assert abs(np.mean(ratios) - 0.25) < 0.03, (type(rule).__name__, np.mean(ratios))
        with pytest.raises(ValueError, match="pass a torch.Generator"):
            rule(shape)
    cart = RandomCartesianMask(0.25, 0.08)(shape, g().manual_seed(0))
    assert torch.all(cart[:, 59:69] == 1)  # the fully sampled centre: round(128 * 0.08) = 10 columns
    assert torch.all(cart == cart[0:1])  # whole phase-encoding lines
    vd = VariableDensityRandomMask(0.25).probability(shape)
    assert vd[64, 64] == 1 and vd[64, 64] >= vd[64, 100] >= vd[64, 127]
    with pytest.raises(ValueError, match=r"sampling ratio must be in \(0, 1\]"):
        PseudoRadialMask(0.0)


def test_authors_masks(admm_net_root):
    expected = {0.1: 0.102, 0.2: 0.202, 0.3: 0.302, 0.4: 0.401, 0.5: 0.500}
    for r, measured in expected.items():
        m = load_admm_net_mask(admm_net_root, r)
        assert m.shape == (256, 256) and abs(sampling_ratio(m) - measured) < 0.0015
        assert m[128, 128] == 1  # centred
    with pytest.raises(FileNotFoundError, match="expected mask_25.mat among"):
        load_admm_net_mask(admm_net_root, 0.25)


def test_metrics_definitions_and_ssim_against_skimage():
    rng = np.random.default_rng(0)
    x = rng.random((3, 48, 56))
    xh = np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1)
    tx, th = torch.from_numpy(x), torch.from_numpy(xh)
    for i in range(3):
        for peak, rng_ in (("one", 1.0), ("max", x[i].max())):
            ref = structural_similarity(
                xh[i], x[i], data_range=rng_, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
            assert ssim(th[i], tx[i], peak=peak).item() == pytest.approx(ref, abs=1e-6)
            mse = np.mean((xh[i] - x[i]) ** 2)
            assert psnr(th[i], tx[i], peak).item() == pytest.approx(10 * np.log10(rng_**2 / mse), rel=1e-10)
        e = np.linalg.norm(xh[i] - x[i]) / np.linalg.norm(x[i])
        assert nrmse(th[i], tx[i]).item() == pytest.approx(e, rel=1e-10)
        assert nmse(th[i], tx[i]).item() == pytest.approx(e**2, rel=1e-10)
    assert psnr(th, tx).shape == (3,)
    with pytest.raises(ValueError, match="valid choices: one, max"):
        psnr(th, tx, "peak")
