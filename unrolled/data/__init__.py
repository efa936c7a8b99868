"""Datasets of the unrolled networks."""
