"""Hand-designed optimizers with the shared ``init``/``update`` interface."""

from l2o.optimizers.adaptive import adadelta, adagrad, adam, novograd, radam, rmsprop
from l2o.optimizers.base import GradientTransformation, Optimizer, Params, apply_updates
from l2o.optimizers.lookahead import lookahead
from l2o.optimizers.registry import HAND_DESIGNED, make_optimizer
from l2o.optimizers.schedules import (
    constant,
    cosine_decay,
    inverse_sqrt,
    linear_decay,
    make_schedule,
    step_decay,
)
from l2o.optimizers.sgd import momentum, nesterov, sgd

__all__ = [
    "GradientTransformation",
    "Optimizer",
    "Params",
    "apply_updates",
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "radam",
    "lookahead",
    "novograd",
    "HAND_DESIGNED",
    "make_optimizer",
    "constant",
    "step_decay",
    "cosine_decay",
    "linear_decay",
    "inverse_sqrt",
    "make_schedule",
]
