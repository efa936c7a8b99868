"""The optimizer interface shared by every optimizer, hand-designed or learned.

An optimizer is a pair of pure functions (the optax convention)::

    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

Parameters, gradients and updates are flat ``dict[str, Tensor]`` (the
``torch.func.functional_call`` convention). Nothing is modified in place, so an
update built from tensors that require grad (a learning rate being meta-learned,
or gradients in a second-order meta-gradient) keeps its autograd graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

Params = dict[str, Tensor]
Updates = dict[str, Tensor]
# A hyper-parameter may be a Python float, a tensor (possibly requiring grad) or a
# schedule: a function of the number of updates already applied (0 for the first).
Schedule = Callable[[int], "float | Tensor"]
ScalarOrSchedule = "float | Tensor | Schedule"


@runtime_checkable
class Optimizer(Protocol):
    """Anything with ``init(params) -> state`` and ``update(grads, state, params)``."""

    def init(self, params: Params) -> Any: ...

    def update(self, grads: Params, state: Any, params: Params | None = None) -> tuple[Updates, Any]: ...


class GradientTransformation(NamedTuple):
    """A hand-designed optimizer: the two pure functions returned by a factory.

    Attributes:
        init: ``init(params) -> state``.
        update: ``update(grads, state, params=None) -> (updates, state)``.
    """

    init: Callable[[Params], Any]
    update: Callable[..., tuple[Updates, Any]]


def apply_updates(params: Params, updates: Updates, inplace: bool = False) -> Params:
    """Return ``{name: params[name] + updates[name]}``.

    With ``inplace=True`` the parameters are overwritten (``p.add_(u)``) and
    returned, for non-differentiated use under ``torch.no_grad()``.

    Raises:
        KeyError: if ``updates`` misses a parameter or names one not in ``params``.
    """
    if params.keys() != updates.keys():
        missing = sorted(set(params) - set(updates))
        extra = sorted(set(updates) - set(params))
        raise KeyError(f"updates must have the parameters' keys; missing {missing}, unexpected {extra}")
    if inplace:
        return {k: p.add_(updates[k]) for k, p in params.items()}
    return {k: p + updates[k] for k, p in params.items()}


def resolve(value: ScalarOrSchedule, count: int) -> float | Tensor:
    """Evaluate a hyper-parameter that may be a schedule at update number ``count``."""
    if callable(value):
        return value(count)
    return value


def zeros_like(params: Params) -> Params:
    return {k: torch.zeros_like(p) for k, p in params.items()}


def add_weight_decay(grads: Params, params: Params | None, weight_decay: float) -> Params:
    """L2 weight decay added to the gradient (the ``torch.optim`` convention)."""
    if weight_decay == 0:
        return grads
    if params is None:
        raise ValueError("weight_decay != 0 needs `params` in update(grads, state, params)")
    return {k: g + weight_decay * params[k] for k, g in grads.items()}


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    if isinstance(value, Tensor) or callable(value):
        return
    if not (value > 0 or (allow_zero and value == 0)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def check_unit_interval(name: str, value: Any) -> None:
    if isinstance(value, Tensor):
        return
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
