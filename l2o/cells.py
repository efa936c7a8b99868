"""Recurrent building blocks shared by optimizee tasks and learned optimizers."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def lstm_cell(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor, forget_bias: float = 0.0
) -> tuple[Tensor, Tensor]:
    """One LSTM step, gates in ``torch.nn.LSTM``'s order (input, forget, cell, output)::

        [i, f, g, o] = x W_ih^T + h W_hh^T + b
        c' = sigmoid(f + forget_bias) * c + sigmoid(i) * tanh(g);   h' = sigmoid(o) * tanh(c')

    ``forget_bias`` = 1 is TensorFlow's ``LSTMCell`` default, used by the learned
    optimizers' reference code. Any leading batch dimensions are allowed.
    """
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
        return lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias, self.forget_bias)


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
