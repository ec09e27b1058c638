"""One script per paper figure; run each from the repository root as ``python -m reproduce.<name>``."""
