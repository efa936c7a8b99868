"""Optimizers with per-coordinate (or per-layer) adaptive step sizes.

AdaGrad, AdaDelta, RMSProp, Adam, RAdam and NovoGrad, each written from its
paper's equations in the formulation of ``torch.optim`` where torch has one (the
tests check 100-step trajectories against ``torch.optim`` in float64).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
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


def ema(average: Tensor, value: Tensor, decay: float | Tensor) -> Tensor:
    """Exponential moving average ``decay * average + (1 - decay) * value``.

    A float decay takes one fused ``lerp`` kernel; a tensor decay (possibly being
    meta-learned) takes the plain expression, which autograd differentiates in it.
    """
    if isinstance(decay, Tensor):
        return decay * average + (1 - decay) * value
    return torch.lerp(average, value, 1 - decay)


class AdaGradState(NamedTuple):
    """``count``: updates applied; ``sum_sq``: running sum of squared gradients."""

    count: int
    sum_sq: Params


def adagrad(
    learning_rate: ScalarOrSchedule = 0.01,
    lr_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """AdaGrad (Duchi, Hazan, Singer 2011)::

        G_t = G_{t-1} + g_t^2
        theta_{t+1} = theta_t - lr_t * g_t / (sqrt(G_t) + eps),  lr_t = lr / (1 + (t-1) * lr_decay)

    Args:
        learning_rate: base step size (float, tensor or schedule).
        lr_decay: ``torch.optim.Adagrad``'s step-size decay.
        initial_accumulator_value: initial value of ``G``.
        eps: added to the denominator.
        weight_decay: L2 penalty coefficient.

    References:
        Duchi, Hazan, Singer, "Adaptive Subgradient Methods for Online Learning and
        Stochastic Optimization", JMLR 2011.
    """
    check_positive("learning_rate", learning_rate)
    check_positive("initial_accumulator_value", initial_accumulator_value, allow_zero=True)

    def init(params: Params) -> AdaGradState:
        return AdaGradState(0, {k: torch.full_like(p, initial_accumulator_value) for k, p in params.items()})

    def update(grads: Params, state: AdaGradState, params: Params | None = None):
        grads = add_weight_decay(grads, params, weight_decay)
        lr = resolve(learning_rate, state.count) / (1 + state.count * lr_decay)
        sum_sq = {k: state.sum_sq[k] + g * g for k, g in grads.items()}
        updates = {k: -lr * g / (sum_sq[k].sqrt() + eps) for k, g in grads.items()}
        return updates, AdaGradState(state.count + 1, sum_sq)

    return GradientTransformation(init, update)


class AdaDeltaState(NamedTuple):
    """``square_avg``: EMA of g^2; ``acc_delta``: EMA of squared updates."""

    count: int
    square_avg: Params
    acc_delta: Params


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """AdaDelta (Zeiler 2012), Algorithm 1::

        E[g^2]_t  = rho E[g^2]_{t-1} + (1 - rho) g_t^2
        dx_t      = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t
        E[dx^2]_t = rho E[dx^2]_{t-1} + (1 - rho) dx_t^2
        theta_{t+1} = theta_t - lr * dx_t                      (lr = 1 in the paper)

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.
    """
    check_positive("learning_rate", learning_rate)
    check_unit_interval("rho", rho)

    def init(params: Params) -> AdaDeltaState:
        return AdaDeltaState(0, zeros_like(params), zeros_like(params))

    def update(grads: Params, state: AdaDeltaState, params: Params | None = None):
        grads = add_weight_decay(grads, params, weight_decay)
        lr = resolve(learning_rate, state.count)
        square_avg, acc_delta, updates = {}, {}, {}
        for k, g in grads.items():
            sq = rho * state.square_avg[k] + (1 - rho) * g * g
            delta = (state.acc_delta[k] + eps).sqrt() / (sq + eps).sqrt() * g
            square_avg[k] = sq
            acc_delta[k] = rho * state.acc_delta[k] + (1 - rho) * delta * delta
            updates[k] = -lr * delta
        return updates, AdaDeltaState(state.count + 1, square_avg, acc_delta)

    return GradientTransformation(init, update)


class RMSPropState(NamedTuple):
    """``square_avg``: EMA of g^2; ``grad_avg``: EMA of g (centered only);
    ``momentum``: velocity buffer (momentum > 0 only)."""

    count: int
    square_avg: Params
    grad_avg: Params
    momentum: Params


def rmsprop(
    learning_rate: ScalarOrSchedule = 0.01,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """RMSProp (Tieleman & Hinton 2012, lecture 6.5)::

        v_t = alpha v_{t-1} + (1 - alpha) g_t^2
        centered:  v_t <- v_t - (EMA of g)^2      (Graves 2013)
        theta_{t+1} = theta_t - lr * g_t / (sqrt(v_t) + eps)
        with momentum mu: b_t = mu b_{t-1} + g_t / (sqrt(v_t) + eps); theta -= lr * b_t

    References:
        Tieleman, Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for
        Machine Learning, 2012. Graves, "Generating sequences with recurrent neural
        networks", arXiv:1308.0850, 2013.
    """
    check_positive("learning_rate", learning_rate)
    check_unit_interval("alpha", alpha)
    check_unit_interval("momentum", momentum)

    def init(params: Params) -> RMSPropState:
        return RMSPropState(
            0,
            zeros_like(params),
            zeros_like(params) if centered else {},
            zeros_like(params) if momentum > 0 else {},
        )

    def update(grads: Params, state: RMSPropState, params: Params | None = None):
        grads = add_weight_decay(grads, params, weight_decay)
        lr = resolve(learning_rate, state.count)
        square_avg, grad_avg, buf, updates = {}, {}, {}, {}
        for k, g in grads.items():
            sq = alpha * state.square_avg[k] + (1 - alpha) * g * g
            square_avg[k] = sq
            if centered:
                ga = alpha * state.grad_avg[k] + (1 - alpha) * g
                grad_avg[k] = ga
                avg = (sq - ga * ga).sqrt() + eps
            else:
                avg = sq.sqrt() + eps
            if momentum > 0:
                buf[k] = momentum * state.momentum[k] + g / avg
                updates[k] = -lr * buf[k]
            else:
                updates[k] = -lr * g / avg
        return updates, RMSPropState(state.count + 1, square_avg, grad_avg, buf)

    return GradientTransformation(init, update)


class AdamState(NamedTuple):
    """``mu``: first-moment EMA m; ``nu``: second-moment EMA v (both uncorrected)."""

    count: int
    mu: Params
    nu: Params


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float | Tensor = 0.9,
    b2: float | Tensor = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    inplace: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015), Algorithm 1, with exponential moving averages and
    bias correction::

        m_t = b1 m_{t-1} + (1 - b1) g_t
        v_t = b2 v_{t-1} + (1 - b2) g_t^2
        theta_{t+1} = theta_t - lr / (1 - b1^t) * m_t / (sqrt(v_t) / sqrt(1 - b2^t) + eps)

    (``eps`` is added after the bias correction of ``v``, as in ``torch.optim.Adam``.)

    Args:
        learning_rate: step size (float, tensor or schedule).
        b1, b2: decay rates of the first and second moments (may be tensors that
            require grad, for meta-learning).
        eps: numerical-stability term.
        weight_decay: L2 penalty coefficient added to the gradient.
        inplace: overwrite the state's moment buffers and reuse temporaries, as
            ``torch.optim.Adam`` does. Several times faster for large models on
            CPU (no fresh buffers per step), but the previous state is destroyed and
            nothing can be differentiated through the update; use it with
            ``apply_updates(..., inplace=True)`` under ``torch.no_grad()``.

    Example:
        >>> opt = adam(1e-3)
        >>> state = opt.init(params)
        >>> updates, state = opt.update(grads, state)
        >>> params = apply_updates(params, updates)

    References:
        Kingma, Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    check_positive("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    if inplace and (isinstance(b1, Tensor) or isinstance(b2, Tensor)):
        raise ValueError("inplace=True is for plain (non-differentiated) use: b1 and b2 must be floats")

    def init(params: Params) -> AdamState:
        return AdamState(0, zeros_like(params), zeros_like(params))

    def update(grads: Params, state: AdamState, params: Params | None = None):
        grads = add_weight_decay(grads, params, weight_decay)
        t = state.count + 1
        lr = resolve(learning_rate, state.count)
        step_size = lr / (1 - b1**t)
        bc2_sqrt = (1 - b2**t) ** 0.5
        mu, nu, updates = {}, {}, {}
        for k, g in grads.items():
            if inplace:
                m = state.mu[k].lerp_(g, 1 - b1)
                v = state.nu[k].mul_(b2).addcmul_(g, g, value=1 - b2)
                # -step_size folded into the denominator: one pass fewer
                denom = v.sqrt().mul_(-1 / (step_size * bc2_sqrt)).add_(-eps / step_size)
                updates[k] = torch.div(m, denom, out=denom)
            else:
                m = ema(state.mu[k], g, b1)
                v = b2 * state.nu[k] + (1 - b2) * g * g
                updates[k] = -step_size * m / (v.sqrt() / bc2_sqrt + eps)
            mu[k], nu[k] = m, v
        return updates, AdamState(t, mu, nu)

    return GradientTransformation(init, update)


def radam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    rectify_threshold: float = 4.0,
) -> GradientTransformation:
    """Rectified Adam (Liu et al. 2020), Algorithm 2::

        m_t, v_t as in Adam;   m_hat = m_t / (1 - b1^t)
        rho_inf = 2 / (1 - b2) - 1
        rho_t   = rho_inf - 2 t b2^t / (1 - b2^t)
        if rho_t > threshold:
            r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            l_t = sqrt(1 - b2^t) / (sqrt(v_t) + eps)
            theta_{t+1} = theta_t - lr * r_t * m_hat * l_t
        else:
            theta_{t+1} = theta_t - lr * m_hat          (un-adapted momentum SGD)

    The paper's Algorithm 2 rectifies when ``rho_t > 4`` (the default here); the
    authors' code and ``torch.optim.RAdam`` use ``rho_t > 5``
    (``rectify_threshold=5``). With b2 = 0.999 the two differ only at t = 5.

    References:
        Liu, Jiang, He, Chen, Liu, Gao, Han, "On the Variance of the Adaptive
        Learning Rate and Beyond", ICLR 2020.
    """
    check_positive("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    if rectify_threshold < 4:
        raise ValueError(f"rectify_threshold must be >= 4 (r_t is undefined below), got {rectify_threshold}")
    rho_inf = 2 / (1 - b2) - 1

    def init(params: Params) -> AdamState:
        return AdamState(0, zeros_like(params), zeros_like(params))

    def update(grads: Params, state: AdamState, params: Params | None = None):
        grads = add_weight_decay(grads, params, weight_decay)
        t = state.count + 1
        lr = resolve(learning_rate, state.count)
        bc1 = 1 - b1**t
        bc2 = 1 - b2**t
        rho_t = rho_inf - 2 * t * b2**t / bc2
        rect = None
        if rho_t > rectify_threshold:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        mu, nu, updates = {}, {}, {}
        for k, g in grads.items():
            m = ema(state.mu[k], g, b1)
            v = b2 * state.nu[k] + (1 - b2) * g * g
            mu[k], nu[k] = m, v
            m_hat = m / bc1
            if rect is None:
                updates[k] = -(m_hat * lr)
            else:
                updates[k] = -(m_hat * lr * (bc2**0.5 / (v.sqrt() + eps)) * rect)
        return updates, AdamState(t, mu, nu)

    return GradientTransformation(init, update)


class NovoGradState(NamedTuple):
    """``mu``: first moment per coordinate; ``nu``: second moment per layer (a scalar
    per parameter tensor)."""

    count: int
    mu: Params
    nu: Params


def novograd(
    learning_rate: ScalarOrSchedule = 0.01,
    b1: float = 0.95,
    b2: float = 0.98,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    grad_averaging: bool = False,
) -> GradientTransformation:
    """NovoGrad (Ginsburg et al. 2019), Algorithm 1: a layer-wise second moment.

    For each layer (here: each parameter tensor) ``l``::

        v^l_t = ||g^l_t||^2                                      t = 1
        v^l_t = b2 v^l_{t-1} + (1 - b2) ||g^l_t||^2              t > 1
        m^l_t = b1 m^l_{t-1} + c * (g^l_t / (sqrt(v^l_t) + eps) + d w^l_t),  m_0 = 0
        w^l_{t+1} = w^l_t - lr * m^l_t

    with ``c = 1`` as in the paper, or ``c = 1 - b1`` with ``grad_averaging=True``
    (the option of NVIDIA's implementation). ``d`` is ``weight_decay``, applied to
    the normalised gradient (decoupled from the second moment).

    References:
        Ginsburg, Castonguay, Hrinchuk, Kuchaiev, Lavrukhin, Leary, Li, Nguyen,
        Zhang, Cohen, "Stochastic Gradient Methods with Layer-wise Adaptive Moments
        for Training of Deep Networks", arXiv:1905.11286, 2019.
    """
    check_positive("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)

    def init(params: Params) -> NovoGradState:
        return NovoGradState(0, zeros_like(params), {k: p.new_zeros(()) for k, p in params.items()})

    def update(grads: Params, state: NovoGradState, params: Params | None = None):
        if weight_decay != 0 and params is None:
            raise ValueError("weight_decay != 0 needs `params` in update(grads, state, params)")
        lr = resolve(learning_rate, state.count)
        c = (1 - b1) if grad_averaging else 1.0
        mu, nu, updates = {}, {}, {}
        for k, g in grads.items():
            sq_norm = (g * g).sum()
            v = sq_norm if state.count == 0 else b2 * state.nu[k] + (1 - b2) * sq_norm
            direction = g / (v.sqrt() + eps)
            if weight_decay != 0:
                direction = direction + weight_decay * params[k]
            m = b1 * state.mu[k] + c * direction
            mu[k], nu[k] = m, v
            updates[k] = -lr * m
        return updates, NovoGradState(state.count + 1, mu, nu)

    return GradientTransformation(init, update)
