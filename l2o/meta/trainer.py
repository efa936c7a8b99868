"""Meta-training by meta-gradients through unrolled optimizee training, with
truncated back-propagation.

The trainer knows a learned optimizer only through ``init_flat``/``step_flat``
and its ``parameters()``; the learned optimizer knows nothing of the trainer.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from l2o.checked_call import check_positive_int
from l2o.evaluation import evaluate_optimizer
from l2o.learned.base import LearnedOptimizer
from l2o.meta.optimizee import BatchedOptimizee
from l2o.tasks.base import Task

log = logging.getLogger(__name__)

META_LOSSES = ("sum", "mean", "last")
LR_SCHEDULES = ("constant", "cosine")
TRAIN_SEED_BASE = 100_000_000  # optimizee seeds of meta-training: disjoint from evaluation (0..),
VALIDATION_SEED_BASE = 2_000_000  # learning-rate tuning (1,000,000..) and validation seeds


@dataclass
class MetaTrainConfig:
    """Meta-training settings.

    Attributes:
        unroll: T, optimizee steps per truncation (one meta-gradient step each).
        truncations: truncations per episode; the horizon is ``unroll * truncations``.
        meta_batch: optimizee instances trained side by side in each episode.
        meta_loss: ``sum``, ``mean`` or ``last`` of the optimizee losses (mean over
            instances) after each update of a truncation.
        second_order: differentiate through the optimizee gradients too (default:
            first order, gradients detached, as in Andrychowicz et al. 2016).
        random_scaling: r of the random-scaling trick (0: off).
        convex_dim: size of the convex term combined with the loss (0: off).
        lr: the meta-optimizer's (Adam) learning rate (at the first episode).
        lr_schedule: ``constant``, or ``cosine``: the learning rate of episode e is
            ``lr_min + (lr - lr_min) * (1 + cos(pi * min(e, lr_episodes) / lr_episodes)) / 2``.
        lr_min: the cosine schedule's final learning rate.
        lr_episodes: the cosine schedule's length in episodes (the app sets it to
            ``episodes``); required for ``cosine``.
        grad_clip: clip the meta-gradient to this global norm (0: off).
        seed: selects the optimizee instances of every episode.
        compile: run the learned optimizer's step through ``torch.compile``
            (compiles on the first episode; about 20% faster on CPU for DM).
    """

    unroll: int = 20
    truncations: int = 5
    meta_batch: int = 1
    meta_loss: str = "mean"
    second_order: bool = False
    random_scaling: float = 0.0
    convex_dim: int = 0
    lr: float = 1e-3
    lr_schedule: str = "constant"
    lr_min: float = 0.0
    lr_episodes: int = 0
    grad_clip: float = 1.0
    seed: int = 0
    compile: bool = False

    def __post_init__(self):
        if self.meta_loss not in META_LOSSES:
            raise ValueError(f"unknown meta_loss {self.meta_loss!r}; valid choices: {', '.join(META_LOSSES)}")
        for name in ("unroll", "truncations", "meta_batch"):
            check_positive_int(name, getattr(self, name))
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; valid choices: {', '.join(LR_SCHEDULES)}")
        if self.lr_schedule == "constant":
            self.lr_episodes = 0  # unused: resuming with more episodes stays allowed
        else:
            check_positive_int("lr_episodes", self.lr_episodes)
            if not 0 <= self.lr_min <= self.lr:
                raise ValueError(f"lr_min must be in [0, lr={self.lr}], got {self.lr_min}")

    def lr_at(self, episode: int) -> float:
        """The meta-learning rate of ``episode`` (0-based) under the schedule."""
        if self.lr_schedule == "constant":
            return self.lr
        frac = min(episode, self.lr_episodes) / self.lr_episodes
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass
class EpisodeLog:
    episode: int
    meta_losses: list[float] = field(default_factory=list)
    final_loss: float = math.nan
    seconds: float = 0.0
    seconds_per_meta_iteration: float = 0.0
    skipped: int = 0


def reduce_meta_loss(terms: list[Tensor], how: str) -> Tensor:
    if how == "sum":
        return torch.stack(terms).sum()
    if how == "mean":
        return torch.stack(terms).mean()
    return terms[-1]


class _MeanWithKnownGradient(torch.autograd.Function):
    """``losses.mean()`` of losses (n,) that a function of ``x`` (n, N) computed
    outside the graph, with the gradient of ``losses.sum()`` at ``x``, ``g``, given:
    the backward is ``grad * g / n``. First-order meta-training differentiates each
    optimizee loss only through ``x`` and needs exactly the gradient it already
    computed for the next update, so the optimizee's graph is neither kept nor
    back-propagated a second time."""

    @staticmethod
    def forward(ctx, x: Tensor, losses: Tensor, g: Tensor) -> Tensor:
        ctx.save_for_backward(g)
        ctx.n = losses.numel()
        return losses.mean()

    @staticmethod
    def backward(ctx, grad: Tensor):
        (g,) = ctx.saved_tensors
        return g * (grad / ctx.n), None, None


def unrolled_meta_loss(
    learned: LearnedOptimizer,
    optimizee: BatchedOptimizee,
    x: Tensor,
    slots: dict[str, Tensor],
    count: int,
    g: Tensor,
    unroll: int,
    meta_loss: str = "mean",
    second_order: bool = False,
    step_fn=None,
) -> tuple[Tensor, Tensor, dict[str, Tensor], int, Tensor, list[float]]:
    """Unroll ``unroll`` steps of the learned optimizer from (x, slots, g) inside the
    autograd graph.

    The meta-loss reduces ``mean_b f_b(x_t)`` over t = 1..T (after each update);
    the gradient of each of those losses drives the next update. With
    ``second_order=False`` the gradients are detached (their dependence on the
    meta-parameters is dropped); otherwise they stay in the graph. ``step_fn``
    replaces ``learned.step_flat`` (e.g. a compiled version of it).

    Returns:
        meta-loss, and the state after the truncation (x, slots, count, g) and the
        per-step mean losses as floats.
    """
    step_fn = step_fn or learned.step_flat
    terms, values = [], []
    for _ in range(unroll):
        step, slots = step_fn(g, slots, count, x)
        count += 1
        x = x + step
        if not x.requires_grad:  # only when the update does not depend on the meta-parameters
            x = x.detach().requires_grad_(True)
        batch = optimizee.sample_batch()
        if second_order:
            losses = optimizee.losses(x, batch)
            (g,) = torch.autograd.grad(losses.sum(), x, create_graph=True, retain_graph=True)
            terms.append(losses.mean())
        else:
            point = x.detach().requires_grad_(True)
            losses = optimizee.losses(point, batch)
            (g,) = torch.autograd.grad(losses.sum(), point)
            terms.append(_MeanWithKnownGradient.apply(x, losses.detach(), g))
        values.append(float(terms[-1].detach()))
    return reduce_meta_loss(terms, meta_loss), x, slots, count, g, values


class MetaTrainer:
    """Truncated meta-training of ``learned`` on ``task``.

    One *episode* trains ``meta_batch`` fresh optimizee instances for the whole
    horizon; each of its ``truncations`` is one *meta-iteration*: unroll T steps,
    back-propagate the meta-loss to the meta-parameters, take an Adam step, and
    carry the optimizee parameters and the optimizer state (detached) into the
    next truncation.

    A non-finite meta-loss or meta-gradient skips the meta-step, restores the
    meta-parameters and Adam state of the last good step, logs it and ends the
    episode (its optimizee state is no longer usable).
    """

    def __init__(self, learned: LearnedOptimizer, task: Task, config: MetaTrainConfig):
        self.learned, self.task, self.cfg = learned, task, config
        self.meta_opt = torch.optim.Adam(learned.parameters(), lr=config.lr)
        self.episode = 0
        self.history: list[dict[str, Any]] = []
        self.validation: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"validation_loss": math.inf, "episode": None, "state_dict": None}
        self.skipped_total = 0
        self._last_good = self._snapshot()
        self._step_fn = torch.compile(learned.step_flat, dynamic=None) if config.compile else learned.step_flat

    # -- one episode ---------------------------------------------------------------
    def episode_seeds(self, episode: int) -> list[int]:
        base = TRAIN_SEED_BASE + self.cfg.seed * 10_000_000 + episode * self.cfg.meta_batch
        return list(range(base, base + self.cfg.meta_batch))

    def make_optimizee(self, episode: int) -> BatchedOptimizee:
        return BatchedOptimizee(self.task, self.episode_seeds(episode), self.cfg.random_scaling, self.cfg.convex_dim)

    def run_episode(self) -> EpisodeLog:
        cfg = self.cfg
        start = time.perf_counter()
        entry = EpisodeLog(self.episode)
        optimizee = self.make_optimizee(self.episode)
        for group in self.meta_opt.param_groups:
            group["lr"] = cfg.lr_at(self.episode)
        self.learned.train()
        x = optimizee.x0.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(optimizee.losses(x, optimizee.sample_batch()).sum(), x)
        x = x.detach()
        slots = self.learned.init_flat(x)
        count = 0
        iter_times = []
        for _ in range(cfg.truncations):
            t0 = time.perf_counter()
            meta_loss, x, slots, count, g, values = unrolled_meta_loss(
                self.learned, optimizee, x, slots, count, g, cfg.unroll, cfg.meta_loss, cfg.second_order, self._step_fn
            )
            self.meta_opt.zero_grad(set_to_none=True)
            ok = math.isfinite(float(meta_loss.detach()))
            if ok:
                meta_loss.backward()
                grads = [p.grad for p in self.learned.parameters() if p.grad is not None]
                ok = all(bool(torch.isfinite(gr).all()) for gr in grads)
            if not ok:
                self._restore(self._last_good)
                entry.skipped += 1
                self.skipped_total += 1
                log.warning(
                    "episode %d: non-finite meta-loss or meta-gradient; skipped the meta-step, restored the "
                    "last good meta-parameters and ended the episode",
                    self.episode,
                )
                break
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.learned.parameters(), cfg.grad_clip)
            self.meta_opt.step()
            self._last_good = self._snapshot()
            entry.meta_losses.append(float(meta_loss.detach()))
            entry.final_loss = values[-1]
            x, g = x.detach(), g.detach()
            slots = {k: v.detach() for k, v in slots.items()}
            iter_times.append(time.perf_counter() - t0)
        entry.seconds = time.perf_counter() - start
        entry.seconds_per_meta_iteration = float(np.mean(iter_times)) if iter_times else math.nan
        self.history.append(asdict(entry))
        self.episode += 1
        return entry

    # -- validation ----------------------------------------------------------------
    def validate(self, seeds: list[int], steps: int) -> float:
        """Mean final training loss of ``steps`` updates on validation seeds (the
        evaluation runner, learned optimizer as an ordinary optimizer). Keeps the
        meta-parameters with the lowest value as ``best``."""
        self.learned.eval()
        summary = evaluate_optimizer(self.task, lambda: self.learned, steps, seeds)
        finals = summary.final("train_loss")
        value = float(np.mean(finals)) if np.isfinite(finals).all() else math.inf
        self.validation.append({"episode": self.episode, "loss": value})
        if value < self.best["validation_loss"]:
            self.best = {"validation_loss": value, "episode": self.episode, "state_dict": self._params_copy()}
        return value

    # -- state -----------------------------------------------------------------------
    def _params_copy(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.learned.state_dict().items()}

    def _snapshot(self) -> dict[str, Any]:
        return {"learned": self._params_copy(), "meta_opt": copy.deepcopy(self.meta_opt.state_dict())}

    def _restore(self, snap: dict[str, Any]) -> None:
        self.learned.load_state_dict(snap["learned"])
        self.meta_opt.load_state_dict(copy.deepcopy(snap["meta_opt"]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "learned": {"name": self.learned.name, "config": self.learned.config, "state_dict": self._params_copy()},
            "meta_opt": self.meta_opt.state_dict(),
            "episode": self.episode,
            "history": json.dumps(self.history),
            "validation": json.dumps(self.validation),
            "best": self.best,
            "skipped_total": self.skipped_total,
            "meta_config": json.dumps(asdict(self.cfg)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["learned"]["name"] != self.learned.name:
            raise ValueError(f"checkpoint holds a {state['learned']['name']!r} optimizer, not {self.learned.name!r}")
        saved_cfg = {**asdict(MetaTrainConfig()), **json.loads(state["meta_config"])}
        if saved_cfg != asdict(self.cfg):
            diff = {k: (saved_cfg.get(k), v) for k, v in asdict(self.cfg).items() if saved_cfg.get(k) != v}
            raise ValueError(f"cannot resume: meta-training settings differ from the checkpoint's (saved, now): {diff}")
        self.learned.load_state_dict(state["learned"]["state_dict"])
        self.meta_opt.load_state_dict(state["meta_opt"])
        self.episode = int(state["episode"])
        self.history = json.loads(state["history"])
        self.validation = json.loads(state["validation"])
        self.best = state["best"]
        self.skipped_total = int(state["skipped_total"])
        self._last_good = self._snapshot()
