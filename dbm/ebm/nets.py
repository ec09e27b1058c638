"""Energy networks of the EBM-anatomy paper (spec "Model and learning").

``EnergyNet`` turns a network f(x) with one output per example into the energy
U(x) = f(x) / T with T = eps^2 / 2, the authors' parameterisation: a Langevin step
x - (eps^2 / 2) grad U + eps z is then x - grad f + eps z, and their learning rates carry over
(see ``dbm.ebm.train``). Bodies:

- ``toy``: the authors' toy net, an MLP on 2-D points 2 -> n_f -> 2 n_f -> 2 n_f -> 2 n_f -> 1
  with LeakyReLU 0.05 (their 1x1 convolutions on a 1x1 image are the same map); 10,593
  parameters at n_f = 32. ``toy-wide`` is the project's earlier variant, 2 -> 4 n_f -> 4 n_f ->
  4 n_f -> 1 (33.5k parameters at n_f = 32).
- ``vanilla``: conv 3x3 (n_f), then 4x4 stride-2 convs to 2 n_f, 4 n_f, 8 n_f, then a
  (S/8)x(S/8) conv to one output (4x4 for the paper's S = 32); LeakyReLU 0.05; input (B, C, S, S)
  with S = 16, 32 or 64 (16: the CPU budget profile of ``reproduce.ebm_anatomy_mnist``).
- ``nonlocal``: the authors' non-local net: conv 3x3 (n_f) + LeakyReLU + 2x2 max-pool, then twice
  [non-local block + conv 3x3 + LeakyReLU + 2x2 max-pool] to 2 n_f and 4 n_f channels, then two
  linear layers (8 n_f, 1). Two attention blocks, each after pooling, with g and phi max-pooled
  2x2 (the keys sub-sampled); 627,953 parameters for (1, 32, 32) at n_f = 32.
  ``nonlocal-full`` is the project's earlier variant: three stages of conv + LeakyReLU + non-local
  block (no sub-sampling) + max-pool, the first block at full resolution (about 14x the cost of
  ``nonlocal`` per Langevin step at 32 x 32, n_f = 16).
Weights follow PyTorch's default initialisation (as in the authors' code: uniform on
+-1/sqrt(fan_in) for weights and biases), drawn from the given generator, never the global RNG.
"""
from __future__ import annotations


import torch
from torch import Tensor, nn

from ..nninit import seeded

__all__ = ["EnergyNet", "make_net", "NET_NAMES", "TOY_NETS", "IMAGE_SIDES", "NonLocalBlock"]

NET_NAMES = ("toy", "toy-wide", "vanilla", "nonlocal", "nonlocal-full")
TOY_NETS = ("toy", "toy-wide")
IMAGE_SIDES = (16, 32, 64)


