"""Run any optimizer on a task: one seeded run, many seeds, learning-rate tuning.

Learned and hand-designed optimizers go through the same code, since both have
``init``/``update``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2o.io import write_json_atomic
from l2o.optimizers.base import Optimizer, apply_updates
from l2o.tasks.base import Task, seeded_generators

DIVERGENCE_FACTOR = 10.0


@dataclass
class RunResult:
    """One optimizer run.

    Attributes:
        seed: the run's seed.
        losses: mini-batch training loss before update t, t = 0..steps-1 (NaN after
            the loss became non-finite).
        final: ``task.evaluate`` after the last update (NaN if the run blew up).
        diverged_step: first step whose loss was NaN/Inf or exceeded
            ``DIVERGENCE_FACTOR`` times the initial loss, else None.
        seconds: wall-clock time of the run.
    """

    seed: int
    losses: np.ndarray
    final: dict[str, float]
    diverged_step: int | None = None
    seconds: float = 0.0


def run_optimizer(task: Task, optimizer: Optimizer, steps: int, seed: int) -> RunResult:
    """Train the task's optimizee from seed ``seed`` for ``steps`` updates.

    The gradients handed to the optimizer are detached and the update runs under
    ``no_grad`` (evaluation, not meta-training).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    g_init, g_data = seeded_generators(seed)
    problem = task.sample_problem(g_init)
    params = task.init_params(g_init)
    state = optimizer.init(params)
    losses = np.full(steps, np.nan)
    diverged, blew_up = None, False
    start = time.perf_counter()
    for t in range(steps):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = task.loss(params, task.sample_batch(problem, g_data))
        losses[t] = value = float(loss.detach())
        if diverged is None and not (value <= DIVERGENCE_FACTOR * losses[0]):  # catches NaN too
            diverged = t
        if not math.isfinite(value):
            blew_up = True
            break
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        with torch.no_grad():
            updates, state = optimizer.update(grads, state, params)
            params = apply_updates(params, updates)
    if blew_up:
        final = dict.fromkeys(("train_loss", "test_loss") + (("test_accuracy",) if task.has_accuracy else ()), math.nan)
    else:
        final = task.evaluate(params, problem)
        if diverged is None and not all(math.isfinite(v) for v in final.values()):
            diverged = steps
    return RunResult(seed, losses, final, diverged, time.perf_counter() - start)


@dataclass
class Summary:
    """Several seeded runs of one optimizer on one task."""

    runs: list[RunResult] = field(default_factory=list)

    def final(self, key: str) -> np.ndarray:
        return np.array([r.final.get(key, math.nan) for r in self.runs], dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """Means and standard deviations over the runs whose value is finite; the
        diverged runs are listed with their step (see ``RunResult``)."""
        out: dict[str, Any] = {"runs": len(self.runs)}
        for key in self.runs[0].final:
            vals = self.final(key)
            ok = vals[np.isfinite(vals)]
            name = {"train_loss": "final_loss", "test_accuracy": "final_accuracy"}.get(key, f"final_{key}")
            out[f"{name}_mean"] = float(ok.mean()) if len(ok) else math.nan
            out[f"{name}_std"] = float(ok.std()) if len(ok) else math.nan
        out["finite_runs"] = int(np.isfinite(self.final("train_loss")).sum())
        out["diverged"] = [{"seed": r.seed, "step": r.diverged_step} for r in self.runs if r.diverged_step is not None]
        out["seconds_per_run"] = float(np.mean([r.seconds for r in self.runs]))
        return out

    def loss_matrix(self) -> np.ndarray:
        """(runs, steps) mini-batch losses."""
        return np.stack([r.losses for r in self.runs])


def evaluate_optimizer(
    task: Task,
    make_optimizer: Callable[[], Optimizer],
    steps: int,
    seeds: Sequence[int],
    progress: Callable[[], None] | None = None,
) -> Summary:
    """Run a fresh optimizer from ``make_optimizer()`` for each seed."""
    summary = Summary()
    for seed in seeds:
        summary.runs.append(run_optimizer(task, make_optimizer(), steps, seed))
        if progress is not None:
            progress()
    return summary


def half_decade_grid(low: float = 1e-4, high: float = 1.0) -> list[float]:
    """``10**(k/2)`` for every half-decade between ``low`` and ``high`` inclusive:
    1e-4, 3.16e-4, 1e-3, ..., 1."""
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    k0, k1 = math.ceil(2 * math.log10(low) - 1e-9), math.floor(2 * math.log10(high) + 1e-9)
    return [float(10 ** (k / 2)) for k in range(k0, k1 + 1)]


@dataclass
class TuningResult:
    learning_rate: float
    grid: list[float]
    mean_final_loss: list[float]
    seeds: list[int]
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "grid": self.grid,
            "mean_final_loss": self.mean_final_loss,
            "seeds": self.seeds,
            "cached": self.cached,
            "at_grid_edge": self.learning_rate in (self.grid[0], self.grid[-1]),
            "criterion": "mean final training loss over the tuning seeds (diverged runs count as +inf)",
        }


def tune_learning_rate(
    task: Task,
    make_optimizer: Callable[[float], Optimizer],
    steps: int,
    seeds: Sequence[int],
    grid: Sequence[float],
    cache_file: str | Path | None = None,
    cache_key: dict[str, Any] | None = None,
    progress: Callable[[], None] | None = None,
) -> TuningResult:
    """Pick the learning rate of ``grid`` with the lowest mean final training loss
    over ``seeds`` (which should be disjoint from the seeds one reports on).

    A run that diverges (see ``RunResult``) scores +inf. With ``cache_file`` and
    ``cache_key`` (a JSON-able description of task, optimizer, horizon), the choice
    is read from and written to a JSON cache so that it is made once per task and
    horizon.
    """
    key = None
    if cache_file is not None and cache_key is not None:
        full_key = {**cache_key, "steps": steps, "seeds": list(seeds), "grid": list(grid)}
        key = hashlib.sha1(json.dumps(full_key, sort_keys=True, default=str).encode()).hexdigest()
        hit = _read_cache(cache_file).get(key)
        if hit is not None:
            return TuningResult(hit["learning_rate"], hit["grid"], hit["mean_final_loss"], hit["seeds"], cached=True)
    scores = []
    for lr in grid:
        finals = []
        for seed in seeds:
            run = run_optimizer(task, make_optimizer(lr), steps, seed)
            bad = run.diverged_step is not None or not math.isfinite(run.final["train_loss"])
            finals.append(math.inf if bad else run.final["train_loss"])
            if progress is not None:
                progress()
        scores.append(float(np.mean(finals)))
    if not any(math.isfinite(s) for s in scores):
        raise ValueError(f"every learning rate in {list(grid)} diverged on {task.name}; widen the grid downwards")
    best = float(grid[int(np.argmin(scores))])
    result = TuningResult(best, list(grid), scores, list(seeds))
    if key is not None:
        cache = _read_cache(cache_file)
        cache[key] = {**result.to_dict(), "key": full_key}
        write_json_atomic(cache_file, cache)
    return result


def _read_cache(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"tuning cache {path} is not valid JSON ({e}); delete it to start a new one") from None
