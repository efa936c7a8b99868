"""Hand-designed optimizers by name, as configs and the evaluation app refer to them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from l2o.checked_call import build
from l2o.optimizers.adaptive import adadelta, adagrad, adam, novograd, radam, rmsprop
from l2o.optimizers.base import GradientTransformation
from l2o.optimizers.lookahead import lookahead
from l2o.optimizers.schedules import make_schedule
from l2o.optimizers.sgd import momentum, nesterov, sgd


def lookahead_by_name(
    learning_rate: float = 1e-3,
    inner: str = "adam",
    sync_period: int = 5,
    alpha: float = 0.5,
    schedule: dict | None = None,
    **inner_hparams: Any,
) -> GradientTransformation:
    """Lookahead around the hand-designed optimizer ``inner`` (Adam by default, as in
    the paper's experiments); ``learning_rate`` is the inner optimizer's."""
    if inner == "lookahead":
        raise ValueError("lookahead cannot wrap lookahead")
    inner_opt = make_optimizer(inner, learning_rate=learning_rate, schedule=schedule, **inner_hparams)
    return lookahead(inner_opt, sync_period=sync_period, alpha=alpha)


HAND_DESIGNED: dict[str, Callable[..., GradientTransformation]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
    "radam": radam,
    "lookahead": lookahead_by_name,
    "novograd": novograd,
}


def make_optimizer(name: str, schedule: dict | None = None, **hparams: Any) -> GradientTransformation:
    """Build a hand-designed optimizer by name.

    Args:
        name: one of ``HAND_DESIGNED``.
        schedule: optional learning-rate schedule spec, e.g. ``{"name": "cosine",
            "decay_steps": 100}`` (see ``l2o.optimizers.schedules``).
        **hparams: the factory's keyword arguments (``learning_rate``, ``b1``, ...).

    Raises:
        ValueError: unknown name or hyper-parameter, naming the valid ones.
    """
    if name == "lookahead":
        hparams["schedule"] = schedule
    elif schedule is not None and name in HAND_DESIGNED:
        default_lr = inspect.signature(HAND_DESIGNED[name]).parameters["learning_rate"].default
        hparams["learning_rate"] = make_schedule(hparams.get("learning_rate", default_lr), schedule)
    return build("optimizer", name, HAND_DESIGNED, hparams)
