"""The LSTM cell of the learned optimizers: its fused CPU kernels (point-wise part
and backward in C, l2o/kernels/lstm.inc) against the PyTorch composition."""

import pytest
import torch
from conftest import kernels_or_skip

from l2o import native
from l2o.cells import _KERNELS, LSTMCellParams, _FusedLSTMCell, lstm_cell

D = torch.float64


def pointwise(gates, c, forget_bias, lib):
    """The fused cell's point-wise part alone: gates = gates I + 0 h + 0."""
    (M, n), H = gates.shape, c.shape[1]
    eye, zeros = torch.eye(n, dtype=gates.dtype), torch.zeros(n, H, dtype=gates.dtype)
    return _FusedLSTMCell.apply(gates, c.new_zeros(M, H), c, eye, zeros, zeros[:, 0], forget_bias, lib)


def cell_inputs(dtype, M=37, H=20, I=2, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(M, I), (M, H), (M, H), (4 * H, I), (4 * H, H), (4 * H,)]
    return [(scale * torch.randn(s, generator=g, dtype=D)).to(dtype).requires_grad_(True) for s in shapes]


@pytest.mark.parametrize("dtype, tol", [(D, 1e-13), (torch.float32, 2e-6)])
@pytest.mark.parametrize("M, I", [(37, 2), (37, 7), (901, 2), (901, 20)])
def test_fused_cell_equals_the_composition(dtype, tol, M, I):
    """Values and every gradient, for a narrow input (I = 2: x W_ih^T and its weight
    gradient in the kernels) and a wide one (I = 7, 20: in the products), on one
    thread's rows (M = 37) and on several threads' blocks (M = 901)."""
    kernels_or_skip(_KERNELS)
    args = cell_inputs(dtype, M=M, I=I)
    fused, plain = lstm_cell(*args, forget_bias=1.0, fused=True), lstm_cell(*args, forget_bias=1.0)
    g = torch.Generator().manual_seed(1)
    w = [torch.randn(t.shape, generator=g, dtype=D).to(dtype) for t in plain]
    for a, b in zip(fused, plain):
        assert ((a - b).abs().max() / b.abs().max()).item() < tol
    grads_fused = torch.autograd.grad(sum((t * wi).sum() for t, wi in zip(fused, w)), args)
    grads_plain = torch.autograd.grad(sum((t * wi).sum() for t, wi in zip(plain, w)), args)
    for a, b in zip(grads_fused, grads_plain):
        assert ((a - b).abs().max() / b.abs().max()).item() < tol
    # only h' used downstream (dL/dc' absent), and leading batch dimensions
    x, h, c, *weights = args
    lead = [t.view(1, M, -1) for t in (x, h, c)]
    h3, h3p = lstm_cell(*lead, *weights, 1.0, fused=True)[0], lstm_cell(*lead, *weights, 1.0)[0]
    assert h3.shape == (1, M, 20)
    ga, gb = torch.autograd.grad(h3.sum(), c), torch.autograd.grad(h3p.sum(), c)
    assert ((ga[0] - gb[0]).abs().max() / gb[0].abs().max()).item() < tol


@pytest.mark.parametrize("I", [2, 20])
def test_fused_cell_partial_gradients_and_fixed_sum_order(I):
    """As in a learned optimizer (its input, the preprocessed gradient, needs no
    gradient): the gradients asked for equal the composition's; and the bias and
    weight gradients (sums over rows, across threads) are the same bits on a rerun."""
    kernels_or_skip(_KERNELS)
    x, h, c, w_ih, w_hh, b = cell_inputs(torch.float32, M=3001, I=I, seed=4)
    x = x.detach()
    wanted = (h, c, w_ih, w_hh, b)

    def grads(fused):
        hn, cn = lstm_cell(x, h, c, w_ih, w_hh, b, forget_bias=1.0, fused=fused)
        return torch.autograd.grad((hn * cn).sum() + hn.sum(), wanted)

    first, again, plain = grads(True), grads(True), grads(False)
    for a, a2, p in zip(first, again, plain):
        assert torch.equal(a, a2)
        assert ((a - p).abs().max() / p.abs().max()).item() < 2e-6


