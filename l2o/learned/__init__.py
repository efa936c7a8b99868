"""Learned optimizers: DMoptimizer, RNNprop, HyperAdam; their shipped weights; and
an adapter that makes any of them a ``torch.optim.Optimizer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l2o.checked_call import build
from l2o.io import build_named, load_torch_checked, save_named
from l2o.learned.base import LearnedOptimizer, LearnedState, flatten, unflatten
from l2o.learned.dm import DMOptimizer
from l2o.learned.hyperadam import HyperAdam
from l2o.learned.rnnprop import RNNprop

LEARNED: dict[str, type[LearnedOptimizer]] = {"dm": DMOptimizer, "rnnprop": RNNprop, "hyperadam": HyperAdam}
WEIGHTS_FORMAT = "l2o.learned_optimizer/1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def make_learned(name: str, **config: Any) -> LearnedOptimizer:
    """A freshly initialised learned optimizer by name (``dm``, ``rnnprop``,
    ``hyperadam``) with its constructor arguments.

    Raises:
        ValueError: unknown name or argument, listing the valid ones.
    """
    return build("learned optimizer", name, LEARNED, config)


def save_learned(path: str | Path, opt: LearnedOptimizer, **extra: Any) -> Path:
    """Write ``opt``'s name, constructor arguments and meta-parameters atomically."""
    return save_named(path, WEIGHTS_FORMAT, opt.name, opt, **extra)


def load_learned(path: str | Path) -> LearnedOptimizer:
    """Rebuild a learned optimizer from a file written by ``save_learned`` or a
    meta-training checkpoint (``weights_only=True``; never unpickles code).

    Raises:
        FileNotFoundError, ValueError: missing, truncated or foreign file.
    """
    from l2o.meta.checkpoint import CHECKPOINT_FORMAT

    path = Path(path)
    obj = load_torch_checked(path, WEIGHTS_FORMAT, "learned-optimizer weights", also=(CHECKPOINT_FORMAT,))
    if obj["format"] == CHECKPOINT_FORMAT:
        obj = obj["learned"]
    return build_named(obj, path, LEARNED, "learned optimizer")


def pretrained_path(name: str, task: str = "mnist_mlp") -> Path:
    return WEIGHTS_DIR / f"{name}_{task}.pt"


def load_pretrained(name: str, task: str = "mnist_mlp") -> LearnedOptimizer:
    """The weights shipped with the package, meta-trained on ``task`` (see the card
    ``l2o/weights/<name>_<task>.md`` for the recipe and results).

    Raises:
        ValueError: unknown name; FileNotFoundError: no shipped weights for it.
    """
    if name not in LEARNED:
        raise ValueError(f"unknown learned optimizer {name!r}; valid choices: {', '.join(LEARNED)}")
    path = pretrained_path(name, task)
    if not path.is_file():
        shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))
        raise FileNotFoundError(f"no shipped weights {path.name}; shipped: {', '.join(shipped) or 'none'}")
    return load_learned(path)


from l2o.learned.adapter import LearnedOptimizerAdapter  # noqa: E402

__all__ = [
    "LEARNED",
    "LearnedOptimizer",
    "LearnedState",
    "DMOptimizer",
    "RNNprop",
    "HyperAdam",
    "LearnedOptimizerAdapter",
    "make_learned",
    "save_learned",
    "load_learned",
    "load_pretrained",
    "pretrained_path",
    "flatten",
    "unflatten",
]
