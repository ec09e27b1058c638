"""Visible encodings (spec §1): binary (threshold or stochastic) and lossless 8-bit.

8-bit: each pixel value p in 0..255 becomes its 8 binary digits, least significant first and
pixel-major (pixel i occupies units 8i..8i+7), so a 28x28 image has 6272 visible units;
decoding sum_k 2^k b_k / 255 restores p / 255 exactly.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["encode_binary", "decode_binary", "encode_8bit", "decode_8bit"]


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
