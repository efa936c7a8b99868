"""Unrolled networks by name, and their weight files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l2o.checked_call import build
from l2o.io import build_named, load_torch_checked, save_named
from unrolled.models.admm_net import ADMMNet, load_authors_network
from unrolled.models.base import UnrolledModel
from unrolled.models.gd_mrf import GDMRF

MODELS: dict[str, Any] = {"admm_net": ADMMNet, "gd_mrf": GDMRF}
WEIGHTS_FORMAT = "unrolled.model/1"
TRAIN_CHECKPOINT_FORMAT = "unrolled.train_checkpoint/1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def make_model(name: str, **config: Any) -> UnrolledModel:
    """Raises ValueError for an unknown name or argument, listing the valid ones."""
    return build("model", name, MODELS, config)


def model_name(model: UnrolledModel) -> str:
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model")


def save_model(path: str | Path, model: UnrolledModel, **extra: Any) -> Path:
    return save_named(path, WEIGHTS_FORMAT, model_name(model), model, **extra)


def load_model(path: str | Path, **overrides: Any) -> tuple[UnrolledModel, dict[str, Any]]:
    """A model and the file's extra fields, from ``save_model``'s file or a training
    checkpoint of ``experiments.train_unrolled`` (``weights_only=True``).
    ``overrides`` replace constructor arguments that do not change the parameters
    (e.g. ``real_images``).

    Raises:
        FileNotFoundError, ValueError: missing, truncated or foreign file.
    """
    obj = load_torch_checked(path, WEIGHTS_FORMAT, "unrolled-model weights", also=(TRAIN_CHECKPOINT_FORMAT,))
    if obj["format"] == TRAIN_CHECKPOINT_FORMAT:
        obj = {"name": obj["model_name"], "config": obj["model_config"], "state_dict": obj["model"]}
    model = build_named(obj, path, MODELS, "model", **overrides)
    extra = {k: v for k, v in obj.items() if k not in ("format", "name", "config", "state_dict")}
    return model, extra


def shipped_path(name: str, data: str, tag: str) -> Path:
    """``unrolled/weights/<model>_<data>_<tag>.pt``; the tag names the setting:
    ``r20`` (MRI, 20% sampling), ``s25_stagewise`` (denoising, sigma 25, variant)."""
    return WEIGHTS_DIR / f"{name}_{data}_{tag}.pt"


def ratio_tag(ratio: float) -> str:
    return f"r{round(ratio * 100)}"


__all__ = [
    "MODELS",
    "ADMMNet",
    "UnrolledModel",
    "load_authors_network",
    "make_model",
    "save_model",
    "load_model",
    "shipped_path",
    "WEIGHTS_FORMAT",
]
