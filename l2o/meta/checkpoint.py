"""Meta-training checkpoints: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l2o.io import load_torch_checked, save_torch_atomic

CHECKPOINT_FORMAT = "l2o.meta_train_checkpoint/1"


def save_checkpoint(path: str | Path, trainer_state: dict[str, Any]) -> Path:
    return save_torch_atomic(path, {"format": CHECKPOINT_FORMAT, **trainer_state})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Raises FileNotFoundError or ValueError (truncated, corrupt or foreign file)."""
    return load_torch_checked(path, CHECKPOINT_FORMAT, "meta-training checkpoint")
