"""RNNprop (Lv, Jiang, Li 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2o.cells import Linear, LSTMCellParams
from l2o.learned.base import LearnedOptimizer, lstm_stack_slots, run_lstm_stack


class RNNprop(LearnedOptimizer):
    """RNNprop ("Learning Gradient Descent: Better Generalization and Longer
    Horizons", Lv, Jiang, Li, ICML 2017), Section 3.

    Adam's statistics with b1 = b2 = 0.95, bias corrected, give two scale-free
    inputs per coordinate, which a coordinatewise network maps to a bounded step::

        m_t = b1 m_{t-1} + (1 - b1) g_t,   v_t = b2 v_{t-1} + (1 - b2) g_t^2
        s_t = sqrt(v_t / (1 - b2^t)) + eps
        input = [g_t / s_t, (m_t / (1 - b1^t)) / s_t]
        z = ELU(W_in input + b_in);  two-layer LSTM (20 units) on z -> h
        theta_{t+1} = theta_t - alpha * tanh(W_out h + b_out),    alpha = 0.1

    Args:
        hidden: LSTM units (20); layers: LSTM layers (2).
        b1, b2: Adam decay rates of the input statistics (0.95, 0.95).
        alpha: bound of the step (0.1).
        eps: added to the normaliser (1e-8).
        forget_bias: added to the LSTM forget gates (1, as in the TF code).
        seed: seed of the initial meta-parameters.
    """

    name = "rnnprop"

    def __init__(
        self,
        hidden: int = 20,
        layers: int = 2,
        b1: float = 0.95,
        b2: float = 0.95,
        alpha: float = 0.1,
        eps: float = 1e-8,
        forget_bias: float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        self.config = dict(
            hidden=hidden, layers=layers, b1=b1, b2=b2, alpha=alpha, eps=eps, forget_bias=forget_bias, seed=seed
        )
        self.hidden, self.b1, self.b2, self.alpha, self.eps = hidden, b1, b2, alpha, eps
        self.inp = Linear(2, hidden)
        self.lstm = nn.ModuleList(LSTMCellParams(hidden, hidden, forget_bias) for _ in range(layers))
        self.out = Linear(hidden, 1)
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator) -> None:
        self.inp.reset_parameters(generator)
        for cell in self.lstm:
            cell.reset_parameters(generator)
        self.out.reset_parameters(generator)

    def init_flat(self, x: Tensor) -> dict[str, Tensor]:
        return {**lstm_stack_slots(x, self.hidden, len(self.lstm)), "m": torch.zeros_like(x), "v": torch.zeros_like(x)}

    def step_flat(self, g, slots, count, x):
        t = count + 1
        m = self.b1 * slots["m"] + (1 - self.b1) * g
        v = self.b2 * slots["v"] + (1 - self.b2) * g * g
        # sqrt of v_hat + 1e-30: no infinite derivative at v = 0 (second-order meta-gradients)
        s = torch.sqrt(v / (1 - self.b2**t) + 1e-30) + self.eps
        features = torch.stack([g / s, m / (1 - self.b1**t) / s], dim=-1)
        top, new = run_lstm_stack(self.lstm, F.elu(self.inp(features)), slots)
        step = -self.alpha * torch.tanh(self.out(top).squeeze(-1))
        return step, {**new, "m": m, "v": v}
