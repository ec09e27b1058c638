"""Baselines trained in the same harness as the DBMs: WGAN-GP and WGAN (``wgan``, ``train_gan``)."""
