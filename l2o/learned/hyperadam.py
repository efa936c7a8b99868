"""HyperAdam (Wang, Sun, Xu, AAAI 2019): a learned combination of Adam updates
with learned, per-coordinate decay rates."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2o.cells import Linear, LSTMCellParams
from l2o.learned.base import LearnedOptimizer, column_normalize


class StateCell(nn.Module):
    """The task state ``s_t`` (Algorithm 2, StateCell): the gradient normalised by
    its L2 norm over the whole parameter vector, a coordinatewise Linear(1, J) and
    ELU, then an LSTM with J units::

        g~ = g / ||g||_2;   z = ELU(W_z g~ + b_z);   (s_t, c_t) = LSTM(z, s_{t-1}, c_{t-1})
    """

    def __init__(self, units: int = 20, forget_bias: float = 1.0):
        super().__init__()
        self.pre = Linear(1, units)
        self.lstm = LSTMCellParams(units, units, forget_bias)

    def reset_parameters(self, generator: torch.Generator) -> None:
        self.pre.reset_parameters(generator)
        self.lstm.reset_parameters(generator)

    def forward(self, g: Tensor, s: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """``g``: (B, N); ``s``, ``c``: (B, N, J)."""
        g_normalized = g * torch.rsqrt((g * g).sum(dim=-1, keepdim=True) + 1e-32)
        z = F.elu(self.pre(g_normalized[..., None]))
        return self.lstm(z, s, c)


class AdamCell(nn.Module):
    """J Adam updates with learned decay rates (Algorithm 2, AdamCell)::

        [beta_t, gamma_t] = sigmoid(W [m~_{t-1}, s~_t] + b)      (each (B, N, J))
        m_t = beta_t m_{t-1} + (1 - beta_t) g_t
        v_t = gamma_t v_{t-1} + (1 - gamma_t) g_t^2
        beta^_t = beta_t beta^_{t-1} + (1 - beta_t),   gamma^_t likewise   (both 0 at t = 0)
        candidate_t = (m_t / (beta^_t + eps)) / sqrt(v_t / (gamma^_t + eps) + eps)

    where ``x~`` is ``x / sqrt(||x||^2 + 1e-16)`` with the norm over the coordinates
    of each of the J columns (the authors' code). With constant decay rates the
    running factors are Adam's bias corrections ``1 - beta^t``. The ``eps`` inside
    the square root keeps it differentiable at v = 0. The authors' code uses 1e-24;
    we default to 1e-16 (a floor of 1e-8 on the root, as Adam's epsilon): when a
    coordinate's gradient stays zero (dead ReLU units) and the learned second-moment
    decay is faster than the first's (gamma < beta^2), m / sqrt(v) grows
    geometrically until the floor, and 1e-24 lets candidates reach ~1e3 and the
    optimizee blow up (measured on the ReLU MLP; see the README's Table 1).

    Args:
        units: J, the number of candidate updates.
        eps: the epsilon of the bias corrections and of the square root.
        fixed_decay: ``(beta, gamma)`` to use constant decay rates instead of the
            learned ones (then the cell is J copies of Adam; used in tests).
    """

    def __init__(self, units: int = 20, eps: float = 1e-16, fixed_decay: tuple[float, float] | None = None):
        super().__init__()
        self.units, self.eps, self.fixed_decay = units, eps, fixed_decay
        self.decay = nn.Linear(2 * units, 2 * units)

    def reset_parameters(self, generator: torch.Generator) -> None:
        bound = (6 / (4 * self.units)) ** 0.5  # Glorot uniform, TensorFlow's default kernel init
        with torch.no_grad():
            w = (2 * torch.rand(self.decay.weight.shape, generator=generator, dtype=torch.float64) - 1) * bound
            self.decay.weight.copy_(w)
            self.decay.bias.zero_()

    def decay_rates(self, m_prev: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        if self.fixed_decay is not None:
            beta, gamma = self.fixed_decay
            return torch.full_like(s, beta), torch.full_like(s, gamma)
        rates = torch.sigmoid(self.decay(torch.cat([column_normalize(m_prev), column_normalize(s)], dim=-1)))
        return rates[..., : self.units], rates[..., self.units :]

    def forward(self, g: Tensor, s: Tensor, m, v, beta_hat, gamma_hat):
        """``g``: (B, N); everything else (B, N, J). Returns the candidates and the
        new ``m, v, beta_hat, gamma_hat``."""
        beta, gamma = self.decay_rates(m, s)
        g = g[..., None]
        m = beta * m + (1 - beta) * g
        v = gamma * v + (1 - gamma) * g * g
        beta_hat = beta * beta_hat + (1 - beta)
        gamma_hat = gamma * gamma_hat + (1 - gamma)
        candidates = (m / (beta_hat + self.eps)) / torch.sqrt(v / (gamma_hat + self.eps) + self.eps)
        return candidates, m, v, beta_hat, gamma_hat


class WeightCell(nn.Module):
    """Combination weights from the task state (Algorithm 2, WeightCell):
    ``rho_t = ELU(W s_t + b)``, or a constant ``fixed_weight``."""

    def __init__(self, units: int = 20, fixed_weight: float | None = None):
        super().__init__()
        self.fixed_weight = fixed_weight
        self.linear = Linear(units, units)

    def reset_parameters(self, generator: torch.Generator) -> None:
        self.linear.reset_parameters(generator)

    def forward(self, s: Tensor) -> Tensor:
        if self.fixed_weight is not None:
            return torch.full_like(s, self.fixed_weight)
        return F.elu(self.linear(s))


class HyperAdam(LearnedOptimizer):
    """HyperAdam ("HyperAdam: A Learnable Task-Adaptive Adam for Network Training",
    Wang, Sun, Xu, AAAI 2019), Algorithm 2::

        s_t = StateCell(g_t, s_{t-1})
        d_t^j = AdamCell_j(g_t, s_t, m_{t-1})          j = 1..J candidate Adam updates
        rho_t = WeightCell(s_t)
        theta_{t+1} = theta_t - alpha * sum_j rho_t^j d_t^j,     alpha = 0.005, J = 20

    Args:
        units: J (20).
        alpha: step size (0.005).
        eps: AdamCell's epsilon (1e-16; the authors' code: 1e-24, see ``AdamCell``).
        forget_bias: StateCell LSTM forget-gate bias (1).
        fixed_decay, fixed_weight: constants replacing the learned decay rates and
            weights (with J = 1, ``(b1, b2)`` and 1.0 make HyperAdam exactly Adam).
        seed: seed of the initial meta-parameters.
    """

    name = "hyperadam"

    def __init__(
        self,
        units: int = 20,
        alpha: float = 0.005,
        eps: float = 1e-16,
        forget_bias: float = 1.0,
        fixed_decay: tuple[float, float] | None = None,
        fixed_weight: float | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.config = dict(
            units=units,
            alpha=alpha,
            eps=eps,
            forget_bias=forget_bias,
            fixed_decay=list(fixed_decay) if fixed_decay is not None else None,
            fixed_weight=fixed_weight,
            seed=seed,
        )
        self.units, self.alpha = units, alpha
        self.state_cell = StateCell(units, forget_bias)
        self.adam_cell = AdamCell(units, eps, tuple(fixed_decay) if fixed_decay is not None else None)
        self.weight_cell = WeightCell(units, fixed_weight)
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator) -> None:
        self.state_cell.reset_parameters(generator)
        self.adam_cell.reset_parameters(generator)
        self.weight_cell.reset_parameters(generator)

    def init_flat(self, x: Tensor) -> dict[str, Tensor]:
        z = x.new_zeros(*x.shape, self.units)
        return {k: z for k in ("s", "c", "m", "v", "beta_hat", "gamma_hat")}

    def step_flat(self, g, slots, count, x):
        s, c = self.state_cell(g, slots["s"], slots["c"])
        candidates, m, v, beta_hat, gamma_hat = self.adam_cell(
            g, s, slots["m"], slots["v"], slots["beta_hat"], slots["gamma_hat"]
        )
        rho = self.weight_cell(s)
        step = -self.alpha * (rho * candidates).sum(-1)
        return step, {"s": s, "c": c, "m": m, "v": v, "beta_hat": beta_hat, "gamma_hat": gamma_hat}
