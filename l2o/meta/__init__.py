"""Meta-training of learned optimizers (truncated back-propagation through
unrolled optimizee training)."""

from l2o.meta.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from l2o.meta.optimizee import BatchedOptimizee
from l2o.meta.trainer import MetaTrainConfig, MetaTrainer, unrolled_meta_loss

__all__ = [
    "BatchedOptimizee",
    "MetaTrainConfig",
    "MetaTrainer",
    "unrolled_meta_loss",
    "CHECKPOINT_FORMAT",
    "load_checkpoint",
    "save_checkpoint",
]
