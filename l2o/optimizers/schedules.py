"""Learning-rate schedules: functions of the number of updates already applied.

A schedule is passed wherever an optimizer takes ``learning_rate``; it is called
with ``count`` = 0 for the first update, 1 for the second, and so on.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int], float]


def constant(value: float) -> Schedule:
    return lambda count: value


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``init_value * gamma ** (count // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    return lambda count: init_value * gamma ** (count // step_size)


def cosine_decay(init_value: float, decay_steps: int, final_value: float = 0.0, warmup_steps: int = 0) -> Schedule:
    """Linear warm-up over ``warmup_steps``, then half a cosine from ``init_value``
    to ``final_value`` over ``decay_steps`` (Loshchilov & Hutter 2017, SGDR without
    restarts; ``CosineAnnealingLR`` when ``warmup_steps = 0``). Constant afterwards.
    """
    if decay_steps < 1:
        raise ValueError(f"decay_steps must be >= 1, got {decay_steps}")

    def schedule(count: int) -> float:
        if count < warmup_steps:
            return init_value * (count + 1) / warmup_steps
        t = min(count - warmup_steps, decay_steps)
        return final_value + 0.5 * (init_value - final_value) * (1 + math.cos(math.pi * t / decay_steps))

    return schedule


def linear_decay(init_value: float, final_value: float, transition_steps: int) -> Schedule:
    """Linear interpolation from ``init_value`` (count 0) to ``final_value`` (count
    ``transition_steps`` and after)."""
    if transition_steps < 1:
        raise ValueError(f"transition_steps must be >= 1, got {transition_steps}")

    def schedule(count: int) -> float:
        frac = min(count, transition_steps) / transition_steps
        return init_value + frac * (final_value - init_value)

    return schedule


def inverse_sqrt(init_value: float, warmup_steps: int = 0) -> Schedule:
    """Inverse square-root decay (Vaswani et al. 2017): with ``n = count + 1``,
    ``init_value / sqrt(n)`` without warm-up, else
    ``init_value * min(n / warmup, sqrt(warmup / n))`` (peak ``init_value`` at the
    end of the warm-up)."""

    def schedule(count: int) -> float:
        n = count + 1
        if warmup_steps <= 0:
            return init_value / math.sqrt(n)
        return init_value * min(n / warmup_steps, math.sqrt(warmup_steps / n))

    return schedule


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step": step_decay,
    "cosine": cosine_decay,
    "linear": linear_decay,
    "inverse_sqrt": inverse_sqrt,
}


def make_schedule(learning_rate: float, spec: dict | None) -> float | Schedule:
    """Build a schedule from a config mapping such as ``{"name": "cosine",
    "decay_steps": 100}``; the learning rate is its initial value."""
    if spec is None:
        return learning_rate
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid choices: {', '.join(sorted(SCHEDULES))}")
    try:
        return SCHEDULES[name](learning_rate, **spec)
    except TypeError as e:
        raise ValueError(f"bad arguments for schedule {name!r}: {e}") from None
