"""Several optimizee instances of a task as one flat (B, N) tensor, with the
meta-training tricks of RNNprop and HyperAdam."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import vmap

from l2o.learned.base import flatten, unflatten
from l2o.tasks.base import Batch, Task, seeded_generators


def _stack(dicts: list[Batch]) -> Batch:
    return {k: torch.stack([d[k] for d in dicts]) for k in dicts[0]}


class BatchedOptimizee:
    """B instances of ``task`` (one per seed), their parameters flattened into rows
    of a (B, N) tensor, and a loss that is a pure function of that tensor
    (``torch.func.vmap`` over the task's loss, so the instances run as one batched
    computation, not a Python loop).

    Tricks (each a switch):

    - random scaling (Lv et al. 2017, Section 3.3): with ``c ~ exp(U(-r, r))`` per
      coordinate, the objective is ``f(c * x)`` from ``x_0 = theta_0 / c``;
    - combination with a convex function (same section): ``convex_dim`` extra
      coordinates ``z`` (from 0) add ``mean(clip((c' * z - a)^2, 0, 10))`` to the
      loss, ``a ~ U(-1, 1)``, ``c' ~ exp(U(-r', r'))`` (r' = 1, as in the authors' code).

    Args:
        task: the optimizee task.
        seeds: one seed per instance (fixes problem, initial point, tricks, batches).
        random_scaling: r (0: off; 3 in RNNprop/HyperAdam).
        convex_dim: size of the convex term (0: off; 20 in the papers).
        convex_scaling: r' for the convex term's coordinates.
    """

    def __init__(
        self,
        task: Task,
        seeds: list[int],
        random_scaling: float = 0.0,
        convex_dim: int = 0,
        convex_scaling: float = 1.0,
    ):
        self.task, self.seeds = task, list(seeds)
        gens = [seeded_generators(s) for s in self.seeds]
        self.data_gens = [g[1] for g in gens]
        problems, inits = [], []
        for g_init, _ in gens:
            problems.append(task.sample_problem(g_init))
            inits.append(task.init_params(g_init))
        self.like = inits[0]
        self.problems = problems
        x0 = torch.stack([flatten(p) for p in inits])
        self.n = x0.shape[1]
        dev, dt = x0.device, x0.dtype

        def uniform(g, n, r):
            return (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * r

        self.scale = None
        if random_scaling > 0:
            self.scale = torch.stack([torch.exp(uniform(g[0], self.n, random_scaling)) for g in gens]).to(dev, dt)
            x0 = x0 / self.scale
        self.convex_dim = int(convex_dim)
        if self.convex_dim > 0:
            self.convex_target = torch.stack([uniform(g[0], self.convex_dim, 1.0) for g in gens]).to(dev, dt)
            self.convex_scale = torch.stack([torch.exp(uniform(g[0], self.convex_dim, convex_scaling)) for g in gens])
            self.convex_scale = self.convex_scale.to(dev, dt)
            x0 = torch.cat([x0, x0.new_zeros(len(self.seeds), self.convex_dim)], dim=1)
        self.x0 = x0
        self._loss = vmap(task.loss)

    def sample_batch(self) -> Batch:
        return _stack([self.task.sample_batch(p, g) for p, g in zip(self.problems, self.data_gens)])

    def losses(self, x: Tensor, batch: Batch) -> Tensor:
        """(B, N') -> (B,) losses of every instance."""
        theta = x[:, : self.n]
        if self.scale is not None:
            theta = theta * self.scale
        if theta.shape[0] == 1:  # one instance: vmap would only add overhead
            one = self.task.loss(unflatten(theta[0], self.like), {k: v[0] for k, v in batch.items()})
            out = one[None]
        else:
            out = self._loss(unflatten(theta, self.like, batch_dims=1), batch)
        if self.convex_dim > 0:
            z = x[:, self.n :] * self.convex_scale
            out = out + torch.clamp((z - self.convex_target) ** 2, 0.0, 10.0).mean(dim=1)
        return out
