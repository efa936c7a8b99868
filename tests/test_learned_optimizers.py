"""Learned optimizers against their papers' equations written out here in float64,
HyperAdam reduced to Adam, the torch.optim adapter, and weight files."""

import math

import pytest
import torch
import torch.nn.functional as F

from l2o.learned import (
    DMOptimizer,
    HyperAdam,
    LearnedOptimizerAdapter,
    RNNprop,
    load_learned,
    make_learned,
    save_learned,
)
from l2o.learned.dm import preprocess_gradient
from l2o.learned.hyperadam import AdamCell, StateCell, WeightCell
from l2o.optimizers import apply_updates

D = torch.float64


def lstm_ref(x, h, c, cell, forget_bias):
    """An LSTM step written out: gates (i, f, g, o) = W_ih x + W_hh h + b."""
    z = x @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias
    H = h.shape[-1]
    i, f, g, o = z[..., :H], z[..., H : 2 * H], z[..., 2 * H : 3 * H], z[..., 3 * H :]
    c = torch.sigmoid(f + forget_bias) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def random_grads(B=2, N=37, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, generator=g, dtype=D)
    grad = scale * torch.randn(B, N, generator=g, dtype=D)
    return x, grad


def test_dm_preprocessing_is_appendix_a():
    p = 10.0
    g = torch.tensor([0.0, 1e-9, -3e-5, 4.5e-5, -4.6e-5, 0.3, -7.0, 1e3], dtype=D)
    out = preprocess_gradient(g, "paper", p)
    for k, gk in enumerate(g.tolist()):
        if abs(gk) >= math.exp(-p):
            expected = (math.log(abs(gk)) / p, math.copysign(1.0, gk))
        else:
            expected = (-1.0, math.exp(p) * gk)
        assert out[k].tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    dm = preprocess_gradient(g, "deepmind", 5.0)
    eps = torch.finfo(torch.float32).eps
    for k, gk in enumerate(g.tolist()):
        expected = (max(math.log(abs(gk) + eps) / 5.0, -1.0), max(-1.0, min(1.0, gk * math.exp(5.0))))
        assert dm[k].tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_dm_step_matches_equations():
    opt = DMOptimizer(seed=3).double()
    x, g = random_grads()
    slots = opt.init_flat(x)
    # nonzero recurrent state, to exercise the recurrent weights
    slots = {
        k: torch.randn(v.shape, dtype=D, generator=torch.Generator().manual_seed(i))
        for i, (k, v) in enumerate(slots.items())
    }
    step, new = opt.step_flat(g, slots, 0, x)
    inp = preprocess_gradient(g, "paper", 10.0)
    for i, cell in enumerate(opt.lstm):
        h, c = lstm_ref(inp, slots[f"h{i}"], slots[f"c{i}"], cell, 1.0)
        torch.testing.assert_close(new[f"h{i}"], h, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(new[f"c{i}"], c, rtol=1e-12, atol=1e-12)
        inp = h
    expected = 0.1 * (inp @ opt.out.weight.T + opt.out.bias).squeeze(-1)
    torch.testing.assert_close(step, expected, rtol=1e-12, atol=1e-12)


def test_rnnprop_matches_equations():
    opt = RNNprop(seed=4).double()
    x, g0 = random_grads(seed=1)
    slots = opt.init_flat(x)
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    hs = [torch.zeros(*x.shape, 20, dtype=D) for _ in range(2)]
    cs = [torch.zeros(*x.shape, 20, dtype=D) for _ in range(2)]
    for t in range(1, 4):
        g = g0 * t - 0.5
        step, slots = opt.step_flat(g, slots, t - 1, x)
        m = 0.95 * m + 0.05 * g
        v = 0.95 * v + 0.05 * g * g
        s = torch.sqrt(v / (1 - 0.95**t)) + 1e-8
        z = F.elu(torch.stack([g / s, m / (1 - 0.95**t) / s], -1) @ opt.inp.weight.T + opt.inp.bias)
        for i, cell in enumerate(opt.lstm):
            hs[i], cs[i] = lstm_ref(z, hs[i], cs[i], cell, 1.0)
            z = hs[i]
        expected = -0.1 * torch.tanh(z @ opt.out.weight.T + opt.out.bias).squeeze(-1)
        torch.testing.assert_close(step, expected, rtol=1e-10, atol=1e-12)


def colnorm(x):
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + 1e-16)


