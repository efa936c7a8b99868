"""Gradient-descent MRF: plain gradient descent without the prior, gradcheck of one
step, the energy decreasing along the steps, penalties, block matching, and the
non-local range operator's adjoint."""

import contextlib

import numpy as np
import pytest
import torch
from conftest import kernels_or_skip

from l2o import native
from unrolled.models.filters import basis_as
from unrolled.models.gd_mrf import _KERNELS, GDMRF, BlockMatching, MRFEnergy, RBFPenalty, StudentTPenalty, rbf_exact
from unrolled.physics.denoising import Denoising
from unrolled.physics.masks import PseudoRadialMask
from unrolled.physics.mri import MRI

D = torch.float64


def model64(**kw):
    default = torch.get_default_dtype()
    torch.set_default_dtype(D)
    try:
        return GDMRF(**kw)
    finally:
        torch.set_default_dtype(default)


def images(n=2, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 0.2 * torch.rand(n, size, size, generator=g, dtype=D)
    x[:, 5:15, 7:19] += 0.6
    return x


@pytest.mark.parametrize("physics_kind", ["denoising", "mri"])
def test_without_prior_it_is_plain_gradient_descent_on_the_data_term(physics_kind):
    x = images()
    if physics_kind == "denoising":
        phys = Denoising(25)
        y = phys.simulate(x, torch.Generator().manual_seed(1))
    else:
        phys = MRI(PseudoRadialMask(0.3)((24, 24)).double(), fft_norm="backward")
        y = phys.A(x.to(torch.complex128))
    eta, lam, K = 0.3, 0.8, 6
    net = model64(stages=K, sharing="shared", num_filters=6, filter_size=3, lam=lam, step=eta)
    with torch.no_grad():
        net.stages[0].energy.bank.weight.zero_()  # k_i = 0: no prior
        out = net(y, phys)
    # the loop written out: x_{k+1} = x_k - eta * lam * A_u^H (A_u x_k - y_u)
    if physics_kind == "denoising":
        ref = y.clone()
        for _ in range(K):
            ref = ref - eta * lam * (ref - y)
    else:
        n = 24 * 24
        mask = torch.fft.ifftshift(PseudoRadialMask(0.3)((24, 24)).double().to(phys.mask), dim=(-2, -1))
        yu = y / n**0.5
        ref = torch.fft.ifft2(mask * yu, norm="ortho").real
        for _ in range(K):
            r = mask * (mask * torch.fft.fft2(ref, norm="ortho") - yu)
            ref = ref - eta * lam * torch.fft.ifft2(r, norm="ortho").real
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("penalty", ["rbf", "student_t"])
def test_gradcheck_one_step(penalty):
    x = images(1, 10)
    phys = Denoising(25)
    y = phys.simulate(x, torch.Generator().manual_seed(2))
    net = model64(stages=1, num_filters=4, filter_size=3, penalty=penalty, centers=15)
    names = [n for n, _ in net.named_parameters()]
    base = dict(net.named_parameters())

    def f(*tensors):
        return torch.func.functional_call(net, {**base, **dict(zip(names, tensors))}, (y, phys))

    inputs = tuple(base[n].detach().clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("nonlocal_range", [False, True])
def test_energy_decreases_along_the_steps(nonlocal_range):
    x = images(2, 24, seed=3)
    phys = Denoising(25)
    y = phys.simulate(x, torch.Generator().manual_seed(4))
    net = model64(
        stages=8,
        sharing="shared",
        num_filters=8,
        filter_size=5,
        step=0.2,
        nonlocal_range=nonlocal_range,
        matches=2,
        window=7,
    )
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a random, non-trivial energy
        e = net.stages[0].energy
        e.bank.weight.add_(0.3 * torch.randn(e.bank.weight.shape, generator=g, dtype=D))
        e.penalty.weight.mul_(1 + 0.5 * torch.rand(e.penalty.weight.shape, generator=g, dtype=D))
        if nonlocal_range:
            e.range_weight.add_(0.2 * torch.randn(e.range_weight.shape, generator=g, dtype=D))
    state = net.init_state(y, phys)
    values = [net.energy(state[0], y, phys)]
    with torch.no_grad():
        for stage in net.stages:
            state = stage(state, y, phys)
            values.append(net.energy(state[0], y, phys))
    v = torch.stack(values)
    assert torch.all(v[1:] < v[:-1]), v


def test_energy_gradient_is_the_step_direction():
    """The prior gradient K^T phi(K x) is the gradient of sum rho(K x) (exact
    adjoints, the penalty's energy integrates phi), non-local variant included."""
    x = images(1, 16, seed=6)
    for matches in (0, 3):
        energy = MRFEnergy(num_filters=5, filter_size=3, centers=21, matches=matches).double()
        with torch.no_grad():
            energy.bank.weight.add_(
                0.2 * torch.randn(energy.bank.weight.shape, generator=torch.Generator().manual_seed(7), dtype=D)
            )
            if matches:
                energy.range_weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(8))
        idx = BlockMatching(matches, 3, 5)(x) if matches else None
        xr = x.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(energy.penalty.energy(energy.K(xr, idx)).sum(), xr)
        torch.testing.assert_close(energy.prior_gradient(x, idx), auto, rtol=1e-7, atol=1e-12)


def check_adjoint_and_prior_gradient(
    energy: MRFEnergy, x: torch.Tensor, idx: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """<K x, v> = <x, K^T v> for a random v (returned), and the prior gradient equals
    autograd's gradient of the prior energy."""
    v = torch.randn(*energy.K(x, idx).shape, generator=g, dtype=D)
    lhs, rhs = (energy.K(x, idx) * v).sum(), (x * energy.KT(v, idx)).sum()
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(energy.penalty.energy(energy.K(xr, idx)).sum(), xr)
    torch.testing.assert_close(energy.prior_gradient(x, idx), auto, rtol=1e-7, atol=1e-12)
    return v


def gradcheck_nonlocal_step(range_filters: str, g: torch.Generator, seed: int) -> None:
    """gradcheck of one non-local step (2 matches) in all its parameters, the range
    coefficients (drawn from ``g``) included."""
    net = model64(
        stages=1,
        num_filters=4,
        filter_size=3,
        centers=15,
        nonlocal_range=True,
        matches=2,
        window=5,
        range_filters=range_filters,
    )
    with torch.no_grad():
        net.stages[0].energy.range_coef.normal_(0, 0.5, generator=g)
    phys = Denoising(25)
    y = phys.simulate(images(1, 10, seed=seed), torch.Generator().manual_seed(seed + 1))
    names = [n for n, _ in net.named_parameters()]
    base = dict(net.named_parameters())

    def f(*tensors):
        return torch.func.functional_call(net, {**base, **dict(zip(names, tensors))}, (y, phys))

    inputs = tuple(base[n].detach().clone().requires_grad_(True) for n in names)
    assert "stages.0.energy.range_coef" in names
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_collaborative_range_filters_are_multiples_of_the_local_ones():
    """range_filters="collaborative": K and K^T equal the full variant's whose range
    filters are set to c_ji k_i; K^T is the adjoint and the prior gradient that of the
    energy; an unknown mode is refused."""
    x = images(2, 16, seed=9)
    g = torch.Generator().manual_seed(10)
    collab = MRFEnergy(num_filters=5, filter_size=3, centers=21, matches=3, range_filters="collaborative").double()
    full = MRFEnergy(num_filters=5, filter_size=3, centers=21, matches=3).double()
    with torch.no_grad():
        collab.bank.weight.add_(0.2 * torch.randn(collab.bank.weight.shape, generator=g, dtype=D))
        collab.range_coef.normal_(0, 0.5, generator=g)
        full.bank.weight.copy_(collab.bank.weight)
        # the full range filters c_ji k_i, in DCT coefficients (the bank's filters are its coefficients on the
        # orthonormal basis, so the same multiples of the coefficients)
        filters = collab.bank.filters()
        basis = basis_as(3, D, "cpu")
        coef = torch.einsum("lab,mab->ml", filters, basis)  # (atoms, F)
        full.range_weight.copy_(collab.range_coef[:, None, :] * coef[None])
    torch.testing.assert_close(full._range_filters(), collab._range_filters(), rtol=1e-10, atol=1e-12)
    idx = BlockMatching(3, 3, 5)(x)
    torch.testing.assert_close(collab.K(x, idx), full.K(x, idx), rtol=1e-10, atol=1e-12)
    v = check_adjoint_and_prior_gradient(collab, x, idx, g)
    torch.testing.assert_close(collab.KT(v, idx), full.KT(v, idx), rtol=1e-10, atol=1e-12)
    # gradcheck of one collaborative non-local step in all its parameters, the range coefficients included
    gradcheck_nonlocal_step("collaborative", g, seed=11)
    valid = "full, collaborative, averaged"
    with pytest.raises(ValueError, match=f"unknown range_filters 'pooled'; valid choices: {valid}"):
        MRFEnergy(matches=2, range_filters="pooled")


def test_averaged_range_filters_are_a_weighted_mean_over_the_group():
    """range_filters="averaged": the response is (1 - sum_j c_ji) times the local
    response plus sum_j c_ji times the matched ones (written out here), so on an
    image whose matched patches equal their clique's (vertical stripes: the best
    matches are vertical shifts) it is the local response for any c; K^T is the
    adjoint and the prior gradient that of the energy; gradcheck of one step in all
    parameters."""
    x = images(2, 16, seed=13)
    g = torch.Generator().manual_seed(14)
    avg = MRFEnergy(num_filters=5, filter_size=3, centers=21, matches=3, range_filters="averaged").double()
    with torch.no_grad():
        avg.bank.weight.add_(0.2 * torch.randn(avg.bank.weight.shape, generator=g, dtype=D))
        avg.range_coef.normal_(0, 0.5, generator=g)
    idx = BlockMatching(3, 3, 5)(x)
    local = avg.bank.K(x).reshape(2, 5, 256)
    c = avg.range_coef.detach()
    expected = (1 - c.sum(0))[None, :, None] * local
    for j in range(3):
        expected = expected + c[j][None, :, None] * local.gather(2, idx[:, j : j + 1].expand(2, 5, 256))
    torch.testing.assert_close(avg.K(x, idx).reshape(2, 5, 256), expected, rtol=1e-10, atol=1e-12)
    stripes = torch.rand(1, 1, 12, generator=g, dtype=D).expand(1, 12, 12).contiguous()
    local = avg.bank.K(stripes)
    assert local.abs().max() > 0.05
    torch.testing.assert_close(avg.K(stripes, BlockMatching(3, 3, 5)(stripes)), local, rtol=1e-10, atol=1e-12)
    check_adjoint_and_prior_gradient(avg, x, idx, g)
    gradcheck_nonlocal_step("averaged", g, seed=15)


@pytest.mark.parametrize("sharing", ["shared", "stagewise"])
def test_widened_model_gives_the_same_output(sharing):
    """widen: more and larger filters, the old ones re-expressed and the new ones
    with a zero penalty, so the output is unchanged; it refuses to shrink."""
    from unrolled.models.gd_mrf import widen

    net = model64(stages=2, sharing=sharing, num_filters=5, filter_size=3, centers=21)
    g = torch.Generator().manual_seed(13)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=D))
    phys = Denoising(25)
    y = phys.simulate(images(2, 20, seed=14), torch.Generator().manual_seed(15))
    wide = widen(net, 12, 5)
    assert wide.config["num_filters"] == 12 and wide.config["filter_size"] == 5
    assert wide.stages[0].energy.bank.weight.shape == (24, 12)
    assert torch.all(wide.stages[0].energy.penalty.weight[5:] == 0)
    assert (wide.stages[0].energy is wide.stages[1].energy) == (sharing == "shared")
    with torch.no_grad():
        torch.testing.assert_close(wide(y, phys), net(y, phys), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="at least 5 filters of an odd size >= 3, got 4 of 5"):
        widen(net, 4, 5)


