"""What every learned optimizer shares: the ``init``/``update`` interface over a
flat parameter vector with a leading batch of optimizee instances.

A learned optimizer is an ``nn.Module`` whose parameters are the meta-parameters.
It implements two methods on flat tensors::

    slots = opt.init_flat(x)                          # x: (B, N) -> dict of (B, N, ...) tensors
    step, slots = opt.step_flat(g, slots, count, x)   # g: (B, N) -> step (B, N): x_new = x + step

``B`` is the number of optimizee instances trained side by side (the meta-batch;
1 when used as an ordinary optimizer) and ``N`` the number of coordinates. On top
of these, ``init(params)`` / ``update(grads, state, params)`` give the interface
of the hand-designed optimizers (``dict[str, Tensor]``), so the evaluation code
treats learned and hand-designed optimizers alike. The module knows nothing of
how it is meta-trained (``l2o.meta``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from l2o.optimizers.base import Params


class LearnedState(NamedTuple):
    """``count``: updates applied; ``slots``: per-coordinate recurrent state, each
    (B, N, ...), B = 1 outside meta-training."""

    count: int
    slots: dict[str, Tensor]


def flatten(params: Params, batch_dims: int = 0) -> Tensor:
    """Concatenate the tensors of ``params`` (in dict order) into one vector per
    instance: (N,) for ``batch_dims=0``, (B, N) for stacked instances."""
    if batch_dims == 0:
        return torch.cat([p.reshape(-1) for p in params.values()])
    b = next(iter(params.values())).shape[0]
    return torch.cat([p.reshape(b, -1) for p in params.values()], dim=1)


def unflatten(vec: Tensor, like: Params, batch_dims: int = 0) -> Params:
    """Inverse of ``flatten``: views into ``vec`` shaped like ``like`` (whose
    tensors have no batch dimension)."""
    out, i = {}, 0
    lead = vec.shape[:batch_dims]
    for k, p in like.items():
        n = p.numel()
        out[k] = vec[..., i : i + n].reshape(*lead, *p.shape)
        i += n
    if i != vec.shape[-1]:
        raise ValueError(f"flat vector has {vec.shape[-1]} coordinates, the parameters {i}")
    return out


class LearnedOptimizer(nn.Module):
    """Base class. Subclasses set ``name`` and implement ``init_flat``,
    ``step_flat`` and ``reset_parameters(generator)``, and record their
    constructor arguments in ``self.config`` (to save and rebuild them)."""

    name = "learned"

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    # -- to implement -------------------------------------------------------------
    def init_flat(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def step_flat(self, g: Tensor, slots: dict[str, Tensor], count: int, x: Tensor) -> tuple[Tensor, dict]:
        raise NotImplementedError

    def reset_parameters(self, generator: torch.Generator) -> None:
        raise NotImplementedError

    # -- the shared optimizer interface -------------------------------------------
    def init(self, params: Params) -> LearnedState:
        x = flatten(params)[None]
        return LearnedState(0, self.init_flat(x))

    def update(self, grads: Params, state: LearnedState, params: Params | None = None):
        """One step for a single optimizee (``grads``/``params`` without batch dim)."""
        if params is None:
            raise ValueError(f"{self.name}.update needs params")
        g = flatten(grads)[None]
        x = flatten(params)[None]
        step, slots = self.step_flat(g, state.slots, state.count, x)
        return unflatten(step[0], grads), LearnedState(state.count + 1, slots)

    def num_meta_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def column_normalize(x: Tensor, eps: float = 1e-16) -> Tensor:
    """``x / sqrt(||x||^2 + eps)`` with the norm over the coordinates (dim 1) of
    each instance and feature: the normalisation of HyperAdam's AdamCell inputs."""
    return x * torch.rsqrt((x * x).sum(dim=1, keepdim=True) + eps)


def lstm_stack_slots(x: Tensor, hidden: int, layers: int) -> dict[str, Tensor]:
    """Zero ``h{i}``, ``c{i}`` states (B, N, hidden) of a coordinatewise LSTM stack."""
    z = x.new_zeros(*x.shape, hidden)
    return {f"{s}{i}": z for i in range(layers) for s in "hc"}


def run_lstm_stack(cells, inp: Tensor, slots: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Run stacked LSTM cells (``LSTMCellParams``) one step; returns the top hidden
    state and the new ``h{i}``, ``c{i}`` slots."""
    new = {}
    for i, cell in enumerate(cells):
        h, c = cell(inp, slots[f"h{i}"], slots[f"c{i}"])
        new[f"h{i}"], new[f"c{i}"] = h, c
        inp = h
    return inp, new