def test_hyperadam_cells_match_algorithm_2():
    J = 6
    opt = HyperAdam(units=J, seed=5).double()
    x, g = random_grads(B=2, N=29, seed=2)
    gen = torch.Generator().manual_seed(9)
    s_prev, c_prev = torch.randn(2, 29, J, dtype=D, generator=gen), torch.randn(2, 29, J, dtype=D, generator=gen)
    m_prev = torch.randn(2, 29, J, dtype=D, generator=gen)
    v_prev = torch.rand(2, 29, J, dtype=D, generator=gen)
    bh_prev, gh_prev = torch.rand(2, 29, J, dtype=D, generator=gen), torch.rand(2, 29, J, dtype=D, generator=gen)

    # StateCell: normalised gradient, Linear(1, J) + ELU, LSTM
    gn = g / g.norm(dim=1, keepdim=True)
    z = F.elu(gn[..., None] @ opt.state_cell.pre.weight.T + opt.state_cell.pre.bias)
    s, c = lstm_ref(z, s_prev, c_prev, opt.state_cell.lstm, 1.0)
    s_ours, c_ours = opt.state_cell(g, s_prev, c_prev)
    torch.testing.assert_close(s_ours, s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_ours, c, rtol=1e-12, atol=1e-12)

    # AdamCell: decay rates from normalised m_{t-1} and s_t, moments, running bias corrections
    rates = torch.sigmoid(
        torch.cat([colnorm(m_prev), colnorm(s)], -1) @ opt.adam_cell.decay.weight.T + opt.adam_cell.decay.bias
    )
    beta, gamma = rates[..., :J], rates[..., J:]
    m = beta * m_prev + (1 - beta) * g[..., None]
    v = gamma * v_prev + (1 - gamma) * g[..., None] ** 2
    bh = beta * bh_prev + (1 - beta)
    gh = gamma * gh_prev + (1 - gamma)
    eps = opt.adam_cell.eps
    cand = (m / (bh + eps)) / torch.sqrt(v / (gh + eps) + eps)
    out = opt.adam_cell(g, s, m_prev, v_prev, bh_prev, gh_prev)
    for a, b in zip(out, (cand, m, v, bh, gh)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    # WeightCell and the update
    rho = F.elu(s @ opt.weight_cell.linear.weight.T + opt.weight_cell.linear.bias)
    torch.testing.assert_close(opt.weight_cell(s), rho, rtol=1e-12, atol=1e-12)
    slots = {"s": s_prev, "c": c_prev, "m": m_prev, "v": v_prev, "beta_hat": bh_prev, "gamma_hat": gh_prev}
    step, _ = opt.step_flat(g, slots, 3, x)
    torch.testing.assert_close(step, -0.005 * (rho * cand).sum(-1), rtol=1e-12, atol=1e-14)


def test_hyperadam_with_one_fixed_candidate_is_adam():
    """J = 1, decay rates fixed at (0.9, 0.999), weight 1: Adam with learning rate
    alpha, step for step over 100 steps, against torch.optim.Adam."""
    alpha = 0.01
    opt = HyperAdam(units=1, alpha=alpha, fixed_decay=(0.9, 0.999), fixed_weight=1.0).double()
    g = torch.Generator().manual_seed(0)
    A = torch.randn(20, 6, generator=g, dtype=D)
    b = torch.randn(20, generator=g, dtype=D)
    w0 = torch.randn(6, generator=g, dtype=D)

    def loss_fn(w):
        return ((torch.tanh(A @ w) - b) ** 2).mean()

    params = {"w": w0.clone()}
    state = opt.init(params)
    ref = torch.nn.Parameter(w0.clone())
    torch_adam = torch.optim.Adam([ref], lr=alpha, eps=1e-300)
    for _ in range(100):
        p = params["w"].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(p), p)
        with torch.no_grad():
            updates, state = opt.update({"w": grad}, state, params)
        params = apply_updates(params, updates)
        torch_adam.zero_grad()
        loss_fn(ref).backward()
        torch_adam.step()
        err = (params["w"] - ref.detach()).abs().max() / ref.detach().abs().max()
        assert err < 1e-6


@pytest.mark.parametrize("name", ["dm", "rnnprop", "hyperadam"])
def test_meta_gradient_finite_where_gradients_vanish(name):
    """Coordinates with zero gradient (v = 0): the update and the second-order
    meta-gradient through three steps stay finite (safe square roots)."""
    opt = make_learned(name).double()
    x = torch.randn(1, 30, dtype=D, generator=torch.Generator().manual_seed(0))
    target = torch.randn(1, 30, dtype=D, generator=torch.Generator().manual_seed(1))
    mask = (torch.arange(30) % 3 != 0).to(D)  # a third of the coordinates never get a gradient
    slots = opt.init_flat(x)
    x = x.clone().requires_grad_(True)
    total = 0
    for t in range(3):
        loss = (((x - target) * mask) ** 2).sum()
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        step, slots = opt.step_flat(g, slots, t, x)
        x = x + step
        total = total + (((x - target) * mask) ** 2).sum()
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in opt.parameters() if p.grad is not None)
    assert torch.isfinite(x).all()


