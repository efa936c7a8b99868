"""Datasets for the optimizee tasks."""
