"""Timing shared by the benchmark scripts (imported as ``_timing``: the scripts run
as ``python benchmarks/<name>.py``, which puts this folder on ``sys.path``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device | str, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed
    ones, synchronising the device around each timed call."""
    return statistics.median(interleaved_seconds({"fn": fn}, repeats, device, warmup)["fn"])


def interleaved_seconds(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device | str, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times of every function in ``fns`` over ``repeats`` rounds, one call of
    each per round: on a machine whose speed drifts, the functions compared see the
    same conditions, and ratios are best taken round by round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times
