"""Hand-designed optimizers: 100-step float64 trajectories against torch.optim, and
Lookahead / NovoGrad / RAdam-at-threshold-4 against their equations written out here."""

import math

import pytest
import torch

from l2o.optimizers import (
    HAND_DESIGNED,
    adadelta,
    adagrad,
    adam,
    apply_updates,
    lookahead,
    make_optimizer,
    momentum,
    nesterov,
    novograd,
    radam,
    rmsprop,
    sgd,
)

STEPS = 100


def make_problem(seed=0):
    """A random non-convex-ish problem with two parameter tensors (a 'layer')."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(12, 8, generator=g, dtype=torch.float64)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    params = {
        "w": torch.randn(8, 3, generator=g, dtype=torch.float64),
        "v": torch.randn(3, generator=g, dtype=torch.float64),
    }

    def loss_fn(p):
        return ((torch.tanh(A @ p["w"]) @ p["v"] - b) ** 2).mean()

    return params, loss_fn


def grads_of(loss_fn, params):
    ps = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    loss = loss_fn(ps)
    gs = torch.autograd.grad(loss, list(ps.values()))
    return dict(zip(ps, gs))


def run_ours(opt, params, loss_fn, steps=STEPS):
    state = opt.init(params)
    traj = []
    for _ in range(steps):
        updates, state = opt.update(grads_of(loss_fn, params), state, params)
        params = apply_updates(params, updates)
        traj.append({k: v.clone() for k, v in params.items()})
    return traj


def run_torch(cls, kwargs, params, loss_fn, steps=STEPS):
    ps = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
    opt = cls(list(ps.values()), **kwargs)
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(ps).backward()
        opt.step()
        traj.append({k: v.detach().clone() for k, v in ps.items()})
    return traj


def assert_traj_close(ours, ref, rtol=1e-6):
    assert len(ours) == len(ref)
    for t, (a, b) in enumerate(zip(ours, ref)):
        for k in a:
            err = (a[k] - b[k]).abs().max().item()
            scale = b[k].abs().max().item()
            assert err <= rtol * max(scale, 1e-12), f"step {t + 1}, {k}: max abs err {err:.3e}, scale {scale:.3e}"


PARITY = [
    ("sgd", sgd(0.05), torch.optim.SGD, dict(lr=0.05)),
    ("sgd+wd", sgd(0.05, weight_decay=0.01), torch.optim.SGD, dict(lr=0.05, weight_decay=0.01)),
    ("momentum", momentum(0.02, beta=0.9), torch.optim.SGD, dict(lr=0.02, momentum=0.9)),
    ("nesterov", nesterov(0.02, beta=0.9), torch.optim.SGD, dict(lr=0.02, momentum=0.9, nesterov=True)),
    ("adagrad", adagrad(0.1), torch.optim.Adagrad, dict(lr=0.1)),
    (
        "adagrad+decay",
        adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.1),
        torch.optim.Adagrad,
        dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    ),
    ("adadelta", adadelta(1.0, rho=0.9), torch.optim.Adadelta, dict(lr=1.0, rho=0.9)),
    ("rmsprop", rmsprop(0.01), torch.optim.RMSprop, dict(lr=0.01)),
    (
        "rmsprop+centered+momentum",
        rmsprop(0.005, momentum=0.5, centered=True),
        torch.optim.RMSprop,
        dict(lr=0.005, momentum=0.5, centered=True),
    ),
    ("adam", adam(0.01), torch.optim.Adam, dict(lr=0.01)),
    (
        "adam+wd",
        adam(0.01, b1=0.8, b2=0.99, weight_decay=0.1),
        torch.optim.Adam,
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
    ),
    ("radam", radam(0.01, rectify_threshold=5.0), torch.optim.RAdam, dict(lr=0.01)),
    ("radam-b2=0.9", radam(0.01, b2=0.9, rectify_threshold=5.0), torch.optim.RAdam, dict(lr=0.01, betas=(0.9, 0.9))),
]


@pytest.mark.parametrize("name,ours,cls,kwargs", PARITY, ids=[p[0] for p in PARITY])
def test_parity_with_torch_optim(name, ours, cls, kwargs):
    params, loss_fn = make_problem()
    assert_traj_close(run_ours(ours, params, loss_fn), run_torch(cls, kwargs, params, loss_fn))


def test_inplace_adam_matches_torch_and_overwrites_its_state():
    params, loss_fn = make_problem(7)
    opt = adam(0.01, b1=0.8, weight_decay=0.01, inplace=True)
    p = {k: v.clone() for k, v in params.items()}
    state = opt.init(p)
    first_mu = state.mu
    traj = []
    with torch.no_grad():
        for _ in range(STEPS):
            with torch.enable_grad():
                g = grads_of(loss_fn, p)
            updates, state = opt.update(g, state, p)
            p = apply_updates(p, updates, inplace=True)
            traj.append({k: v.clone() for k, v in p.items()})
    assert state.mu is not first_mu and all(state.mu[k] is first_mu[k] for k in p)  # same buffers
    ref = run_torch(torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.999), weight_decay=0.01), params, loss_fn)
    assert_traj_close(traj, ref)


def test_radam_paper_threshold_differs_only_at_step_5():
    """rho_t > 4 (paper) vs > 5 (torch): rho_5 = 4.99... with b2 = 0.999, so step 5 is
    rectified in the paper's rule and not in torch's; check against the equations."""
    b1, b2, lr, eps = 0.9, 0.999, 0.01, 1e-8
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2**t / (1 - b2**t) for t in range(1, 8)]
    assert rho[3] < 4 < rho[4] < 5 < rho[5]
    params, loss_fn = make_problem(1)
    ours = run_ours(radam(lr, rectify_threshold=4.0), params, loss_fn, steps=10)
    # equations of Algorithm 2, written out
    p = {k: v.clone() for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v2 = {k: torch.zeros_like(v) for k, v in p.items()}
    for t in range(1, 11):
        g = grads_of(loss_fn, p)
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v2[k] = b2 * v2[k] + (1 - b2) * g[k] ** 2
            m_hat = m[k] / (1 - b1**t)
            rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
            if rho_t > 4:
                r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                l_t = math.sqrt(1 - b2**t) / (v2[k].sqrt() + eps)
                p[k] = p[k] - lr * r * m_hat * l_t
            else:
                p[k] = p[k] - lr * m_hat
        assert_traj_close([ours[t - 1]], [p])
    torch_traj = run_torch(torch.optim.RAdam, dict(lr=lr), params, loss_fn, steps=10)
    assert_traj_close(ours[:4], torch_traj[:4])
    with pytest.raises(AssertionError):
        assert_traj_close(ours[4:5], torch_traj[4:5])


def test_lookahead_matches_equations():
    """Lookahead(SGD momentum), k = 5, alpha = 0.5, against Algorithm 1 written out."""
    k_sync, alpha, lr, mu = 5, 0.5, 0.05, 0.9
    params, loss_fn = make_problem(2)
    ours = run_ours(lookahead(momentum(lr, beta=mu), sync_period=k_sync, alpha=alpha), params, loss_fn)
    slow = {k: v.clone() for k, v in params.items()}
    fast = {k: v.clone() for k, v in params.items()}
    buf = {k: torch.zeros_like(v) for k, v in params.items()}
    for t in range(1, STEPS + 1):
        g = grads_of(loss_fn, fast)
        for k in fast:
            buf[k] = mu * buf[k] + g[k]
            fast[k] = fast[k] - lr * buf[k]
        if t % k_sync == 0:
            for k in fast:
                slow[k] = slow[k] + alpha * (fast[k] - slow[k])
                fast[k] = slow[k].clone()
        assert_traj_close([ours[t - 1]], [fast])


@pytest.mark.parametrize("wd,averaging", [(0.0, False), (0.01, False), (0.0, True)])
def test_novograd_matches_equations(wd, averaging):
    lr, b1, b2, eps = 0.01, 0.95, 0.98, 1e-8
    params, loss_fn = make_problem(3)
    ours = run_ours(novograd(lr, b1, b2, eps, weight_decay=wd, grad_averaging=averaging), params, loss_fn)
    p = {k: v.clone() for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v = {k: None for k in p}
    c = (1 - b1) if averaging else 1.0
    for t in range(1, STEPS + 1):
        g = grads_of(loss_fn, p)
        for k in p:
            n2 = float((g[k] ** 2).sum())
            v[k] = n2 if t == 1 else b2 * v[k] + (1 - b2) * n2
            m[k] = b1 * m[k] + c * (g[k] / (math.sqrt(v[k]) + eps) + wd * p[k])
            p[k] = p[k] - lr * m[k]
        assert_traj_close([ours[t - 1]], [p])


def test_lr_as_tensor_keeps_graph():
    """A learning rate that requires grad: d(loss after 3 Adam steps)/d(lr), with
    gradients differentiated through (second order), matches central finite
    differences."""
    params, loss_fn = make_problem(4)

    def unrolled(lr):
        opt = adam(lr, b1=torch.tensor(0.9, dtype=torch.float64))
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        state = opt.init(p)
        for _ in range(3):
            g = dict(zip(p, torch.autograd.grad(loss_fn(p), list(p.values()), create_graph=True)))
            u, state = opt.update(g, state, p)
            p = apply_updates(p, u)
        return loss_fn(p)

    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    (dlr,) = torch.autograd.grad(unrolled(lr), lr)
    h = 1e-6
    fd = (
        unrolled(torch.tensor(0.05 + h, dtype=torch.float64)) - unrolled(torch.tensor(0.05 - h, dtype=torch.float64))
    ) / (2 * h)
    assert dlr.item() == pytest.approx(fd.item(), rel=1e-6)


def test_update_does_not_modify_inputs():
    params, loss_fn = make_problem(5)
    for name in HAND_DESIGNED:
        opt = make_optimizer(name)
        state = opt.init(params)
        g = grads_of(loss_fn, params)
        before = {k: v.clone() for k, v in params.items()}
        g_before = {k: v.clone() for k, v in g.items()}
        opt.update(g, state, params)
        for k in params:
            assert torch.equal(params[k], before[k]), name
            assert torch.equal(g[k], g_before[k]), name


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="valid choices: sgd, momentum"):
        make_optimizer("adamw")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['beta1'\].*valid: learning_rate, b1, b2"):
        make_optimizer("adam", beta1=0.9)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        make_optimizer("sgd", learning_rate=-1.0)
    with pytest.raises(ValueError, match=r"b2 must be in \[0, 1\)"):
        adam(1e-3, b2=1.0)
    with pytest.raises(ValueError, match="sync_period must be a positive integer"):
        make_optimizer("lookahead", sync_period=0)


def test_schedule_in_registry_matches_torch_scheduler():
    """SGD with a step schedule from the registry against SGD + StepLR."""
    params, loss_fn = make_problem(6)
    ours = run_ours(
        make_optimizer("sgd", learning_rate=0.1, schedule={"name": "step", "step_size": 10, "gamma": 0.5}),
        params,
        loss_fn,
        steps=40,
    )
    ps = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
    opt = torch.optim.SGD(list(ps.values()), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    for t in range(40):
        opt.zero_grad()
        loss_fn(ps).backward()
        opt.step()
        sched.step()
        assert_traj_close([ours[t]], [{k: v.detach() for k, v in ps.items()}])
