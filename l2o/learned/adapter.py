"""A learned optimizer as a ``torch.optim.Optimizer`` for any ``nn.Module``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from l2o.learned.base import LearnedOptimizer, LearnedState


class LearnedOptimizerAdapter(torch.optim.Optimizer):
    """Train an ordinary model with a (meta-trained) learned optimizer::

        opt = LearnedOptimizerAdapter(model.parameters(), load_pretrained("hyperadam"))
        loss.backward(); opt.step(); opt.zero_grad()

    All parameters with a gradient are one flat vector for the learned optimizer
    (its recurrent state is per coordinate; HyperAdam also normalises by the norm
    of the whole gradient). The learned optimizer runs without autograd and its
    meta-parameters are not changed. ``state_dict``/``load_state_dict`` save and
    restore its recurrent state and step count.

    A parameter whose ``.grad`` is None in a step is treated as having a zero gradient.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], learned: LearnedOptimizer):
        super().__init__(params, defaults={})
        self.learned = learned.eval()
        for p in self.learned.parameters():
            p.requires_grad_(False)

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        x = torch.cat([p.reshape(-1) for p in params])[None]
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])[None]
        dtype = next(self.learned.parameters()).dtype
        if "learned" not in self.state:
            self.state["learned"] = {"count": 0, **self.learned.init_flat(x.to(dtype))}
        st = self.state["learned"]
        slots = {k: v for k, v in st.items() if k != "count"}
        step, slots = self.learned.step_flat(g.to(dtype), slots, st["count"], x.to(dtype))
        self.state["learned"] = {"count": st["count"] + 1, **slots}
        i = 0
        for p in params:
            n = p.numel()
            p.add_(step[0, i : i + n].reshape(p.shape).to(p.dtype))
            i += n
        return loss

    def learned_state(self) -> LearnedState:
        st = self.state["learned"]
        return LearnedState(st["count"], {k: v for k, v in st.items() if k != "count"})
