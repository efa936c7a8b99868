"""The coordinatewise LSTM optimizer of Andrychowicz et al. (2016)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from l2o.cells import Linear, LSTMCellParams
from l2o.learned.base import LearnedOptimizer, lstm_stack_slots, run_lstm_stack

_F32_EPS = float(torch.finfo(torch.float32).eps)


def preprocess_gradient(g: Tensor, mode: str = "paper", p: float = 10.0) -> Tensor:
    """The two input features per coordinate, (..., N) -> (..., N, 2).

    ``paper`` (Andrychowicz et al. 2016, Appendix A)::

        (log|g| / p, sign g)   if |g| >= e^-p
        (-1, e^p g)            otherwise

    written as ``(log(max(|g|, e^-p)) / p, clip(e^p g, -1, 1))``, which is the same
    function. ``deepmind`` (the authors' released code, ``LogAndSign`` with
    ``k = p``, usually 5): ``(max(log(|g| + eps) / k, -1), clip(e^k g, -1, 1))``
    with eps the float32 machine epsilon.
    """
    if mode == "paper":
        log_part = torch.log(torch.clamp(g.abs(), min=math.exp(-p))) / p
    elif mode == "deepmind":
        log_part = torch.clamp(torch.log(g.abs() + _F32_EPS) / p, min=-1.0)
    else:
        raise ValueError(f"unknown preprocessing {mode!r}; valid choices: paper, deepmind")
    sign_part = torch.clamp(g * math.exp(p), -1.0, 1.0)
    return torch.stack([log_part, sign_part], dim=-1)


class DMOptimizer(LearnedOptimizer):
    """DMoptimizer ("Learning to learn by gradient descent by gradient descent",
    Andrychowicz, Denil, Gomez, Hoffman, Pfau, Schaul, Shillingford, de Freitas,
    NeurIPS 2016).

    A two-layer LSTM with 20 units, shared by all coordinates and applied to each
    coordinate separately (Section 2.1), reads the preprocessed gradient and
    outputs the step::

        [h1, c1] = LSTM1(preprocess(g_t), h1, c1);  [h2, c2] = LSTM2(h1, h2, c2)
        theta_{t+1} = theta_t + output_scale * W h2 + b

    Args:
        hidden: units per LSTM layer (20).
        layers: LSTM layers (2).
        preprocess: ``paper`` (p = 10, Appendix A) or ``deepmind`` (the clamped form
            of the released code, use with ``p = 5`` and ``output_scale = 0.01``);
            ``none`` feeds the raw gradient.
        p: the preprocessing constant (p, or DeepMind's k).
        output_scale: factor on the linear read-out (0.1; 0.01 in DeepMind's code).
        forget_bias: added to the LSTM forget gates (1, the TensorFlow default).
        seed: seed of the initial meta-parameters.
    """

    name = "dm"

    def __init__(
        self,
        hidden: int = 20,
        layers: int = 2,
        preprocess: str = "paper",
        p: float = 10.0,
        output_scale: float = 0.1,
        forget_bias: float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        if preprocess not in ("paper", "deepmind", "none"):
            raise ValueError(f"unknown preprocessing {preprocess!r}; valid choices: paper, deepmind, none")
        self.config = dict(
            hidden=hidden,
            layers=layers,
            preprocess=preprocess,
            p=p,
            output_scale=output_scale,
            forget_bias=forget_bias,
            seed=seed,
        )
        self.hidden, self.preprocess, self.p, self.output_scale = hidden, preprocess, p, output_scale
        n_in = 1 if preprocess == "none" else 2
        self.lstm = nn.ModuleList(
            LSTMCellParams(n_in if i == 0 else hidden, hidden, forget_bias) for i in range(layers)
        )
        self.out = Linear(hidden, 1)
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator) -> None:
        for cell in self.lstm:
            cell.reset_parameters(generator)
        self.out.reset_parameters(generator)

    def init_flat(self, x: Tensor) -> dict[str, Tensor]:
        return lstm_stack_slots(x, self.hidden, len(self.lstm))

    def step_flat(self, g, slots, count, x):
        inp = g[..., None] if self.preprocess == "none" else preprocess_gradient(g, self.preprocess, self.p)
        top, new = run_lstm_stack(self.lstm, inp, slots)
        return self.output_scale * self.out(top).squeeze(-1), new