def test_fused_cell_gradcheck_and_fallback():
    kernels_or_skip(_KERNELS)
    args = cell_inputs(D, M=5, H=3, I=2, seed=2)
    assert torch.autograd.gradcheck(lambda *t: lstm_cell(*t, forget_bias=1.0, fused=True), args)
    with native.disabled():  # without the kernels, the same function as PyTorch operations, exactly
        off = lstm_cell(*args, forget_bias=1.0, fused=True)
    for a, b in zip(off, lstm_cell(*args, forget_bias=1.0)):
        assert torch.equal(a, b)


def test_fused_activations_over_a_wide_range_in_float32():
    """float32 sigmoid and tanh of the kernel (a vectorised exp; tanh as 2 s(2x) - 1)
    against float64 from -100 to 100 and at the ends of exp's clamp: tanh within
    3e-7 absolute, the sigmoid within 3e-7 relative (1e-37 absolute in its far
    tail); NaN passed through."""
    lib = kernels_or_skip(_KERNELS)
    z = torch.cat([torch.linspace(-100, 100, 200_001), torch.tensor([0.0, 1e-30, -1e-30, 87.0, -87.5, 88.5, -88.5])])
    M = z.numel()
    gates = torch.zeros(M, 4)
    gates[:, 1] = z  # forget gate: c' = s(z) * 1 + s(0) tanh(0) = s(z)
    h, c_new = pointwise(gates, torch.ones(M, 1), 0.0, lib)
    sig, got = torch.sigmoid(z.double()), c_new[:, 0].double()
    assert ((got - sig).abs() / sig)[z > -80].max().item() < 3e-7  # relative, down to s = 2e-35
    assert (got - sig).abs()[z <= -80].max().item() < 1e-37  # below, exp's input is clamped at -87
    tanh_of_sig = 0.5 * torch.tanh(sig)  # h' = s(0) tanh(c')
    assert (h[:, 0].double() - tanh_of_sig).abs().max().item() < 3e-7
    gates = torch.zeros(M, 4)
    gates[:, 2] = z  # cell input: c' = s(0) tanh(z)
    _, c_new = pointwise(gates, torch.zeros(M, 1), 0.0, lib)
    assert (c_new[:, 0].double() - 0.5 * torch.tanh(z.double())).abs().max().item() < 3e-7
    h, c_new = pointwise(torch.full((1, 4), float("nan")), torch.zeros(1, 1), 0.0, lib)
    assert h.isnan().all() and c_new.isnan().all()


def test_learned_optimizer_cells_use_the_kernels():
    """``LSTMCellParams`` (the learned optimizers' cells) takes the fused path."""
    kernels_or_skip(_KERNELS)
    cell = LSTMCellParams(2, 4)
    cell.reset_parameters(torch.Generator().manual_seed(0))
    x, h, c = torch.randn(6, 2), torch.randn(6, 4), torch.randn(6, 4)
    out, _ = cell(x, h, c)
    assert type(out.grad_fn.next_functions[0][0]).__name__ == "_FusedLSTMCellBackward"


def test_fused_cell_backward_with_a_kept_graph():
    """The kernels overwrite the saved activations with their gradient, except where
    the graph is kept: two backwards through one graph (``retain_graph=True``) give
    the same gradients, equal to the composition's."""
    kernels_or_skip(_KERNELS)
    args = cell_inputs(D, M=6, H=4, I=2, seed=3)
    h, c = lstm_cell(*args, forget_bias=1.0, fused=True)
    loss = (h * c).sum()
    first = torch.autograd.grad(loss, args, retain_graph=True)
    second = torch.autograd.grad(loss, args)
    hp, cp = lstm_cell(*args, forget_bias=1.0)
    plain = torch.autograd.grad((hp * cp).sum(), args)
    for a, b, p in zip(first, second, plain):
        assert torch.equal(a, b)
        assert ((a - p).abs().max() / p.abs().max()).item() < 1e-13
