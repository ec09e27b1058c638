import os
import pathlib

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def gen():
    """A fresh CPU generator with a fixed seed (tests never use the global RNG)."""
    return torch.Generator().manual_seed(1234)


def shared_data_dir():
    """../shared/data when present (the project's offline copies of MNIST and Fashion-MNIST)."""
    d = ROOT.parent / "shared" / "data"
    return d if d.is_dir() else None
