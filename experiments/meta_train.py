"""Meta-train a learned optimizer on an optimizee task.

    python -m experiments.meta_train optimizer=hyperadam task=mnist_mlp hydra.run.dir=DIR
    python -m experiments.meta_train optimizer=hyperadam task=mnist_mlp hydra.run.dir=DIR resume=true

Writes into the run directory: the resolved ``config.yaml``; ``tensorboard/``
(meta-loss per meta-iteration, validation loss, seconds per meta-iteration);
``checkpoints/last.pt`` (everything needed to resume, written every
``checkpoint_every`` episodes) and ``checkpoints/best.pt`` (the meta-parameters
with the lowest validation loss, loadable by the evaluation app as
``checkpoint.<name>=PATH``); ``metrics.json``; ``meta_training.png``.

``resume=true`` continues from ``checkpoints/last.pt``; since every episode's
optimizees are drawn from seeds fixed by the episode number, an interrupted and
resumed run ends with the same weights as an uninterrupted one (on CPU).
``init_from=PATH`` starts from the meta-parameters of a weights file or checkpoint
of the same optimizer (fine-tuning); they are validated first, and kept as the
best unless an episode beats them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from experiments.app import ConfigError, config_errors, hydra_app, load_start_weights, positive_int, require, run_dir
from experiments.evaluate import build_task
from experiments.reporting import write_json
from l2o.learned import LEARNED, load_learned, make_learned, save_learned
from l2o.meta import MetaTrainConfig, MetaTrainer, load_checkpoint, save_checkpoint
from l2o.meta.trainer import VALIDATION_SEED_BASE

log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig) -> MetaTrainer:
    name = cfg.optimizer.name
    require(name in LEARNED, f"unknown learned optimizer {name!r}; valid choices: {', '.join(LEARNED)}")
    task = build_task(cfg)
    with config_errors(f"optimizer {name}"):
        learned = make_learned(name, **OmegaConf.to_container(cfg.optimizer.params, resolve=True))
    learned = learned.to(device=task.device, dtype=task.dtype)
    with config_errors("meta"):
        meta_cfg = MetaTrainConfig(**OmegaConf.to_container(cfg.meta, resolve=True))
    return MetaTrainer(learned, task, meta_cfg)


def plot_meta_training(path: Path, history: list[dict], validation: list[dict], per_episode: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    losses = [m for h in history for m in h["meta_losses"]]
    if losses:
        ax.plot(
            np.arange(1, len(losses) + 1) / per_episode,
            losses,
            lw=0.6,
            alpha=0.5,
            label="meta-loss (per meta-iteration)",
        )
    if validation:
        ax.plot(
            [v["episode"] for v in validation], [v["loss"] for v in validation], "o-", label="validation final loss"
        )
    ax.set_yscale("log")
    ax.set_xlabel("episode")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def meta_train(cfg: DictConfig) -> dict[str, Any]:
    episodes = positive_int(cfg, "episodes")
    positive_int(cfg, "validation.every")
    positive_int(cfg, "validation.seeds")
    positive_int(cfg, "validation.steps")
    positive_int(cfg, "checkpoint_every")
    trainer = build_trainer(cfg)
    if cfg.init_from and not cfg.resume:
        with config_errors("init_from"):
            start = load_learned(cfg.init_from)
        require(
            start.name == trainer.learned.name,
            f"init_from={cfg.init_from} holds a {start.name} optimizer, not {trainer.learned.name}",
        )
        with config_errors("init_from"):
            load_start_weights(trainer.learned, start.state_dict(), cfg.init_from)
        log.info("initialised from %s", cfg.init_from)
    out = run_dir()
    ckpt_dir = out / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    if cfg.resume:
        if not last_path.exists():
            raise ConfigError(f"resume=true but there is no checkpoint at {last_path}; run without resume first")
        with config_errors("resume"):
            state = load_checkpoint(last_path)
            trainer.load_state_dict(state)
        log.info("resumed from %s at episode %d", last_path, trainer.episode)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    val_seeds = list(range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + cfg.validation.seeds))
    name, task_name = trainer.learned.name, trainer.task.name

    from torch.utils.tensorboard import SummaryWriter

    per_episode = trainer.cfg.truncations
    writer = SummaryWriter(str(out / "tensorboard"), purge_step=trainer.episode * per_episode)
    bar = tqdm(
        total=episodes,
        initial=min(trainer.episode, episodes),
        desc=f"meta-train {name} on {task_name}",
        disable=not cfg.progress,
    )

    def checkpoint() -> None:
        save_checkpoint(last_path, {**trainer.state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=True)})
        if trainer.best["state_dict"] is not None:
            best = make_learned(name, **trainer.learned.config)
            best.load_state_dict(trainer.best["state_dict"])
            save_learned(
                best_path,
                best,
                task=task_name,
                episode=trainer.best["episode"],
                validation_loss=trainer.best["validation_loss"],
            )

    if trainer.episode == 0:
        writer.add_scalar("validation/final_loss", trainer.validate(val_seeds, cfg.validation.steps), 0)
    while trainer.episode < episodes:
        entry = trainer.run_episode()
        for i, m in enumerate(entry.meta_losses):
            writer.add_scalar("meta_train/meta_loss", m, entry.episode * per_episode + i)
        if not math.isnan(entry.seconds_per_meta_iteration):
            writer.add_scalar("meta_train/seconds_per_meta_iteration", entry.seconds_per_meta_iteration, entry.episode)
        writer.add_scalar("meta_train/final_optimizee_loss", entry.final_loss, entry.episode)
        if entry.skipped:
            writer.add_scalar("meta_train/skipped_meta_steps", trainer.skipped_total, entry.episode)
        if trainer.episode % cfg.validation.every == 0 or trainer.episode == episodes:
            value = trainer.validate(val_seeds, cfg.validation.steps)
            writer.add_scalar("validation/final_loss", value, trainer.episode)
            bar.set_postfix(val=f"{value:.4f}", best=f"{trainer.best['validation_loss']:.4f}")
        if trainer.episode % cfg.checkpoint_every == 0 or trainer.episode == episodes:
            checkpoint()
        bar.update(1)
    bar.close()
    writer.close()

    times = [
        h["seconds_per_meta_iteration"] for h in trainer.history if not math.isnan(h["seconds_per_meta_iteration"])
    ]
    metrics = {
        "optimizer": name,
        "task": task_name,
        "task_config": trainer.task.config(),
        "optimizer_config": trainer.learned.config,
        "meta_config": OmegaConf.to_container(cfg.meta, resolve=True),
        "episodes": trainer.episode,
        "meta_iterations": sum(len(h["meta_losses"]) for h in trainer.history),
        "seconds_per_meta_iteration": float(np.mean(times)) if times else math.nan,
        "seconds_total": float(sum(h["seconds"] for h in trainer.history)),
        "best_validation_loss": trainer.best["validation_loss"],
        "best_episode": trainer.best["episode"],
        "skipped_meta_steps": trainer.skipped_total,
        "validation": trainer.validation,
        "validation_seeds": val_seeds,
        "checkpoints": {"last": str(last_path), "best": str(best_path)},
    }
    write_json(out / "metrics.json", metrics)
    plot_meta_training(
        out / "meta_training.png",
        trainer.history,
        trainer.validation,
        per_episode,
        f"{name} on {task_name}: meta-training",
    )
    print(
        f"\nmeta-trained {name} on {task_name}: {metrics['episodes']} episodes, {metrics['meta_iterations']} "
        f"meta-iterations, {metrics['seconds_per_meta_iteration']:.3f} s per meta-iteration; best validation loss "
        f"{metrics['best_validation_loss']:.4f} (episode {metrics['best_episode']})"
    )
    print(
        f"Run directory: {out}\n  best weights: {best_path}\n  TensorBoard: tensorboard --logdir {out / 'tensorboard'}"
    )
    return metrics


@hydra_app("meta_train")
def main(cfg: DictConfig) -> None:
    meta_train(cfg)


if __name__ == "__main__":
    main()
