"""Hydra applications that run the l2o and unrolled libraries from configs/."""
