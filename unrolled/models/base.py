"""Unrolled networks: an initial state, a list of stages, an output."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as grad_checkpoint

State = tuple[Tensor, ...]


class UnrolledModel(nn.Module):
    """K stages of an iterative algorithm, called as ``model(y, physics)``.

    Subclasses define ``init_state(y, physics)``, ``self.stages`` (an
    ``nn.ModuleList`` whose items map ``(state, y, physics) -> state``) and
    ``output(state, y, physics)``. A trainer can then run the model end to end,
    with per-stage gradient checkpointing, or stage by stage, without knowing the
    model (``run`` below).
    """

    stages: nn.ModuleList

    def init_state(self, y: Tensor, physics: Any) -> State:
        raise NotImplementedError

    def output(self, state: State, y: Tensor, physics: Any) -> Tensor:
        raise NotImplementedError

    def run(
        self,
        y: Tensor,
        physics: Any,
        num_stages: int | None = None,
        checkpoint: bool = False,
        state: State | None = None,
        start: int = 0,
    ) -> State:
        """The state after stages ``start .. num_stages - 1`` (from ``init_state`` when
        ``state`` is None). ``checkpoint=True`` recomputes each stage's activations in
        the backward pass instead of storing them (memory flat in the depth)."""
        if state is None:
            state = self.init_state(y, physics)
        end = len(self.stages) if num_stages is None else num_stages
        for stage in self.stages[start:end]:
            if checkpoint and torch.is_grad_enabled():
                state = grad_checkpoint(stage, state, y, physics, use_reentrant=False)
            else:
                state = stage(state, y, physics)
        return state

    def forward(self, y: Tensor, physics: Any, num_stages: int | None = None, checkpoint: bool = False) -> Tensor:
        return self.output(self.run(y, physics, num_stages, checkpoint), y, physics)
