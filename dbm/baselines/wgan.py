"""WGAN-GP (Gulrajani et al. 2017) and WGAN with weight clipping (Arjovsky et al. 2017) baselines.

Architectures and hyper-parameters of the reference code (``../shared/papers/baselines.md``):
- 28x28 (MNIST, Fashion-MNIST), width 64: generator z (128) -> linear 4*4*4W, ReLU -> deconv 5x5
  -> 2W (8x8), ReLU, crop to 7x7 -> W (14x14), ReLU -> 1 (28x28), sigmoid; critic conv 5x5
  stride 2: 1 -> W -> 2W -> 4W, LeakyReLU(0.2) -> linear -> 1. No batch norm in the critic.
- 32x32 (CIFAR-10), DCGAN-like, width 128: the generator has BN + ReLU and a tanh output (images
  scaled to [-1, 1] inside); the critic as above with 3 input channels.
Losses: critic  mean D(fake) - mean D(real) [+ lambda E(|grad D(x_hat)| - 1)^2 on per-sample
interpolates, WGAN-GP]; generator  -mean D(fake). ``n_critic`` critic steps per generator step.
WGAN-GP: Adam(lr 1e-4, betas (0.5, 0.9)), lambda 10; WGAN: RMSProp(lr 5e-5), clip 0.01.
Images enter and leave in [0, 1]: (B, C, H, W).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nninit import seeded

__all__ = ["Generator", "Critic", "build", "critic_loss", "generator_loss", "gradient_penalty"]

Z_DIM = 128


class Generator(nn.Module):
    """(B, 128) noise -> (B, C, H, W) images in [0, 1]."""

    def __init__(self, shape: tuple[int, int, int], width: int):
        super().__init__()
        c, side, _ = shape
        self.shape, self.width = shape, width
        bn = side == 32                                      # DCGAN-like CIFAR generator
        norm1 = (lambda n: nn.BatchNorm1d(n)) if bn else (lambda n: nn.Identity())
        norm2 = (lambda n: nn.BatchNorm2d(n)) if bn else (lambda n: nn.Identity())
        up = lambda i, o: nn.ConvTranspose2d(i, o, 5, stride=2, padding=2, output_padding=1)   # noqa: E731
        self.fc = nn.Sequential(nn.Linear(Z_DIM, 4 * 4 * 4 * width), norm1(4 * 4 * 4 * width), nn.ReLU())
        self.up1 = nn.Sequential(up(4 * width, 2 * width), norm2(2 * width), nn.ReLU())
        self.up2 = nn.Sequential(up(2 * width, width), norm2(width), nn.ReLU())
        self.out = up(width, c)
        self.crop = side == 28                               # 8x8 -> 7x7 so that 7 -> 14 -> 28

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(-1, 4 * self.width, 4, 4)
        x = self.up1(x)
        if self.crop:
            x = x[:, :, :7, :7]
        x = self.out(self.up2(x))
        return torch.sigmoid(x) if self.crop else (torch.tanh(x) + 1) / 2


class Critic(nn.Module):
    """(B, C, H, W) images in [0, 1] -> (B,) critic values."""

    def __init__(self, shape: tuple[int, int, int], width: int):
        super().__init__()
        c, side, _ = shape
        self.signed = side == 32                             # the CIFAR recipe works in [-1, 1]
        down = lambda i, o: nn.Conv2d(i, o, 5, stride=2, padding=2)   # noqa: E731
        self.body = nn.Sequential(down(c, width), nn.LeakyReLU(0.2), down(width, 2 * width), nn.LeakyReLU(0.2),
                                  down(2 * width, 4 * width), nn.LeakyReLU(0.2), nn.Flatten())
        self.fc = nn.Linear(4 * 4 * 4 * width, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(2 * x - 1 if self.signed else x)).squeeze(-1)


def build(shape: tuple[int, int, int], width: int, generator: torch.Generator) -> tuple[Generator, Critic]:
    return (seeded(lambda: Generator(shape, width), generator),
            seeded(lambda: Critic(shape, width), generator, nonlinearity="leaky_relu"))


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, u: Tensor) -> Tensor:
    """E(|grad D(x_hat)|_2 - 1)^2 at x_hat = u real + (1 - u) fake; u: (B,) uniforms."""
    x = (u.view(-1, 1, 1, 1) * real + (1 - u.view(-1, 1, 1, 1)) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def critic_loss(critic: Critic, real: Tensor, fake: Tensor, u: Tensor | None, lam: float) -> tuple[Tensor, dict]:
    """mean D(fake) - mean D(real) (+ lam * penalty when u is given); info: the Wasserstein estimate."""
    w = critic(real).mean() - critic(fake).mean()
    loss = -w
    info = {"wasserstein": float(w.detach())}
    if u is not None:
        gp = gradient_penalty(critic, real, fake, u)
        loss = loss + lam * gp
        info["gradient_penalty"] = float(gp.detach())
    return loss, info


def generator_loss(critic: Critic, fake: Tensor) -> Tensor:
    return -critic(fake).mean()
