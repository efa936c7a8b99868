"""Evaluate optimizers on an optimizee task over several seeds.

    python -m experiments.evaluate task=mnist_mlp optimizers=[sgd,adam] steps=100 seeds=10 tune=true \
        hydra.run.dir=DIR

Writes into the run directory: ``metrics.json``, ``losses.csv`` (per-step
mini-batch losses), ``loss_curves.png``, ``results.md``, ``tensorboard/`` and the
resolved ``config.yaml``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from experiments.app import (
    config_errors,
    hydra_app,
    positive_int,
    require,
    run_dir,
    torch_device,
    torch_dtype,
)
from experiments.reporting import markdown_table, plot_loss_curves, write_json, write_loss_csv
from l2o.evaluation import Summary, evaluate_optimizer, half_decade_grid, tune_learning_rate
from l2o.learned import LEARNED, load_learned, load_pretrained, pretrained_path
from l2o.optimizers import HAND_DESIGNED, make_optimizer
from l2o.tasks import TASKS, Task, make_task


def build_task(cfg: DictConfig) -> Task:
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    name = task_cfg.pop("name", None)
    require(name in TASKS, f"unknown task {name!r}; valid choices: {', '.join(TASKS)}")
    with config_errors(f"task {name}"):
        return make_task(name, device=torch_device(cfg.device), dtype=torch_dtype(cfg.dtype), **task_cfg)


def hand_designed_hparams(cfg: DictConfig, name: str) -> dict[str, Any]:
    hp = OmegaConf.to_container(cfg.hparams.get(name) or {}, resolve=True)
    return hp


class OptimizerSpec:
    """How to build one named optimizer of the command line: a hand-designed one at
    a given learning rate, or a learned one from its shipped weights or
    ``checkpoint.<name>``."""

    def __init__(self, name: str, cfg: DictConfig, task: Task):
        self.name = name
        self.learned = None
        path = (cfg.get("checkpoint") or {}).get(name)
        if name in LEARNED or path:
            with config_errors(f"optimizer {name}"):
                self.learned = load_learned(path) if path else load_pretrained(name)
            self.learned = self.learned.to(device=task.device, dtype=task.dtype).eval()
            self.hparams = {
                "weights": str(path) if path else f"shipped ({pretrained_path(name).name})",
                **self.learned.config,
            }
            self.learning_rate, self.tunable = None, False
            return
        self.hparams = hand_designed_hparams(cfg, name)
        with config_errors(f"optimizer {name}"):
            make_optimizer(name, **self.hparams)  # fail now, not after other optimizers ran
        self.learning_rate = self.hparams.get("learning_rate")
        self.tunable = "learning_rate" in self.hparams

    def make(self, learning_rate: float | None = None):
        if self.learned is not None:
            return self.learned  # stateless between runs: the state lives in init()/update()
        hp = dict(self.hparams)
        if learning_rate is not None:
            hp["learning_rate"] = learning_rate
        return make_optimizer(self.name, **hp)


def valid_optimizer_names(cfg: DictConfig | None = None) -> list[str]:
    """Hand-designed and learned names, and any name ``checkpoint.<name>`` gives a file for."""
    extra = [
        k
        for k, v in ((cfg.get("checkpoint") or {}) if cfg is not None else {}).items()
        if v and k not in LEARNED and k not in HAND_DESIGNED
    ]
    return list(HAND_DESIGNED) + list(LEARNED) + extra


def check_config(cfg: DictConfig) -> list[str]:
    names = list(cfg.optimizers) if not isinstance(cfg.optimizers, str) else [cfg.optimizers]
    clash = [k for k in (cfg.get("checkpoint") or {}) if k in HAND_DESIGNED]
    require(
        not clash,
        f"checkpoint.{clash[0] if clash else ''}: hand-designed optimizers take no checkpoint; "
        f"learned ones: {', '.join(LEARNED)} (or a new name with +checkpoint.NAME=PATH)",
    )
    valid = valid_optimizer_names(cfg)
    require(len(names) > 0, f"optimizers is empty; valid choices: {', '.join(valid)}")
    bad = [n for n in names if n not in valid]
    require(not bad, f"unknown optimizer(s) {bad}; valid choices: {', '.join(valid)}")
    require(len(set(names)) == len(names), f"optimizers lists a name twice: {names}")
    positive_int(cfg, "steps")
    positive_int(cfg, "seeds")
    if cfg.tune:
        positive_int(cfg, "tuning.seeds")
        reported = set(range(cfg.seed_offset, cfg.seed_offset + cfg.seeds))
        tuning = set(range(cfg.tuning.seed_offset, cfg.tuning.seed_offset + cfg.tuning.seeds))
        require(not reported & tuning, "tuning seeds must be disjoint from the reported seeds")
        with config_errors("tuning"):
            half_decade_grid(cfg.tuning.low, cfg.tuning.high)
    return names


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    names = check_config(cfg)
    task = build_task(cfg)
    specs = [OptimizerSpec(n, cfg, task) for n in names]
    out = run_dir()
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    seeds = list(range(cfg.seed_offset, cfg.seed_offset + cfg.seeds))
    grid = half_decade_grid(cfg.tuning.low, cfg.tuning.high) if cfg.tune else []
    tuning_seeds = list(range(cfg.tuning.seed_offset, cfg.tuning.seed_offset + cfg.tuning.seeds))
    n_tune = sum(s.tunable for s in specs) * len(grid) * len(tuning_seeds)
    bar = tqdm(total=len(specs) * len(seeds) + n_tune, desc=f"evaluate {task.name}", disable=not cfg.progress)

    results: dict[str, Any] = {}
    summaries: dict[str, Summary] = {}
    for spec in specs:
        entry: dict[str, Any] = {"hparams": spec.hparams, "tuned": False}
        lr = spec.learning_rate
        if cfg.tune and spec.tunable:
            bar.set_postfix_str(f"tuning {spec.name}")
            with config_errors(f"tuning {spec.name}"):
                tuned = tune_learning_rate(
                    task,
                    spec.make,
                    cfg.steps,
                    tuning_seeds,
                    grid,
                    cache_file=cfg.tuning.cache_file,
                    cache_key={
                        "task": task.config(),
                        "optimizer": spec.name,
                        "hparams": spec.hparams,
                        "dtype": cfg.dtype,
                    },
                    progress=bar.update,
                )
            if tuned.cached:
                bar.update(len(grid) * len(tuning_seeds))
            lr, entry["tuned"], entry["tuning"] = tuned.learning_rate, True, tuned.to_dict()
        bar.set_postfix_str(spec.name)
        start = time.perf_counter()
        summary = evaluate_optimizer(task, lambda lr=lr, spec=spec: spec.make(lr), cfg.steps, seeds, bar.update)
        summaries[spec.name] = summary
        results[spec.name] = {**summary.to_dict(), "learning_rate": lr, **entry, "seconds": time.perf_counter() - start}
    bar.close()

    metrics = {
        "task": task.name,
        "task_config": task.config(),
        "steps": cfg.steps,
        "seeds": seeds,
        "tune": bool(cfg.tune),
        "loss_definition": "final_loss: training objective after the last update, on the whole training split "
        "(or the task's fixed evaluation sample); curves: mini-batch loss before each update",
        "results": results,
    }
    write_outputs(out, task, metrics, summaries)
    return metrics


def write_outputs(out, task: Task, metrics: dict[str, Any], summaries: dict[str, Summary]) -> None:
    results = metrics["results"]
    curves = {n: s.loss_matrix() for n, s in summaries.items()}
    write_json(out / "metrics.json", metrics)
    write_loss_csv(out / "losses.csv", curves, {n: [r.seed for r in s.runs] for n, s in summaries.items()})
    title = f"{task.name}: {metrics['steps']} steps, {len(metrics['seeds'])} seeds"
    plot_loss_curves(out / "loss_curves.png", curves, title)
    headers = ["optimizer", "learning rate", "tuned", "final loss (mean ± std)"]
    if task.has_accuracy:
        headers.append("test accuracy")
    headers += ["diverged", "s/run"]
    rows = []
    for name, r in results.items():
        row = [
            name,
            r["learning_rate"] if r["learning_rate"] is not None else "—",
            ("yes (grid edge)" if r["tuning"]["at_grid_edge"] else "yes") if r["tuned"] else "no",
            f"{r['final_loss_mean']:.4f} ± {r['final_loss_std']:.4f}",
        ]
        if task.has_accuracy:
            row.append(f"{r['final_accuracy_mean']:.4f}")
        row += [f"{len(r['diverged'])}/{r['runs']}", r["seconds_per_run"]]
        rows.append(row)
    table = markdown_table(headers, rows)
    (out / "results.md").write_text(f"# {title}\n\n{table}")
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(out / "tensorboard")) as writer:
        for name, mat in curves.items():
            with np.errstate(all="ignore"):
                mean = np.nanmean(mat, axis=0)
            for step, value in enumerate(mean):
                if math.isfinite(value):
                    writer.add_scalar(f"train_loss/{name}", value, step)
            writer.add_scalar(f"final_loss/{name}", results[name]["final_loss_mean"], metrics["steps"])
    print("\n" + table)
    print(f"Run directory: {out}")
    print(f"  metrics: {out / 'metrics.json'}   table: {out / 'results.md'}")
    print(f"  plot: {out / 'loss_curves.png'}   per-step losses: {out / 'losses.csv'}")
    print(f"  TensorBoard: tensorboard --logdir {out / 'tensorboard'}")


@hydra_app("evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
