"""Optimizee tasks: determinism, shapes, functional models against torch.nn, and
that each task is actually trainable (loss below a bound after Adam)."""

import math

import pytest
import torch
import torch.nn.functional as F

from l2o.evaluation import run_optimizer
from l2o.optimizers import adam
from l2o.tasks import TASKS, make_task, seeded_generators
from l2o.tasks.sine_lstm import SineLSTMTask


def draw(task, seed=0, batches=2):
    g_init, g_data = seeded_generators(seed)
    problem = task.sample_problem(g_init)
    params = task.init_params(g_init)
    return problem, params, [task.sample_batch(problem, g_data) for _ in range(batches)]


@pytest.mark.parametrize("name", list(TASKS))
def test_same_seed_same_draws_other_seed_other_draws(name):
    task = make_task(name)
    a, b, c = draw(task, 3), draw(task, 3), draw(task, 4)
    for k in a[1]:
        assert torch.equal(a[1][k], b[1][k])
    for bt_a, bt_b in zip(a[2], b[2]):
        for k in bt_a:
            assert torch.equal(bt_a[k], bt_b[k])
    assert any(not torch.equal(a[1][k], c[1][k]) for k in a[1]) or any(
        not torch.equal(a[2][0][k], c[2][0][k]) for k in a[2][0]
    )


@pytest.mark.parametrize("name", list(TASKS))
def test_loss_is_finite_scalar_and_differentiable(name):
    task = make_task(name)
    problem, params, batches = draw(task)
    ps = {k: v.requires_grad_(True) for k, v in params.items()}
    loss = task.loss(ps, batches[0])
    assert loss.shape == () and math.isfinite(loss.item())
    grads = torch.autograd.grad(loss, list(ps.values()))
    assert all(g.shape == p.shape and torch.isfinite(g).all() for g, p in zip(grads, ps.values()))
    ev = task.evaluate(params, problem)
    assert {"train_loss", "test_loss"} <= ev.keys()
    assert ("test_accuracy" in ev) == task.has_accuracy


def test_quadratic_is_the_papers_objective():
    task = make_task("quadratic")
    problem, params, _ = draw(task)
    assert problem["W"].shape == (10, 10) and problem["y"].shape == (10,)
    expected = ((problem["W"] @ params["theta"] - problem["y"]) ** 2).sum()
    assert task.loss(params, problem).item() == pytest.approx(expected.item(), rel=1e-6)
    # the exact minimiser has loss ~0
    theta = torch.linalg.solve(problem["W"].double(), problem["y"].double()).float()
    assert task.loss({"theta": theta}, problem).item() < 1e-6


@pytest.mark.parametrize("layers,act", [(1, "sigmoid"), (3, "relu"), (10, "elu"), (2, "tanh")])
def test_mlp_matches_torch_nn(layers, act):
    task = make_task("mnist_mlp", hidden_layers=layers, activation=act)
    _, params, batches = draw(task)
    mods = []
    for i in range(layers + 1):
        w = params[f"fc{i}.weight"]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data, lin.bias.data = w.clone(), params[f"fc{i}.bias"].clone()
        mods.append(lin)
        if i < layers:
            mods.append(
                {
                    "sigmoid": torch.nn.Sigmoid(),
                    "relu": torch.nn.ReLU(),
                    "elu": torch.nn.ELU(),
                    "tanh": torch.nn.Tanh(),
                }[act]
            )
    net = torch.nn.Sequential(*mods)
    x, y = batches[0]["x"], batches[0]["y"]
    assert x.shape == (128, 784)
    assert task.loss(params, batches[0]).item() == pytest.approx(F.cross_entropy(net(x), y).item(), rel=1e-5)


def test_mlp_errors():
    with pytest.raises(ValueError, match="hidden_layers must be in 1..10"):
        make_task("mnist_mlp", hidden_layers=11)
    with pytest.raises(ValueError, match="valid choices: sigmoid, relu, elu, tanh"):
        make_task("mnist_mlp", activation="gelu")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['depth'\].*valid: hidden_units, hidden_layers"):
        make_task("mnist_mlp", depth=3)
    with pytest.raises(ValueError, match="valid choices: quadratic, mnist_mlp"):
        make_task("cifar")


@pytest.mark.parametrize(
    "name,n_params", [("mnist_cnn1", 16 * 9 + 16 + 32 * 16 * 9 + 32 + 6272 * 10 + 10), ("mnist_cnn2", None)]
)
def test_cnn_shapes_and_options(name, n_params):
    task = make_task(name)
    if n_params is not None:
        assert task.num_params() == n_params
    bn = make_task(name, batch_norm=True, dropout=0.5)
    _, params, batches = draw(bn)
    assert any(k.startswith("bn") for k in params)
    mask = batches[0]["dropout_mask"]
    assert set(mask.unique().tolist()) <= {0.0, 2.0}
    assert 0.4 < (mask > 0).float().mean().item() < 0.6
    logits = bn.logits(params, batches[0]["x"], mask)
    assert logits.shape == (128, 10)


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_matches_torch_nn_lstm(layers):
    task = SineLSTMTask(layers=layers)
    _, params, batches = draw(task)
    lstm = torch.nn.LSTM(1, 20, num_layers=layers, batch_first=True)
    for layer in range(layers):
        getattr(lstm, f"weight_ih_l{layer}").data = params[f"lstm{layer}.weight_ih"].clone()
        getattr(lstm, f"weight_hh_l{layer}").data = params[f"lstm{layer}.weight_hh"].clone()
        getattr(lstm, f"bias_ih_l{layer}").data = params[f"lstm{layer}.bias"].clone()
        getattr(lstm, f"bias_hh_l{layer}").data.zero_()
    x = batches[0]["x"]
    out, _ = lstm(x)
    ref = out[:, -1] @ params["head.weight"].T + params["head.bias"]
    torch.testing.assert_close(task.predict(params, x), ref.squeeze(-1), rtol=1e-5, atol=1e-5)


def test_sine_data_follows_its_definition():
    task = SineLSTMTask(noise=0.0, batch_size=4096)
    g = torch.Generator().manual_seed(0)
    b = task.sample_batch({}, g)
    f = torch.cat([b["x"].squeeze(-1), b["y"][:, None]], 1).double()
    amp = f.abs().max(1).values
    assert amp.max() <= 10 and amp.mean() > 3
    # noise-free sinusoids satisfy f(t+1) + f(t-1) = 2 cos(w) f(t) with |cos w| <= 1, cos w >= 0
    ratio = (f[:, 2:] + f[:, :-2]) / (2 * f[:, 1:-1])
    ok = f[:, 1:-1].abs() > 1.0
    assert ((ratio[ok] > -1e-3) & (ratio[ok] < 1 + 1e-3)).float().mean() > 0.999


@pytest.mark.parametrize(
    "name,lr,steps,bound",
    [
        ("quadratic", 0.1, 200, 2.0),
        ("mnist_mlp", 0.03, 100, 0.45),
        ("mnist_cnn1", 0.003, 40, 0.9),
        ("sine_lstm", 0.03, 100, 12.0),
    ],
)
def test_tasks_are_trainable(name, lr, steps, bound):
    task = make_task(name)
    run = run_optimizer(task, adam(lr), steps, seed=0)
    assert run.diverged_step is None
    assert run.final["train_loss"] < bound < run.losses[0]