def test_adapter_trains_a_module_like_adam_and_resumes(tmp_path):
    """The adapter with an Adam-equivalent HyperAdam matches torch.optim.Adam on an
    nn.Module, and state_dict/load_state_dict resume the recurrent state exactly."""
    torch.manual_seed(0)
    data = torch.randn(64, 5, dtype=D), torch.randn(64, 1, dtype=D)

    def make_model():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            F.mse_loss(model(data[0]), data[1]).backward()
            opt.step()

    learned = HyperAdam(units=1, alpha=0.02, fixed_decay=(0.9, 0.999), fixed_weight=1.0).double()
    model = make_model()
    train(model, LearnedOptimizerAdapter(model.parameters(), learned), 30)
    ref = make_model()
    train(ref, torch.optim.Adam(ref.parameters(), lr=0.02, eps=1e-300), 30)
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)

    # interrupted after 10 steps, saved and restored into a new adapter: same as 20 straight steps
    trained = HyperAdam(units=4, seed=2).double()
    straight = make_model()
    train(straight, LearnedOptimizerAdapter(straight.parameters(), trained), 20)
    first = make_model()
    opt = LearnedOptimizerAdapter(first.parameters(), trained)
    train(first, opt, 10)
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, tmp_path / "ck.pt")
    ck = torch.load(tmp_path / "ck.pt", weights_only=True)
    second = make_model()
    second.load_state_dict(ck["model"])
    opt2 = LearnedOptimizerAdapter(second.parameters(), trained)
    opt2.load_state_dict(ck["opt"])
    assert opt2.learned_state().count == 10
    train(second, opt2, 10)
    for a, b in zip(second.parameters(), straight.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_weights_roundtrip_and_bad_files(tmp_path):
    opt = RNNprop(hidden=7, seed=11)
    path = save_learned(tmp_path / "w.pt", opt)
    back = load_learned(path)
    assert isinstance(back, RNNprop) and back.config == opt.config
    for k, v in opt.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    truncated = tmp_path / "t.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated, corrupt or not a torch file"):
        load_learned(truncated)
    foreign = tmp_path / "f.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="is not a 'l2o.learned_optimizer/1' file"):
        load_learned(foreign)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_learned(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="valid choices: dm, rnnprop, hyperadam"):
        make_learned("lstm")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['J'\]"):
        make_learned("hyperadam", J=3)


def test_state_cell_and_weight_cell_shapes():
    cell, wc, ac = StateCell(5), WeightCell(5), AdamCell(5)
    for m in (cell, wc, ac):
        m.reset_parameters(torch.Generator().manual_seed(0))
    g = torch.randn(3, 11)
    s, c = cell(g, torch.zeros(3, 11, 5), torch.zeros(3, 11, 5))
    assert s.shape == c.shape == (3, 11, 5) and wc(s).shape == (3, 11, 5)


@pytest.mark.parametrize("eps, bounded", [(None, True), (1e-24, False)])
def test_hyperadam_candidate_stays_bounded_when_gradients_vanish(eps, bounded):
    """A coordinate whose gradient turns zero (a dead ReLU unit) with a second-moment
    decay faster than the first's (gamma < beta^2): m / sqrt(v) grows geometrically
    until the root's floor. At the gradient scale of the ReLU MLP's dying units (m
    about 1e-9 to 1e-8 when it happens) the default eps (1e-16) keeps the candidate
    below 1, the authors' 1e-24 lets it grow past it (Table 1's blow-ups on ReLU)."""
    kw = {} if eps is None else {"eps": eps}
    opt = HyperAdam(units=1, alpha=1.0, fixed_decay=(0.77, 0.47), fixed_weight=1.0, **kw)
    params = {"w": torch.zeros(3)}
    state = opt.init(params)
    biggest = 0.0
    for t in range(80):
        g = torch.full((3,), 1e-7 if t == 0 else 0.0)
        with torch.no_grad():
            updates, state = opt.update({"w": g}, state, params)
        biggest = max(biggest, float(updates["w"].abs().max()))
    assert (biggest < 1.0) == bounded, biggest
