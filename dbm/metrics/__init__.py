"""Evaluation metrics: annealed importance sampling and the likelihood bound (``ais``), the
Frechet distance (``frechet``), feature extractors and the Inception weights of FID (``fid``),
and the suite's classifier for accuracy and classifier-Frechet distances (``classifier``)."""
