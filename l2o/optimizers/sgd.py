"""Stochastic gradient descent with heavy-ball and Nesterov momentum."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from l2o.optimizers.base import (
    GradientTransformation,
    Params,
    ScalarOrSchedule,
    add_weight_decay,
    check_positive,
    check_unit_interval,
    resolve,
    zeros_like,
)


class SGDState(NamedTuple):
    """Attributes:
    count: number of updates applied so far.
    momentum: the velocity buffer ``b`` per parameter (empty when momentum is 0).
    """

    count: int
    momentum: Params


def sgd(
    learning_rate: ScalarOrSchedule = 0.1,
    momentum: float | Tensor = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """SGD, optionally with heavy-ball (Polyak 1964) or Nesterov momentum.

    With ``g_t`` the gradient (plus ``weight_decay * theta``)::

        b_t = mu * b_{t-1} + g_t                      (b_0 = 0)
        heavy ball:  theta_{t+1} = theta_t - lr * b_t
        Nesterov:    theta_{t+1} = theta_t - lr * (g_t + mu * b_t)

    This is the formulation of ``torch.optim.SGD`` (Sutskever et al. 2013 write
    Nesterov momentum as a look-ahead gradient; the two are equivalent up to a
    change of variables).

    Args:
        learning_rate: step size, a float, a tensor or a schedule ``count -> lr``.
        momentum: ``mu`` in [0, 1).
        nesterov: use Nesterov momentum (needs ``momentum > 0``).
        weight_decay: L2 penalty coefficient added to the gradient.

    Returns:
        A ``GradientTransformation``.

    Example:
        >>> opt = sgd(0.1, momentum=0.9)
        >>> state = opt.init(params)
        >>> updates, state = opt.update(grads, state, params)

    References:
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
        Sutskever, Martens, Dahl, Hinton, "On the importance of initialization and
        momentum in deep learning", ICML 2013.
    """
    check_positive("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    if nesterov and not (isinstance(momentum, Tensor) or momentum > 0):
        raise ValueError("nesterov=True needs momentum > 0")
    use_momentum = isinstance(momentum, Tensor) or momentum > 0

    def init(params: Params) -> SGDState:
        return SGDState(count=0, momentum=zeros_like(params) if use_momentum else {})

    def update(grads: Params, state: SGDState, params: Params | None = None):
        lr = resolve(learning_rate, state.count)
        grads = add_weight_decay(grads, params, weight_decay)
        if not use_momentum:
            return {k: -lr * g for k, g in grads.items()}, SGDState(state.count + 1, {})
        buf = {k: momentum * state.momentum[k] + g for k, g in grads.items()}
        if nesterov:
            direction = {k: g + momentum * buf[k] for k, g in grads.items()}
        else:
            direction = buf
        updates = {k: -lr * d for k, d in direction.items()}
        return updates, SGDState(state.count + 1, buf)

    return GradientTransformation(init, update)


def momentum(learning_rate: ScalarOrSchedule = 0.01, beta: float = 0.9, weight_decay: float = 0.0):
    """Heavy-ball momentum: ``sgd(learning_rate, momentum=beta)``."""
    return sgd(learning_rate, momentum=beta, weight_decay=weight_decay)


def nesterov(learning_rate: ScalarOrSchedule = 0.01, beta: float = 0.9, weight_decay: float = 0.0):
    """Nesterov momentum: ``sgd(learning_rate, momentum=beta, nesterov=True)``."""
    return sgd(learning_rate, momentum=beta, nesterov=True, weight_decay=weight_decay)
