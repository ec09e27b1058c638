"""Image encodings: the one place where images become model inputs and back.

Visible encodings of the DBM (spec §1): binary (threshold or stochastic) and lossless 8-bit.
8-bit: each pixel value p in 0..255 becomes its 8 binary digits, least significant first and
pixel-major (pixel i occupies units 8i..8i+7), so a 28x28 image has 6272 visible units;
decoding sum_k 2^k b_k / 255 restores p / 255 exactly. ``encode`` / ``decode`` pick one by name;
``model_view`` gives the images a DBM of an encoding sees (what a GAN baseline trains on and a
classifier judges), without building the 8-bit vectors.

The EBM-anatomy ConvNets take images in [-1, 1] padded to 32 x 32 (``to_signed_padded``;
``from_signed_padded`` undoes it).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ENCODINGS", "encode", "decode", "model_view", "encode_binary", "decode_binary", "encode_8bit",
           "decode_8bit", "to_signed_padded", "from_signed_padded"]

ENCODINGS = ("binary", "8bit")


def _as_uint8(x: Tensor) -> Tensor:
    if x.dtype == torch.uint8:
        return x
    if x.is_floating_point():
        if bool(((x < 0) | (x > 1)).any()) or bool(torch.isnan(x).any()):
            raise ValueError("float images must lie in [0, 1]")
        return torch.round(x * 255).to(torch.uint8)
    if bool(((x < 0) | (x > 255)).any()):
        raise ValueError("integer images must lie in 0..255")
    return x.to(torch.uint8)


def encode_binary(images: Tensor, threshold: float = 0.5, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, ...) images (uint8 0..255 or float [0, 1]) -> (B, n_pixels) binary.

    Deterministic: pixel / 255 > threshold. With ``generator``: stochastic binarisation,
    unit = 1 with probability pixel / 255.
    """
    p = _as_uint8(images).flatten(1).to(torch.float64) / 255.0
    if generator is not None:
        u = torch.rand(p.shape, generator=generator, dtype=torch.float64, device=p.device)
        return (u < p).to(dtype)
    return (p > threshold).to(dtype)


def decode_binary(v: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
    """(B, n) binary -> float images in {0, 1}, reshaped to (B, *shape) when given."""
    return v.float() if shape is None else v.float().reshape(v.shape[0], *shape)


def encode_8bit(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, ...) images (uint8 or float in [0, 1]) -> (B, 8 * n_pixels) bits, LSB first."""
    p = _as_uint8(images).flatten(1).long()                                 # (B, n)
    bits = (p.unsqueeze(-1) >> torch.arange(8, device=p.device)) & 1        # (B, n, 8)
    return bits.flatten(1).to(dtype)


def decode_8bit(v: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
    """(B, 8n) bits -> float images sum_k 2^k b_k / 255 in [0, 1], (B, n) or (B, *shape)."""
    if v.shape[-1] % 8:
        raise ValueError(f"an 8-bit encoding has a multiple of 8 units, got {v.shape[-1]}")
    b = v.reshape(v.shape[0], -1, 8).round().long()
    p = (b << torch.arange(8, device=v.device)).sum(-1).float() / 255.0
    return p if shape is None else p.reshape(v.shape[0], *shape)


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")


def encode(images: Tensor, encoding: str = "binary", generator: torch.Generator | None = None) -> Tensor:
    """(B, ...) images -> (B, n_0) visible vectors in ``encoding``; ``generator``: stochastic
    binarisation (binary only)."""
    _check_encoding(encoding)
    return encode_binary(images, generator=generator) if encoding == "binary" else encode_8bit(images)


def decode(v: Tensor, encoding: str, shape: tuple[int, ...] | None = None) -> Tensor:
    """(B, n_0) visible vectors -> float images in [0, 1], (B, *shape) when given."""
    _check_encoding(encoding)
    return decode_binary(v, shape) if encoding == "binary" else decode_8bit(v, shape)


def model_view(images: Tensor, encoding: str) -> Tensor:
    """(N, H, W) or (N, C, H, W) images -> (N, C, H, W) float in [0, 1] as a DBM with ``encoding``
    sees them: thresholded at 1/2 (binary) or p / 255 (8-bit, lossless). Equal to
    ``decode(encode(images, encoding), encoding, shape)``."""
    _check_encoding(encoding)
    x = _as_uint8(images)
    x = (x.unsqueeze(1) if x.ndim == 3 else x).float() / 255
    return (x > 0.5).float() if encoding == "binary" else x


def to_signed_padded(images: Tensor, pad: int = 2) -> Tensor:
    """(N, H, W) or (N, C, H, W) images -> (N, C, H + 2 pad, W + 2 pad) float32 in [-1, 1], the
    border set to the background -1 (28 x 28 MNIST -> 32 x 32)."""
    x = _as_uint8(images)
    x = (x.unsqueeze(1) if x.ndim == 3 else x).float().div(255).mul(2).sub(1)
    return torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)


def from_signed_padded(x: Tensor, pad: int = 2) -> Tensor:
    """The inverse view: (N, C, H, W) in [-1, 1] -> the central (N, C, H - 2 pad, W - 2 pad) in [0, 1]."""
    return ((x[..., pad:x.shape[-2] - pad, pad:x.shape[-1] - pad].float().cpu() + 1) / 2).clamp(0, 1)
