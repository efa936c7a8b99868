"""The optimizee-task interface.

A task is a family of optimization problems. One run of an optimizer on a task,
for a seed, is::

    g_init, g_data = seeded_generators(seed)
    problem = task.sample_problem(g_init)      # instance data (a quadratic's W, y), else {}
    params = task.init_params(g_init)          # dict[str, Tensor]
    for t in range(T):
        batch = task.sample_batch(problem, g_data)
        loss = task.loss(params, batch)        # pure function of tensors (vmap-able)
        ...
    task.evaluate(params, problem)             # {'train_loss', 'test_loss'[, 'test_accuracy']}

Every random draw comes from the generators passed in, so a seed fixes the run,
and every optimizer run with the same seed sees the same problem, initial point
and mini-batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

Params = dict[str, Tensor]
Batch = dict[str, Tensor]


def seeded_generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Two independent CPU generators for one run: (problem and init, mini-batches)."""
    return (
        torch.Generator().manual_seed(2 * int(seed)),
        torch.Generator().manual_seed(2 * int(seed) + 1),
    )


class Task(ABC):
    """Base class of optimizee tasks.

    Attributes:
        name: the registry name.
        has_accuracy: ``evaluate`` reports ``test_accuracy``.
        device, dtype: where and in which precision parameters and data live.
    """

    name: str = "task"
    has_accuracy: bool = False

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.device = torch.device(device)
        self.dtype = dtype

    def sample_problem(self, generator: torch.Generator) -> Batch:
        """Instance data fixed for a whole run (none by default)."""
        return {}

    @abstractmethod
    def init_params(self, generator: torch.Generator) -> Params: ...

    @abstractmethod
    def sample_batch(self, problem: Batch, generator: torch.Generator) -> Batch: ...

    @abstractmethod
    def loss(self, params: Params, batch: Batch) -> Tensor:
        """The training objective on a batch: a scalar, differentiable in ``params``."""

    @abstractmethod
    def evaluate(self, params: Params, problem: Batch) -> dict[str, float]:
        """``train_loss`` (the objective on the whole training set, or a fixed large
        sample), ``test_loss`` and, where the task has one, ``test_accuracy``."""

    def config(self) -> dict[str, Any]:
        """The settings that define the task (for run records and caches)."""
        return {"name": self.name}

    def _to(self, x: Tensor) -> Tensor:
        return x.to(self.device, self.dtype if x.is_floating_point() else x.dtype)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.init_params(torch.Generator().manual_seed(0)).values())
