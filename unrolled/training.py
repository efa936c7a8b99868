"""Training unrolled networks by back-propagation through their stages.

The trainer knows a model only through ``UnrolledModel.run`` / ``output`` (and its
``stages``), and a physics object only through ``simulate``: a new unrolled model
trains here without changes.

Modes:

- ``end_to_end``: back-propagate through all stages;
- ``checkpoint``: the same gradients, recomputing each stage's activations in the
  backward pass (memory flat in the number of stages, about 1.3x the time);
- ``greedy``: stage by stage: stage k and the output layer are trained on the
  (cached, detached) states after the frozen stages 1..k-1 (decoupled,
  memory-flat training; an approximation of end-to-end training).

Optimizers: Adam on mini-batches, or full-batch L-BFGS (the Deep ADMM-Net
authors' choice), whose closure accumulates gradients over chunks of images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from l2o.checked_call import check_positive_int
from unrolled.metrics import nrmse
from unrolled.models.base import UnrolledModel

MODES = ("end_to_end", "checkpoint", "greedy")
OPTIMIZERS = ("adam", "lbfgs")
LOSSES = ("nrmse", "mse")


def reconstruction_loss(x_hat: Tensor, x: Tensor, kind: str) -> Tensor:
    """``nrmse``: mean over images of ||x_hat - x|| / ||x|| (Deep ADMM-Net's loss);
    ``mse``: mean squared error."""
    if kind == "nrmse":
        return nrmse(x_hat, x).mean()
    if kind == "mse":
        return (x_hat - x).abs().pow(2).mean()
    raise ValueError(f"unknown loss {kind!r}; valid choices: {', '.join(LOSSES)}")


@dataclass
class TrainConfig:
    """Attributes:
    epochs: passes over the training images (greedy: per stage); L-BFGS: outer steps.
    batch_size: images per Adam step.
    loss: ``nrmse`` or ``mse``.
    optimizer: ``adam`` or ``lbfgs``.
    lr: learning rate (L-BFGS: its step size, 1 with line search).
    mode: ``end_to_end``, ``checkpoint`` or ``greedy``.
    lbfgs_iterations: L-BFGS iterations per outer step; lbfgs_chunk: images per chunk
        (the recorded training loss of an L-BFGS epoch is the loss before its step).
    grad_clip: global gradient-norm clip for Adam (0: off).
    lr_decay: multiply the Adam learning rate by this every epoch.
    resample: simulate the training measurements again at the start of every epoch
        (fresh noise each epoch, seeded by ``seed`` and the epoch, so a resumed run
        draws the same); off: one draw for the whole training.
    seed: fixes the batch order and any measurement noise.
    """

    epochs: int = 50
    batch_size: int = 4
    loss: str = "nrmse"
    optimizer: str = "adam"
    lr: float = 1e-3
    mode: str = "end_to_end"
    lbfgs_iterations: int = 20
    lbfgs_chunk: int = 8
    grad_clip: float = 0.0
    lr_decay: float = 1.0
    resample: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown training mode {self.mode!r}; valid choices: {', '.join(MODES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid choices: {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "lbfgs_iterations", "lbfgs_chunk"):
            check_positive_int(name, getattr(self, name))
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class TrainerState:
    stage: int = 0  # greedy: the stage being trained
    epoch: int = 0  # epochs done (of the current stage, in greedy mode)
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_loss": math.inf, "state_dict": None, "epoch": None})
    start_val_loss: float | None = None  # validation loss before the first epoch (``validate_start``)


class UnrolledTrainer:
    """Train ``model`` to reconstruct ``x_train`` from ``physics.simulate(x)``.

    Args:
        model: an ``UnrolledModel``.
        physics: the forward model (``simulate(x, generator)``).
        x_train, x_val: (N, H, W) ground-truth images.
        config: ``TrainConfig``.
        on_epoch: called with (trainer, record) after every epoch (logging).
    """

    def __init__(
        self,
        model: UnrolledModel,
        physics,
        x_train: Tensor,
        x_val: Tensor | None,
        config: TrainConfig,
        on_epoch: Callable[[UnrolledTrainer, dict], None] | None = None,
    ):
        self.model, self.physics, self.cfg = model, physics, config
        self.x_train, self.x_val = x_train, x_val
        self.on_epoch = on_epoch
        if config.mode == "greedy":
            seen: set[int] = set()
            for stage in model.stages:
                ids = {id(p) for p in stage.parameters()}
                if ids & seen:
                    raise ValueError(
                        "greedy training needs stage-wise parameters; this model's stages share "
                        "parameters (use train.mode=end_to_end or checkpoint)"
                    )
                seen |= ids
        self.state = TrainerState()
        self._cache: tuple[Tensor, ...] | None = None  # greedy: states after the frozen stages
        self.y_train = self._measure(x_train, 0)
        self.y_val = self._measure(x_val, 1) if x_val is not None else None
        self.optimizer = self._make_optimizer()

    # -- pieces ----------------------------------------------------------------------
    def _measure(self, x: Tensor, stream: int) -> Tensor:
        g = torch.Generator().manual_seed(1_000_003 * self.cfg.seed + stream)
        return self.physics.simulate(x, g)

    def trainable(self) -> list[torch.nn.Parameter]:
        if self.cfg.mode != "greedy":
            return [p for p in self.model.parameters() if p.requires_grad]
        stage = self.model.stages[self.state.stage]
        ids = {id(p) for p in stage.parameters()} | {
            id(p) for n, p in self.model.named_parameters() if not n.startswith("stages.")
        }
        return [p for p in self.model.parameters() if id(p) in ids]

    def _make_optimizer(self):
        params = self.trainable()
        if self.cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.cfg.lr)
        return torch.optim.LBFGS(
            params, lr=self.cfg.lr, max_iter=self.cfg.lbfgs_iterations, history_size=20, line_search_fn="strong_wolfe"
        )

    def _greedy_states(self, idx: Tensor) -> tuple[Tensor, ...] | None:
        if self.cfg.mode != "greedy" or self.state.stage == 0:
            return None
        if self._cache is None:
            with torch.no_grad():
                chunks = [
                    self.model.run(self.y_train[i : i + 8], self.physics, num_stages=self.state.stage)
                    for i in range(0, len(self.y_train), 8)
                ]
            self._cache = tuple(torch.cat(parts) for parts in zip(*chunks))
        return tuple(s[idx] for s in self._cache)

    def predict(self, y: Tensor, idx: Tensor | None = None) -> Tensor:
        """The reconstruction the current mode trains (greedy: through stage k)."""
        if self.cfg.mode == "greedy":
            k = self.state.stage
            state = self._greedy_states(idx) if idx is not None else None
            state = self.model.run(y, self.physics, num_stages=k + 1, state=state, start=k if state is not None else 0)
            return self.model.output(state, y, self.physics)
        return self.model(y, self.physics, checkpoint=self.cfg.mode == "checkpoint")

    def batch_loss(self, idx: Tensor) -> Tensor:
        return reconstruction_loss(self.predict(self.y_train[idx], idx), self.x_train[idx], self.cfg.loss)

    @torch.no_grad()
    def evaluate(self, y: Tensor, x: Tensor, chunk: int = 8) -> dict[str, float]:
        self.model.eval()
        losses, scores = [], []
        for i in range(0, len(y), chunk):
            out = self.model(y[i : i + chunk], self.physics)
            losses.append(reconstruction_loss(out, x[i : i + chunk], self.cfg.loss).item() * len(out))
            scores.append(nrmse(out, x[i : i + chunk]))
        self.model.train()
        return {"loss": sum(losses) / len(y), "nrmse": float(torch.cat(scores).mean())}

    # -- one epoch -------------------------------------------------------------------
    def epoch(self) -> dict[str, Any]:
        cfg, n = self.cfg, len(self.x_train)
        t0 = time.perf_counter()
        self.model.train()
        g = torch.Generator().manual_seed(10_000 * cfg.seed + 100 * self.state.stage + self.state.epoch)
        perm = torch.randperm(n, generator=g)
        if cfg.resample:
            self.y_train = self._measure(self.x_train, 2 + len(self.state.history))
            self._cache = None
        if cfg.optimizer == "adam":
            total = 0.0
            for i in range(0, n, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.batch_loss(idx)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.trainable(), cfg.grad_clip)
                self.optimizer.step()
                total += loss.item() * len(idx)
            train_loss = total / n
            for group in self.optimizer.param_groups:
                group["lr"] *= cfg.lr_decay
        else:

            def closure():
                self.optimizer.zero_grad(set_to_none=True)
                total = 0.0
                for i in range(0, n, cfg.lbfgs_chunk):
                    idx = perm[i : i + cfg.lbfgs_chunk]
                    loss = self.batch_loss(idx) * len(idx) / n
                    loss.backward()
                    total += loss.item()
                return torch.tensor(total)

            train_loss = float(self.optimizer.step(closure))
        self.state.epoch += 1
        record = {
            "stage": self.state.stage,
            "epoch": self.state.epoch,
            "train_loss": train_loss,
            "seconds": time.perf_counter() - t0,
        }
        if self.y_val is not None:
            val = self.evaluate(self.y_val, self.x_val)
            record["val_loss"], record["val_nrmse"] = val["loss"], val["nrmse"]
            final_stage = self.cfg.mode != "greedy" or self.state.stage == len(self.model.stages) - 1
            if final_stage:
                self._keep_if_best(val["loss"], len(self.state.history) + 1)
        self.state.history.append(record)
        if cfg.mode == "greedy" and self.state.epoch >= cfg.epochs:
            # the next stage starts now, before the callback, so that a checkpoint it writes resumes there
            self.state.stage += 1
            self.state.epoch = 0
            self._cache = None
            if self.state.stage < len(self.model.stages):
                self.optimizer = self._make_optimizer()
        if self.on_epoch is not None:
            self.on_epoch(self, record)
        return record

    def validate_start(self) -> float | None:
        """Validate the model as it is before any epoch and keep it as the best so far,
        so that fine-tuning from other weights never keeps weights worse than its start.
        Returns the validation loss (None without validation images or in greedy mode)."""
        if self.y_val is None or self.state.history or self.cfg.mode == "greedy":
            return None
        loss = self.evaluate(self.y_val, self.x_val)["loss"]
        self._keep_if_best(loss, 0)
        self.state.start_val_loss = loss
        return loss

    def _keep_if_best(self, val_loss: float, epoch: int) -> None:
        """Keep a copy of the current weights if ``val_loss`` is the lowest so far."""
        if val_loss < self.state.best["val_loss"]:
            self.state.best = {
                "val_loss": val_loss,
                "epoch": epoch,
                "state_dict": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            }

    def done(self) -> bool:
        if self.cfg.mode != "greedy":
            return self.state.epoch >= self.cfg.epochs
        return self.state.stage >= len(self.model.stages)

    def step(self) -> dict[str, Any]:
        """One epoch (in greedy mode, the last epoch of a stage moves to the next)."""
        return self.epoch()

    def fit(self) -> list[dict[str, Any]]:
        while not self.done():
            self.step()
        return self.state.history

    # -- checkpoints -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "stage": self.state.stage,
            "epoch": self.state.epoch,
            "history": self.state.history,
            "best": self.state.best,
            "start_val_loss": self.state.start_val_loss,
            "train_config": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # a setting added after the checkpoint was written counts as its default
        saved = {**asdict(TrainConfig()), **state["train_config"]}
        if saved != asdict(self.cfg):
            diff = {k: (saved.get(k), v) for k, v in asdict(self.cfg).items() if saved.get(k) != v}
            raise ValueError(f"cannot resume: training settings differ from the checkpoint's (saved, now): {diff}")
        self.model.load_state_dict(state["model"])
        self.state = TrainerState(
            state["stage"], state["epoch"], state["history"], state["best"], state.get("start_val_loss")
        )
        self._cache = None
        self.optimizer = self._make_optimizer()
        if not self.done():
            self.optimizer.load_state_dict(state["optimizer"])
