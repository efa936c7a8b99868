"""Lookahead: slow and fast weights around any inner optimizer."""

from __future__ import annotations

from typing import Any, NamedTuple

from l2o.optimizers.base import GradientTransformation, Optimizer, Params


class LookaheadState(NamedTuple):
    """``count``: fast steps taken; ``slow``: the slow weights phi; ``inner``: the
    inner optimizer's state (kept across synchronisations, as in the paper)."""

    count: int
    slow: Params
    inner: Any


def lookahead(inner: Optimizer, sync_period: int = 5, alpha: float = 0.5) -> GradientTransformation:
    """Lookahead (Zhang, Lucas, Hinton, Ba 2019), Algorithm 1, wrapping ``inner``.

    The fast weights theta take ``k = sync_period`` steps of the inner optimizer
    from the slow weights phi; then::

        phi_t = phi_{t-1} + alpha * (theta_{t,k} - phi_{t-1})
        theta_{t+1,0} = phi_t

    ``update`` returns the change of the fast weights, so ``apply_updates`` gives
    the fast weights after every step and the synchronised weights after every
    k-th. ``update`` needs ``params`` (the current fast weights).

    Args:
        inner: any optimizer with ``init``/``update`` (hand-designed or learned).
        sync_period: ``k``, fast steps between synchronisations.
        alpha: slow-weights step size in (0, 1].

    References:
        Zhang, Lucas, Hinton, Ba, "Lookahead Optimizer: k steps forward, 1 step
        back", NeurIPS 2019.
    """
    if int(sync_period) != sync_period or sync_period < 1:
        raise ValueError(f"sync_period must be a positive integer, got {sync_period!r}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")

    def init(params: Params) -> LookaheadState:
        return LookaheadState(0, dict(params), inner.init(params))

    def update(grads: Params, state: LookaheadState, params: Params | None = None):
        if params is None:
            raise ValueError("lookahead.update needs the current (fast) params")
        fast_updates, inner_state = inner.update(grads, state.inner, params)
        count = state.count + 1
        if count % sync_period:
            return fast_updates, LookaheadState(count, state.slow, inner_state)
        slow = {k: s + alpha * (params[k] + fast_updates[k] - s) for k, s in state.slow.items()}
        updates = {k: slow[k] - params[k] for k in params}
        return updates, LookaheadState(count, slow, inner_state)

    return GradientTransformation(init, update)
