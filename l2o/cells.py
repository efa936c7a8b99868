"""Recurrent building blocks shared by optimizee tasks and learned optimizers."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from l2o import native

_KERNELS = Path(__file__).resolve().parent / "kernels" / "lstm.c"


def _graph_kept() -> bool:
    """Whether the running backward keeps its graph for another one (True when
    PyTorch does not say)."""
    kept = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if kept is None else bool(kept())


NARROW_INPUT = 4  # inputs with at most this many features are multiplied by W_ih inside the kernel


class _FusedLSTMCell(torch.autograd.Function):
    """One LSTM step from ``x`` (M, I), ``h`` (M, H), ``c`` (M, H), the weights ``w_ih``
    (4H, I), ``w_hh`` (4H, H) and bias ``b`` (4H): the gates as matrix products, their
    point-wise part (gates -> h', c') and its backward as one C kernel each
    (``l2o/kernels/lstm.inc``) instead of a dozen PyTorch operations and their
    backward nodes over (M, 4H) tensors.

    The forward kernel adds the bias (the product skips addmm's pass that copies it
    into every row) and, for a narrow input (I <= ``NARROW_INPUT``: the preprocessed
    gradient), ``x W_ih^T`` too (a product with an inner dimension of 2 runs far below
    speed); the backward kernel returns the bias gradient (and the narrow input's
    weight gradient) as sums over rows, in a fixed order. No [x, h] concatenation is
    formed in the forward.

    The kernels work in place: the activations the backward needs are written over
    the gates, and their gradient over the activations, so a step allocates and
    writes no (M, 4H) buffer beyond the product's output; the forward also keeps
    tanh(c') (M, H) for the backward, which then evaluates no transcendental.
    Where the graph is kept for another backward (``retain_graph=True``,
    ``gradcheck``), the backward works on a copy."""

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, b, forget_bias: float, lib) -> tuple[Tensor, Tensor]:
        x, h, c = x.contiguous(), h.contiguous(), c.contiguous()
        narrow = x.shape[1] <= NARROW_INPUT
        act = torch.mm(h, w_hh.T)  # the gates, activated in place below
        if not narrow:
            act.addmm_(x, w_ih.T)
        h_new, c_new, tanh_c = torch.empty_like(c), torch.empty_like(c), torch.empty_like(c)
        ints = (*c.shape, x.shape[1] if narrow else 0)
        native.call(
            lib,
            "lstm_forward",
            (act, x, w_ih.contiguous(), b.contiguous(), c, h_new, c_new, tanh_c),
            ints,
            (forget_bias,),
        )
        ctx.save_for_backward(x, h, w_ih, w_hh, act, c, tanh_c)
        ctx.lib, ctx.narrow = lib, narrow
        return h_new, c_new

    @staticmethod
    @once_differentiable
    def backward(ctx, dh: Tensor | None, dc: Tensor | None):
        x, h, w_ih, w_hh, d_gates, c, tanh_c = ctx.saved_tensors
        if _graph_kept():
            d_gates = d_gates.clone()
        dh = torch.zeros_like(c) if dh is None else dh.contiguous()
        dc = torch.zeros_like(c) if dc is None else dc.contiguous()
        d_c = torch.empty_like(c)
        I, narrow = x.shape[1], ctx.narrow
        d_b, d_w_narrow = c.new_empty(d_gates.shape[1]), c.new_empty(w_ih.shape if narrow else (0,))
        ints = (*c.shape, I if narrow else 0)
        native.call(ctx.lib, "lstm_backward", (dh, dc, d_gates, c, tanh_c, d_c, x, d_b, d_w_narrow), ints)
        need_x, need_h, _, need_wi, need_wh, _ = ctx.needs_input_grad[:6]
        if need_x and need_h and not narrow:  # one product for both: (M, 4H) read once
            d_xh = d_gates @ torch.cat([w_ih, w_hh], 1)
            d_x, d_h = d_xh[:, :I], d_xh[:, I:]
        else:
            d_x = d_gates @ w_ih if need_x else None
            d_h = d_gates @ w_hh if need_h else None
        # (v^T d_gates)^T: a transposed (M, 4H) operand would be copied by the product first
        if narrow:
            d_w_ih = d_w_narrow if need_wi else None
            d_w_hh = (h.T @ d_gates).T if need_wh else None
        elif need_wi and need_wh:
            d_w = (torch.cat([x, h], 1).T @ d_gates).T
            d_w_ih, d_w_hh = d_w[:, :I], d_w[:, I:]
        else:
            d_w_ih = (x.T @ d_gates).T if need_wi else None
            d_w_hh = (h.T @ d_gates).T if need_wh else None
        return d_x, d_h, d_c, d_w_ih, d_w_hh, d_b, None, None


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b: Tensor,
    forget_bias: float = 0.0,
    fused: bool = False,
) -> tuple[Tensor, Tensor]:
    """One LSTM step, gates in ``torch.nn.LSTM``'s order (input, forget, cell, output)::

        [i, f, g, o] = x W_ih^T + h W_hh^T + b
        c' = sigmoid(f + forget_bias) * c + sigmoid(i) * tanh(g);   h' = sigmoid(o) * tanh(c')

    ``forget_bias`` = 1 is TensorFlow's ``LSTMCell`` default, used by the learned
    optimizers' reference code. Any leading batch dimensions are allowed.

    ``fused=True``: on the CPU (float32/float64), the step is one autograd node
    whose point-wise part and its backward run as C kernels (``_FusedLSTMCell``;
    the same values to rounding, tested). Its backward cannot itself be
    differentiated, so cells whose gradient enters a second-order graph (an
    optimizee's) keep the default.
    """
    lib = native.library_for(_KERNELS, c) if fused else None
    if lib is not None:
        H = h.shape[-1]
        flat = (x.reshape(-1, x.shape[-1]), h.reshape(-1, H), c.reshape(-1, H))
        h_new, c_new = _FusedLSTMCell.apply(*flat, w_ih, w_hh, b, float(forget_bias), lib)
        return h_new.reshape(h.shape), c_new.reshape(c.shape)
    gates = torch.addmm(b, x.reshape(-1, x.shape[-1]), w_ih.T).addmm_(h.reshape(-1, h.shape[-1]), w_hh.T)
    gates = gates.reshape(*h.shape[:-1], -1)
    i, f, g, o = gates.chunk(4, dim=-1)
    if forget_bias:
        f = f + forget_bias
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class LSTMCellParams(nn.Module):
    """Parameters of one LSTM layer (``weight_ih`` (4H, in), ``weight_hh`` (4H, H),
    ``bias`` (4H)), applied with ``lstm_cell``."""

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__()
        self.input_size, self.hidden_size, self.forget_bias = input_size, hidden_size, forget_bias
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) weights (``torch.nn.LSTM``'s default), zero bias."""
        k = 1 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for w in (self.weight_ih, self.weight_hh):
                w.copy_((2 * torch.rand(w.shape, generator=generator, dtype=torch.float64) - 1) * k)
            self.bias.zero_()

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        # fused: a learned optimizer's cells are differentiated once (by the meta-gradient)
        return lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias, self.forget_bias, fused=True)


def trunc_normal_(w: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """Fill ``w`` from N(0, std^2) truncated at two standard deviations (TensorFlow's
    ``truncated_normal_initializer``, the learned optimizers' reference init)."""
    tmp = torch.empty(w.shape, dtype=torch.float64)
    nn.init.trunc_normal_(tmp, 0.0, std, -2 * std, 2 * std, generator=generator)
    with torch.no_grad():
        return w.copy_(tmp)


class Linear(nn.Linear):
    """``nn.Linear`` whose ``reset_parameters(generator)`` draws weights from a
    truncated N(0, std^2) and sets the bias to 0."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, std: float = 0.1):
        self.std = std
        super().__init__(in_features, out_features, bias)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        if generator is None:  # called by nn.Linear.__init__; the owner draws the real init
            with torch.no_grad():
                self.weight.zero_()
                if self.bias is not None:
                    self.bias.zero_()
            return
        trunc_normal_(self.weight, self.std, generator)
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()