class EnergyNet(nn.Module):
    """U(x) = f(x) / temperature; ``forward(x)`` (B, *shape) -> (B,)."""

    def __init__(self, body: nn.Module, shape: tuple[int, ...], temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.body, self.shape, self.temperature = body, tuple(shape), float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"expected inputs of shape (B, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        return self.body(x).reshape(x.shape[0]) / self.temperature


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. 2018): x + W softmax(theta(x)^T phi(x)) g(x);
    (B, C, H, W) -> (B, C, H, W), inner width max(1, C // 2). ``sub_sample``: g(x) and phi(x) are
    max-pooled 2x2 (H W / 4 keys; H and W even), as in the authors' net. ``make_net`` zeroes W,
    so a fresh block is the identity."""

    def __init__(self, channels: int, sub_sample: bool = True):
        super().__init__()
        inner = max(1, channels // 2)
        self.theta, self.phi, self.g = (nn.Conv2d(channels, inner, 1) for _ in range(3))
        self.out = nn.Conv2d(inner, channels, 1)
        self.pool = nn.MaxPool2d(2) if sub_sample else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)                  # (B, HW, inner)
        k = self.pool(self.phi(x)).flatten(2)                         # (B, inner, HW'), HW' = HW or HW/4
        v = self.pool(self.g(x)).flatten(2).transpose(1, 2)           # (B, HW', inner)
        att = torch.softmax(q @ k, dim=-1)                            # (B, HW, HW')
        y = (att @ v).transpose(1, 2).reshape(b, -1, h, w)            # (B, inner, H, W)
        return x + self.out(y)


def _mlp(widths: tuple[int, ...]) -> nn.Module:
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.05)]
    return nn.Sequential(*layers[:-1])                                # no activation after the output


def _toy(n_f: int, wide: bool) -> nn.Module:
    return _mlp((2, 4 * n_f, 4 * n_f, 4 * n_f, 1) if wide else (2, n_f, 2 * n_f, 2 * n_f, 2 * n_f, 1))


def _vanilla(c: int, side: int, n_f: int) -> nn.Module:
    act = lambda: nn.LeakyReLU(0.05)                                  # noqa: E731
    return nn.Sequential(nn.Conv2d(c, n_f, 3, 1, 1), act(),          # (B, n_f, S, S)
                         nn.Conv2d(n_f, 2 * n_f, 4, 2, 1), act(),    # (B, 2n_f, S/2, S/2)
                         nn.Conv2d(2 * n_f, 4 * n_f, 4, 2, 1), act(),  # (B, 4n_f, S/4, S/4)
                         nn.Conv2d(4 * n_f, 8 * n_f, 4, 2, 1), act(),  # (B, 8n_f, S/8, S/8)
                         nn.Conv2d(8 * n_f, 1, side // 8, 1, 0))     # (B, 1, 1, 1)


def _nonlocal(c: int, side: int, n_f: int) -> nn.Module:
    """The authors' non-local net (two sub-sampled blocks, each after pooling)."""
    act = lambda: nn.LeakyReLU(0.05)                                  # noqa: E731
    return nn.Sequential(nn.Conv2d(c, n_f, 3, 1, 1), act(), nn.MaxPool2d(2),           # (B, n_f, S/2, S/2)
                         NonLocalBlock(n_f), nn.Conv2d(n_f, 2 * n_f, 3, 1, 1), act(), nn.MaxPool2d(2),
                         NonLocalBlock(2 * n_f), nn.Conv2d(2 * n_f, 4 * n_f, 3, 1, 1), act(),
                         nn.MaxPool2d(2),                                               # (B, 4n_f, S/8, S/8)
                         nn.Flatten(), nn.Linear(4 * n_f * (side // 8) ** 2, 8 * n_f), act(), nn.Linear(8 * n_f, 1))


def _nonlocal_full(c: int, side: int, n_f: int) -> nn.Module:
    """The project's earlier variant: a full-resolution block in each of three stages."""
    layers, ch = [], c
    for mult in (1, 2, 4):
        layers += [nn.Conv2d(ch, mult * n_f, 3, 1, 1), nn.LeakyReLU(0.05), NonLocalBlock(mult * n_f, sub_sample=False),
                   nn.MaxPool2d(2)]
        ch = mult * n_f
    flat = ch * (side // 8) ** 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 8 * n_f), nn.LeakyReLU(0.05),
                         nn.Linear(8 * n_f, 1))


_IMAGE_BODIES = {"vanilla": _vanilla, "nonlocal": _nonlocal, "nonlocal-full": _nonlocal_full}


def make_net(name: str, shape: tuple[int, ...], n_f: int, generator: torch.Generator,
             temperature: float = 1.0) -> EnergyNet:
    """An ``EnergyNet`` with body ``name`` for inputs (B, *shape): (2,) for the toy nets,
    (C, S, S) with S in ``IMAGE_SIDES`` for the ConvNets."""
    shape = tuple(shape)
    if name in TOY_NETS:
        if shape != (2,):
            raise ValueError(f"the {name} net takes 2-D points, shape (2,), got {shape}")
        build = lambda: _toy(n_f, wide=name == "toy-wide")           # noqa: E731
    elif name in _IMAGE_BODIES:
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in IMAGE_SIDES:
            raise ValueError(f"the {name} net takes square images (C, S, S) with S in {IMAGE_SIDES}, got {shape}")
        build = lambda: _IMAGE_BODIES[name](shape[0], shape[1], n_f)  # noqa: E731
    else:
        raise ValueError(f"unknown net {name!r}; choose from {NET_NAMES}")
    body = seeded(build, generator, init="torch-default")            # PyTorch's default init, seeded
    with torch.no_grad():
        for m in body.modules():                                      # non-local blocks start as the identity
            if isinstance(m, NonLocalBlock):                          # (output conv zero, as in the paper's code)
                m.out.weight.zero_()
                m.out.bias.zero_()
    return EnergyNet(body, shape, temperature)
