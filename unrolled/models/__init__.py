"""Unrolled networks."""
