"""Random quadratics, the first task of Andrychowicz et al. (2016)."""

from __future__ import annotations

import torch
from torch import Tensor

from l2o.tasks.base import Batch, Params, Task


class QuadraticTask(Task):
    """``f(theta) = ||W theta - y||^2`` with ``W`` (d x d) and ``y`` (d) drawn from
    N(0, 1) per instance, ``d = 10`` (Andrychowicz et al. 2016, Section 3.1).

    The initial point is ``theta_0 ~ N(0, init_std^2)`` (0.01 in the authors' code).
    There is no data sampling: every "batch" is the instance itself.
    """

    name = "quadratic"

    def __init__(self, dim: int = 10, init_std: float = 0.01, **kw):
        super().__init__(**kw)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.init_std = int(dim), float(init_std)

    def sample_problem(self, generator: torch.Generator) -> Batch:
        W = torch.randn(self.dim, self.dim, generator=generator, dtype=torch.float64)
        y = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        return {"W": self._to(W), "y": self._to(y)}

    def init_params(self, generator: torch.Generator) -> Params:
        theta = self.init_std * torch.randn(self.dim, generator=generator, dtype=torch.float64)
        return {"theta": self._to(theta)}

    def sample_batch(self, problem: Batch, generator: torch.Generator) -> Batch:
        return problem

    def loss(self, params: Params, batch: Batch) -> Tensor:
        r = batch["W"] @ params["theta"] - batch["y"]
        return (r * r).sum()

    def evaluate(self, params: Params, problem: Batch) -> dict[str, float]:
        with torch.no_grad():
            value = float(self.loss(params, problem))
        return {"train_loss": value, "test_loss": value}

    def config(self):
        return {"name": self.name, "dim": self.dim, "init_std": self.init_std}
