"""The evaluation app end to end, through its command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_app(module, *overrides, cache=None, check=True):
    env = dict(os.environ)
    if cache is not None:
        env["L2O_CACHE_DIR"] = str(cache)
    proc = subprocess.run(
        [sys.executable, "-m", module, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_evaluate_writes_every_output_and_reuses_tuning(tmp_path):
    out = tmp_path / "run"
    args = [
        "task=quadratic",
        "optimizers=[sgd,adam,lookahead]",
        "steps=30",
        "seeds=3",
        "tune=true",
        "tuning.low=1e-3",
        "tuning.seeds=2",
        "progress=false",
        f"hydra.run.dir={out}",
    ]
    proc = run_app("experiments.evaluate", *args, cache=tmp_path / "cache")
    for name in ("metrics.json", "losses.csv", "loss_curves.png", "results.md", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "quadratic" and m["steps"] == 30 and m["seeds"] == [0, 1, 2]
    for name in ("sgd", "adam", "lookahead"):
        r = m["results"][name]
        assert r["runs"] == 3 and r["tuned"] and r["tuning"]["seeds"] == [1000000, 1000001]
        assert r["learning_rate"] in r["tuning"]["grid"]
        assert r["final_loss_mean"] < 13.0  # below the mean initial loss of these quadratics
        assert {"final_loss_std", "diverged", "learning_rate"} <= r.keys()
        assert not r["tuning"]["cached"]
    lines = (out / "losses.csv").read_text().splitlines()
    assert lines[0] == "optimizer,seed,step,loss" and len(lines) == 1 + 3 * 3 * 30
    assert "| adam |" in proc.stdout and "TensorBoard" in proc.stdout
    # same task and horizon: the tuned learning rates come from the cache
    out2 = tmp_path / "run2"
    run_app("experiments.evaluate", *args[:-1], f"hydra.run.dir={out2}", cache=tmp_path / "cache")
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert all(m2["results"][n]["tuning"]["cached"] for n in ("sgd", "adam", "lookahead"))
    assert m2["results"]["adam"]["learning_rate"] == m["results"]["adam"]["learning_rate"]
    assert m2["results"]["adam"]["final_loss_mean"] == m["results"]["adam"]["final_loss_mean"]


def test_accuracy_reported_for_mnist(tmp_path):
    out = tmp_path / "run"
    run_app(
        "experiments.evaluate",
        "task=mnist_mlp",
        "task.activation=relu",
        "task.hidden_layers=2",
        "optimizers=[adam]",
        "hparams.adam.learning_rate=0.03",
        "steps=20",
        "seeds=2",
        "progress=false",
        f"hydra.run.dir={out}",
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["task_config"]["activation"] == "relu" and m["task_config"]["hidden_layers"] == 2
    assert 0.3 < m["results"]["adam"]["final_accuracy_mean"] <= 1.0


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizers=[sgd,adamw]", "unknown optimizer(s) ['adamw']; valid choices: sgd, momentum, nesterov"),
        ("task=cifar", "unknown task 'cifar'; valid choices: mnist_cnn1, mnist_cnn2, mnist_mlp, quadratic, sine_lstm"),
        ("steps=-5", "steps must be a positive integer, got -5"),
        ("stepz=5", "unknown config key 'stepz'; valid keys at the top level: checkpoint, device, dtype, hparams"),
        ("task.activaton=relu", "unknown config key 'task.activaton'; valid keys under 'task': activation"),
        ("hparams.adam.beta1=0.5", "valid keys under 'hparams.adam': b1, b2, eps, learning_rate"),
        ("task.activation=gelu", "unknown activation 'gelu'; valid choices: sigmoid, relu, elu, tanh"),
    ],
)
def test_bad_config_gives_one_clear_error(tmp_path, override, message):
    proc = run_app("experiments.evaluate", override, f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "metrics.json").exists()
