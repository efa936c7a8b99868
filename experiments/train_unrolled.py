"""Train an unrolled network.

    python -m experiments.train_unrolled model=admm_net data=chest data.root=PATH physics.ratio=0.2
    python -m experiments.train_unrolled model=admm_net data=mni train.mode=greedy   # embedded data

Writes into the run directory: the resolved ``config.yaml``; ``tensorboard/``
(loss per epoch, validation NRMSE, and image panels: reconstruction, ground truth,
zero-filling); ``checkpoints/last.pt`` (resumable with ``resume=true``) and
``checkpoints/model.pt`` (the final weights, or the best on validation data when
the dataset has a validation split), both written atomically and loaded with
``weights_only=True``; ``metrics.json``. ``init_from=PATH`` starts from another
model file's weights (those this model also has; e.g. the non-local GD-MRF from
the local one, whose range filters then start at zero).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from experiments.app import ConfigError, config_errors, hydra_app, load_start_weights, positive_int, run_dir
from experiments.reporting import write_json
from experiments.unrolled_setup import build_model, build_physics, check_image_shape, check_physics, load_data
from l2o.io import load_torch_checked, save_torch_atomic
from unrolled.baselines.tv import zero_filling
from unrolled.metrics import psnr
from unrolled.models import TRAIN_CHECKPOINT_FORMAT, load_model, model_name, save_model
from unrolled.training import TrainConfig, UnrolledTrainer

log = logging.getLogger(__name__)


def panel(images: list[torch.Tensor]) -> torch.Tensor:
    """Magnitudes side by side, scaled to [0, 1]: (1, H, W * n) for TensorBoard."""
    row = torch.cat([im.detach().abs().float().cpu().clamp(0, 1) for im in images], dim=-1)
    return row[None]


def train(cfg: DictConfig) -> dict[str, Any]:
    positive_int(cfg, "checkpoint_every")
    positive_int(cfg, "images_every")
    with config_errors("train"):
        tcfg = TrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))
    check_physics(cfg)
    model = build_model(cfg)
    if cfg.init_from:
        with config_errors("init_from"):
            start, _ = load_model(cfg.init_from)
            missing, unexpected = load_start_weights(model, start.state_dict(), cfg.init_from, strict=False)
        if unexpected:
            raise ConfigError(f"init_from={cfg.init_from} has parameters this model lacks: {unexpected[:5]}")
        log.info("initialised from %s (parameters left at their init: %s)", cfg.init_from, missing)
    data = load_data(cfg, need=("train", "val"))
    physics = build_physics(cfg, shape=tuple(data.train.shape[-2:]))
    check_image_shape(data.train, physics)
    out = run_dir()
    last_path, model_path = out / "checkpoints" / "last.pt", out / "checkpoints" / "model.pt"
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"))
    bar = None
    x_show = (data.val if data.val is not None else data.train)[:1]

    def on_epoch(trainer: UnrolledTrainer, record: dict) -> None:
        step = len(trainer.state.history)
        writer.add_scalar("train/loss", record["train_loss"], step)
        writer.add_scalar("train/seconds_per_epoch", record["seconds"], step)
        if "val_loss" in record:
            writer.add_scalar("val/loss", record["val_loss"], step)
            writer.add_scalar("val/nrmse", record["val_nrmse"], step)
        if step % cfg.images_every == 0 or trainer.done():
            with torch.no_grad():
                y = physics.simulate(x_show, torch.Generator().manual_seed(0))
                rec = model(y, physics)
                zf = zero_filling(y, physics, data.real_images)
            writer.add_image("reconstruction | ground truth | zero-filling", panel([rec[0], x_show[0], zf[0]]), step)
            writer.add_scalar("example/psnr", float(psnr(rec, x_show)[0]), step)
        if step % cfg.checkpoint_every == 0 or trainer.done():
            save_torch_atomic(
                last_path,
                {
                    "format": TRAIN_CHECKPOINT_FORMAT,
                    **trainer.state_dict(),
                    "model_name": model_name(model),
                    "model_config": model.config,
                    "config": OmegaConf.to_yaml(cfg, resolve=True),
                },
            )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{record['train_loss']:.4f}", stage=record["stage"])

    trainer = UnrolledTrainer(model, physics, data.train, data.val, tcfg, on_epoch=on_epoch)
    if cfg.resume:
        if not last_path.exists():
            raise ConfigError(f"resume=true but there is no checkpoint at {last_path}; run without resume first")
        with config_errors("resume"):
            state = load_torch_checked(last_path, TRAIN_CHECKPOINT_FORMAT, "training checkpoint")
            trainer.load_state_dict(state)
        log.info("resumed from %s (%d epochs done)", last_path, len(trainer.state.history))
    elif cfg.init_from:  # the start is a candidate too: fine-tuning keeps it if no epoch beats it
        log.info("validation loss of the initial weights: %s", trainer.validate_start())
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    total = tcfg.epochs * (len(model.stages) if tcfg.mode == "greedy" else 1)
    bar = tqdm(
        total=total,
        initial=len(trainer.state.history),
        desc=f"train {cfg.model.name} on {data.name}",
        disable=not cfg.progress,
    )
    start = time.perf_counter()
    trainer.fit()
    bar.close()
    writer.close()
    if trainer.state.best["state_dict"] is not None:
        model.load_state_dict(trainer.state.best["state_dict"])
    selection = "best validation loss" if data.val is not None else "final"
    if cfg.physics.name == "mri":
        setting = {
            "physics": "mri",
            "ratio": float(cfg.physics.ratio),
            "mask": cfg.physics.mask,
            "sampling_ratio": physics.sampling_ratio,
        }
    else:
        setting = {"physics": cfg.physics.name, "sigma": float(cfg.physics.sigma)}
    save_model(
        model_path,
        model,
        data=data.name,
        **setting,
        selection=selection,
        epochs=len(trainer.state.history),
    )
    history = trainer.state.history
    trained_seconds = sum(h["seconds"] for h in history)  # all epochs, resumed runs included
    metrics = {
        "model": cfg.model.name,
        "data": data.name,
        **setting,
        "train_images": len(data.train),
        "val_images": 0 if data.val is None else len(data.val),
        "train_config": asdict(tcfg),
        "epochs": len(history),
        "final_train_loss": history[-1]["train_loss"] if history else math.nan,
        "best_val_loss": trainer.state.best["val_loss"],
        "best_epoch": trainer.state.best["epoch"],  # 0: the init_from weights were not beaten
        "start_val_loss": trainer.state.start_val_loss,  # of the init_from weights (None: not fine-tuning)
        "selection": selection,
        "seconds": trained_seconds,
        "seconds_this_call": time.perf_counter() - start,  # wall clock of this call
        "seconds_per_epoch": trained_seconds / max(len(history), 1),
        "threads": torch.get_num_threads(),
        "history": history,
        "model_file": str(model_path),
    }
    write_json(out / "metrics.json", metrics)
    print(
        f"\ntrained {cfg.model.name} on {data.name} ({len(data.train)} images, {setting}): "
        f"{metrics['epochs']} epochs, final training loss {metrics['final_train_loss']:.4f}, "
        f"{metrics['seconds_per_epoch']:.1f} s/epoch"
    )
    print(f"Run directory: {out}\n  weights: {model_path}\n  TensorBoard: tensorboard --logdir {out / 'tensorboard'}")
    return metrics


@hydra_app("train_unrolled")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