def test_rbf_basis_follows_the_dtype_exactly():
    """A model built in float32 and cast with ``.double()`` has the float64 table basis
    (re-derived from the float64 master, not float32's rounding cast up), and back in
    float32 the basis rounded once."""
    built64 = model64(stages=1, num_filters=2, filter_size=3, centers=21).stages[0].energy.penalty.basis
    cast = GDMRF(stages=1, num_filters=2, filter_size=3, centers=21)
    assert cast.stages[0].energy.penalty.basis.dtype == torch.float32
    cast = cast.double()
    assert torch.equal(cast.stages[0].energy.penalty.basis, built64)
    assert torch.equal(cast.float().stages[0].energy.penalty.basis, built64.float())


def test_penalties():
    rbf = RBFPenalty(3, centers=63).double()
    z = torch.linspace(-1.3, 1.3, 2001, dtype=D)
    phi = rbf(z.view(1, 1, 1, -1).expand(1, 3, 1, -1))[0, 0, 0].detach().numpy()
    exact = rbf_exact(rbf, z.numpy(), 0)
    assert np.abs(phi - exact).max() < 1e-3 * np.abs(exact).max()  # the table interpolation
    # initialised to the Student-t derivative
    target = 0.005 * z.numpy() / (0.01 + z.numpy() ** 2 / 2)
    inside = np.abs(z.numpy()) < 1.1
    assert np.abs(phi[inside] - target[inside]).max() < 0.05 * np.abs(target).max()
    # the inference lookup: the same interpolation, constant beyond the grid
    wide = torch.linspace(-2.0, 2.0, 4001, dtype=D)
    with torch.no_grad():
        rbf.weight.add_(0.001 * torch.randn(rbf.weight.shape, generator=torch.Generator().manual_seed(0), dtype=D))
        table = rbf(wide.view(1, 1, 1, -1).expand(1, 3, 1, -1))[0, :, 0]
        torch.testing.assert_close(rbf.lookup()(wide.expand(3, -1)), table, rtol=1e-9, atol=1e-12)
        # float32 with 48 filters: the index of every filter stays inside its own table, also at the ends
        rbf32 = RBFPenalty(48)
        rbf32.weight.add_(0.001 * torch.randn(rbf32.weight.shape, generator=torch.Generator().manual_seed(1)))
        e = rbf32.extent
        z32 = torch.cat([torch.linspace(-2, 2, 4001), torch.tensor([-e, e, -e * (1 - 1e-7), e * (1 - 1e-7)])])
        z32 = z32.expand(48, -1).contiguous()
        table32 = rbf32(z32.view(1, 48, 1, -1))[0, :, 0]
        torch.testing.assert_close(rbf32.lookup()(z32), table32, rtol=0, atol=1e-5 * float(table32.abs().max()))
    st = StudentTPenalty(2, init_alpha=0.01, init_scale=0.1).double()
    zz = torch.tensor([[[[0.05, -0.3]], [[1.0, 0.0]]]], dtype=D)
    expected = 0.01 * zz / (0.01 + zz**2 / 2)
    torch.testing.assert_close(st(zz), expected)
    torch.testing.assert_close(st.energy(zz), 0.01 * torch.log1p(zz**2 / 0.02))


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "pytorch"])
@pytest.mark.parametrize("penalty", ["rbf", "student_t"])
@pytest.mark.parametrize("padding", ["symmetric", "circular", "zero"])
def test_inference_in_strips_equals_the_autograd_path(penalty, padding, kernels):
    """Without autograd on CPU the local prior gradient runs in strips of rows (im2col,
    matrix products, phi, col2im: C kernels, or PyTorch operations without a
    compiler); it must equal the whole-image conv2d / grid_sample path that
    training uses, for any padding, batch and a size that leaves a ragged last strip."""
    if kernels:
        kernels_or_skip(_KERNELS)
    energy = MRFEnergy(num_filters=6, filter_size=5, padding=padding, penalty=penalty).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        energy.bank.weight.add_(0.3 * torch.randn(energy.bank.weight.shape, generator=g, dtype=D))
        if penalty == "rbf":
            energy.penalty.weight.add_(0.003 * torch.randn(energy.penalty.weight.shape, generator=g, dtype=D))
    x = 0.6 * torch.rand(2, 23, 37, generator=g, dtype=D) - 0.1  # responses reach both ends of the table
    with torch.enable_grad():
        reference = energy.prior_gradient(x)
    with torch.no_grad(), contextlib.nullcontext() if kernels else native.disabled():
        strips = energy._prior_gradient_in_strips(x, strip_pixels=37 * 4)  # 6 strips, the last of 3 rows
        torch.testing.assert_close(strips, reference, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(energy.prior_gradient(x), reference, rtol=1e-10, atol=1e-12)
        energy.strips = False
        torch.testing.assert_close(energy.prior_gradient(x), reference, rtol=0, atol=0)


def test_block_matching_finds_repeated_patches():
    g = torch.Generator().manual_seed(9)
    img = 0.01 * torch.randn(1, 20, 20, generator=g, dtype=D)
    patch = torch.rand(5, 5, generator=g, dtype=D)
    img[0, 2:7, 2:7] += patch
    img[0, 2:7, 8:13] += patch  # the same patch 6 px to the right
    idx = BlockMatching(matches=2, patch=5, window=15)(img)
    centre = 4 * 20 + 4
    assert (4 * 20 + 10) in idx[0, :, centre].tolist()
    assert idx.shape == (1, 2, 400) and int(idx.min()) >= 0 and int(idx.max()) < 400
    with pytest.raises(ValueError, match="odd patch and window"):
        BlockMatching(2, 4, 7)


def test_model_options_and_errors():
    n_shared = sum(p.numel() for p in GDMRF(stages=4, sharing="shared").parameters())
    n_stage = sum(p.numel() for p in GDMRF(stages=4).parameters())
    assert n_stage > 3 * n_shared
    local = GDMRF(stages=2, num_filters=6, filter_size=5)
    nonlocal_ = GDMRF(stages=2, num_filters=6, filter_size=5, nonlocal_range=True, matches=3, window=7)
    x = images(1, 20).float()
    phys = Denoising(15)
    y = phys.simulate(x, torch.Generator().manual_seed(0))
    nonlocal_.load_state_dict(local.state_dict(), strict=False)
    with torch.no_grad():  # zero range filters: the non-local model starts as the local one
        torch.testing.assert_close(nonlocal_(y, phys), local(y, phys))
    with pytest.raises(ValueError, match="valid choices: shared, stagewise"):
        GDMRF(sharing="tied")
    with pytest.raises(ValueError, match="valid choices: rbf, student_t"):
        GDMRF(penalty="huber")


def test_denoising_through_the_apps(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    small = [
        "model=gd_mrf",
        "model.stages=2",
        "model.num_filters=6",
        "model.filter_size=5",
        "data=images",
        "data.train_crops=8",
        "data.val_crops=2",
        "data.crop_size=32",
        "physics=denoising",
        "physics.sigma=25",
        "progress=false",
    ]

    def run(module, *args):
        proc = subprocess.run(
            [sys.executable, "-m", module, *small, *args], cwd=root, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    run("experiments.train_unrolled", "train.epochs=2", "train.loss=mse", f"hydra.run.dir={tmp_path / 'train'}")
    weights = tmp_path / "train" / "checkpoints" / "model.pt"
    run(
        "experiments.eval_unrolled",
        f"checkpoint={weights}",
        "methods=[noisy,tv,wavelet,init,trained]",
        "tv.tune_images=2",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["sigma"] == 25 and m["test_images"] == 12
    for method in ("noisy", "tv", "wavelet", "init", "trained"):
        assert {"psnr", "ssim", "seconds_per_image"} <= m["results"][method].keys()
    assert m["results"]["tv"]["psnr"] > m["results"]["noisy"]["psnr"] + 5
    assert 19.5 < m["results"]["noisy"]["psnr"] < 21.5  # sigma 25 on [0, 1] images: about 20.2 dB
    assert (tmp_path / "eval" / "filters.png").stat().st_size > 0


def test_bm3d_wrapper_caches(tmp_path, monkeypatch):
    pytest.importorskip("bm3d")
    from unrolled.baselines.denoisers import bm3d_cache_dir, denoise

    monkeypatch.setenv("MDL_CACHE_DIR", str(tmp_path))
    x = images(1, 32, seed=11).float()
    y = Denoising(25).simulate(x, torch.Generator().manual_seed(0))
    computed, cached = [], []
    first = denoise("bm3d", y, 25, 1.0, computed)
    assert len(list(bm3d_cache_dir().glob("*.npy"))) == 1
    again = denoise("bm3d", y, 25, 1.0, cached)
    assert torch.equal(first, again)
    assert len(computed) == 1 and computed[0] > 0
    assert cached == [pytest.approx(computed[0], abs=1e-5)]  # a cached result reports the time it took
    assert ((first - x) ** 2).mean() < ((y - x) ** 2).mean() / 3


def test_longer_shared_unroll_starts_from_a_shorter_one():
    """A 5-step shared energy loaded into an 8-step one whose extra steps have step
    size 0 gives the same output; only the extra step sizes are reported missing
    (the energy they share is loaded through step 0)."""
    from experiments.app import load_start_weights

    short = GDMRF(stages=5, sharing="shared", num_filters=4, filter_size=3, centers=15)
    with torch.no_grad():
        for p in short.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    long = GDMRF(stages=8, sharing="shared", num_filters=4, filter_size=3, centers=15, step=0.0)
    missing, unexpected = load_start_weights(long, short.state_dict(), "short.pt", strict=False)
    assert missing == ["stages.5.step", "stages.6.step", "stages.7.step"] and unexpected == []
    physics = Denoising(25.0)
    y = physics.simulate(
        torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        torch.testing.assert_close(long(y, physics), short(y, physics), rtol=0, atol=0)
