"""l2o: learned optimizers, the hand-designed optimizers they are compared with,
optimizee tasks, and meta-training by meta-gradients through unrolled training."""

__version__ = "0.1.0"
