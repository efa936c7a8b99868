"""The runner: divergence detection, seeds, learning-rate tuning and its cache."""

import json
import math

import numpy as np
import pytest

from l2o.evaluation import evaluate_optimizer, half_decade_grid, run_optimizer, tune_learning_rate
from l2o.optimizers import adam, sgd
from l2o.tasks import make_task


def test_half_decade_grid():
    g = half_decade_grid(1e-4, 1.0)
    assert len(g) == 9 and g[0] == pytest.approx(1e-4) and g[-1] == pytest.approx(1.0)
    assert np.allclose(np.diff(np.log10(g)), 0.5)
    with pytest.raises(ValueError, match="need 0 < low <= high"):
        half_decade_grid(1.0, 1e-3)


def test_same_seed_same_trajectory():
    task = make_task("mnist_mlp")
    a, b = run_optimizer(task, adam(0.01), 20, 5), run_optimizer(task, adam(0.01), 20, 5)
    assert np.array_equal(a.losses, b.losses) and a.final == b.final
    c = run_optimizer(task, adam(0.01), 20, 6)
    assert not np.array_equal(a.losses, c.losses)


def test_divergence_is_detected_with_its_step():
    task = make_task("quadratic")
    run = run_optimizer(task, sgd(10.0), 50, 0)
    assert run.diverged_step is not None and run.diverged_step <= 3
    assert run.losses[run.diverged_step] > 10 * run.losses[0] or not math.isfinite(run.losses[run.diverged_step])
    ok = run_optimizer(task, sgd(0.01), 50, 0)
    assert ok.diverged_step is None
    summary = evaluate_optimizer(task, lambda: sgd(10.0), 300, [0, 1])
    d = summary.to_dict()
    assert d["runs"] == 2 and len(d["diverged"]) == 2 and d["finite_runs"] == 0
    assert math.isnan(d["final_loss_mean"])  # every run blew up to inf/NaN


def test_tuning_picks_the_best_grid_point_and_caches(tmp_path):
    task = make_task("quadratic")
    grid = half_decade_grid(1e-3, 1.0)
    cache = tmp_path / "cache.json"
    key = {"task": task.config(), "optimizer": "sgd"}
    res = tune_learning_rate(task, sgd, 30, [100, 101], grid, cache_file=cache, cache_key=key)
    finite = [s for s in res.mean_final_loss if math.isfinite(s)]
    assert res.mean_final_loss[grid.index(res.learning_rate)] == min(finite)
    assert math.isinf(res.mean_final_loss[-1])  # lr = 1 diverges on these quadratics
    assert not res.cached
    again = tune_learning_rate(
        task, lambda lr: pytest.fail("must come from the cache"), 30, [100, 101], grid, cache_file=cache, cache_key=key
    )
    assert again.cached and again.learning_rate == res.learning_rate
    # another horizon is another cache entry
    other = tune_learning_rate(task, sgd, 10, [100, 101], grid, cache_file=cache, cache_key=key)
    assert not other.cached and len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tune_learning_rate(task, sgd, 10, [100, 101], grid, cache_file=cache, cache_key=key)
