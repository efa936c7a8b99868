"""Optimizee tasks, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from l2o.checked_call import build
from l2o.tasks.base import Batch, Params, Task, seeded_generators
from l2o.tasks.mnist import MNISTCNNTask, MNISTMLPTask
from l2o.tasks.quadratic import QuadraticTask
from l2o.tasks.sine_lstm import SineLSTMTask


def _cnn(arch: str) -> Callable[..., Task]:
    def make(
        activation="relu",
        batch_norm=False,
        dropout=0.0,
        batch_size=128,
        data="subset",
        root=None,
        device="cpu",
        dtype=torch.float32,
    ):
        return MNISTCNNTask(
            arch,
            activation,
            batch_norm,
            dropout,
            batch_size=batch_size,
            data=data,
            root=root,
            device=device,
            dtype=dtype,
        )

    return make


TASKS: dict[str, Callable[..., Task]] = {
    "quadratic": QuadraticTask,
    "mnist_mlp": MNISTMLPTask,
    "mnist_cnn1": _cnn("cnn1"),
    "mnist_cnn2": _cnn("cnn2"),
    "sine_lstm": SineLSTMTask,
}


def make_task(name: str, **kwargs: Any) -> Task:
    """Build a task by name (``quadratic``, ``mnist_mlp``, ``mnist_cnn1``,
    ``mnist_cnn2``, ``sine_lstm``) with its keyword arguments (``device``, ``dtype``
    included).

    Raises:
        ValueError: unknown name or argument, listing the valid ones.
    """
    return build("task", name, TASKS, kwargs)


__all__ = [
    "Batch",
    "Params",
    "Task",
    "TASKS",
    "make_task",
    "seeded_generators",
    "QuadraticTask",
    "MNISTMLPTask",
    "MNISTCNNTask",
    "SineLSTMTask",
]
