"""Evaluation metrics: annealed importance sampling (``ais``)."""
