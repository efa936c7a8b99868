"""An LSTM regressing the next value of a noisy sine wave (Lv et al. 2017, Section 4.3)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from l2o.cells import lstm_cell
from l2o.tasks.base import Batch, Params, Task


class SineLSTMTask(Task):
    """Predict ``f(10)`` from ``f(0), ..., f(9)`` for ``f(t) = A sin(w t + phi) + e_t``,
    ``A ~ U(0, 10)``, ``w ~ U(0, pi/2)``, ``phi ~ U(0, 2 pi)``, ``e_t ~ N(0, noise^2)``
    (noise 0.1, or 0.01 for the small-noise variant); an ``layers``-layer LSTM with
    ``hidden`` units, then a linear read-out of the last hidden state; MSE loss.

    Every batch is fresh data; ``evaluate`` uses fixed samples of ``eval_size``
    sequences drawn from the instance's generator (train) and a disjoint one (test).
    """

    name = "sine_lstm"

    def __init__(
        self,
        layers: int = 1,
        hidden: int = 20,
        noise: float = 0.1,
        batch_size: int = 128,
        seq_len: int = 10,
        eval_size: int = 1024,
        **kw,
    ):
        super().__init__(**kw)
        if layers not in (1, 2):
            raise ValueError(f"layers must be 1 or 2, got {layers}")
        if hidden < 1 or batch_size < 1 or seq_len < 1 or eval_size < 1:
            raise ValueError("hidden, batch_size, seq_len and eval_size must be >= 1")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.layers, self.hidden, self.noise = int(layers), int(hidden), float(noise)
        self.batch_size, self.seq_len, self.eval_size = int(batch_size), int(seq_len), int(eval_size)

    def _sequences(self, n: int, generator: torch.Generator) -> Batch:
        A = 10 * torch.rand(n, 1, generator=generator, dtype=torch.float64)
        w = (math.pi / 2) * torch.rand(n, 1, generator=generator, dtype=torch.float64)
        phi = 2 * math.pi * torch.rand(n, 1, generator=generator, dtype=torch.float64)
        t = torch.arange(self.seq_len + 1, dtype=torch.float64)
        f = A * torch.sin(w * t + phi) + self.noise * torch.randn(
            n, self.seq_len + 1, generator=generator, dtype=torch.float64
        )
        return {"x": self._to(f[:, : self.seq_len].unsqueeze(-1)), "y": self._to(f[:, self.seq_len])}

    def sample_problem(self, generator: torch.Generator) -> Batch:
        train, test = self._sequences(self.eval_size, generator), self._sequences(self.eval_size, generator)
        return {
            "eval_train_x": train["x"],
            "eval_train_y": train["y"],
            "eval_test_x": test["x"],
            "eval_test_y": test["y"],
        }

    def init_params(self, generator: torch.Generator) -> Params:
        H, k = self.hidden, 1 / math.sqrt(self.hidden)

        def uniform(*shape):
            return self._to((2 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 1) * k)

        p = {}
        for layer in range(self.layers):
            n_in = 1 if layer == 0 else H
            p[f"lstm{layer}.weight_ih"] = uniform(4 * H, n_in)
            p[f"lstm{layer}.weight_hh"] = uniform(4 * H, H)
            p[f"lstm{layer}.bias"] = uniform(4 * H)
        p["head.weight"] = uniform(1, H)
        p["head.bias"] = uniform(1)
        return p

    def sample_batch(self, problem: Batch, generator: torch.Generator) -> Batch:
        return self._sequences(self.batch_size, generator)

    def predict(self, params: Params, x: Tensor) -> Tensor:
        """``x``: (B, seq_len, 1) -> predictions (B,)."""
        B = x.shape[0]
        h = [x.new_zeros(B, self.hidden) for _ in range(self.layers)]
        c = [x.new_zeros(B, self.hidden) for _ in range(self.layers)]
        for t in range(x.shape[1]):
            inp = x[:, t]
            for layer in range(self.layers):
                h[layer], c[layer] = lstm_cell(
                    inp,
                    h[layer],
                    c[layer],
                    params[f"lstm{layer}.weight_ih"],
                    params[f"lstm{layer}.weight_hh"],
                    params[f"lstm{layer}.bias"],
                )
                inp = h[layer]
        return (inp @ params["head.weight"].T + params["head.bias"]).squeeze(-1)

    def loss(self, params: Params, batch: Batch) -> Tensor:
        return ((self.predict(params, batch["x"]) - batch["y"]) ** 2).mean()

    @torch.no_grad()
    def evaluate(self, params: Params, problem: Batch) -> dict[str, float]:
        return {
            "train_loss": float(self.loss(params, {"x": problem["eval_train_x"], "y": problem["eval_train_y"]})),
            "test_loss": float(self.loss(params, {"x": problem["eval_test_x"], "y": problem["eval_test_y"]})),
        }

    def config(self):
        return {
            "name": self.name,
            "layers": self.layers,
            "hidden": self.hidden,
            "noise": self.noise,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "eval_size": self.eval_size,
        }
