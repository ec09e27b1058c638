"""The deep Boltzmann machine (spec §1).

State x = (v, h_1, ..., h_L) of binary units, h_0 := v. With optional fixed centering offsets
mu_l (spec §3, zero by default) and c_l := x_l - mu_l, the energy is

    E(x) = - sum_{l=0..L} b_l^T c_l - sum_{l=1..L} c_l^T W_l c_{l-1},     p(x) = exp(-E(x)) / Z.

Layers split into the *even* block {v, h_2, ...} and the *odd* block {h_1, h_3, ...}; each block
is conditionally independent given the other. Every interaction term couples one odd and one
even layer, so with a_l the logits of odd layer l given the even block,

    E(x) = - sum_{l even} b_l^T c_l - sum_{l odd} c_l^T a_l(x_even),                   (1)
    F(x_even) = - sum_{l even} b_l^T c_l - sum_{l odd} [softplus(a_l).sum() - mu_l^T a_l],  (2)

where F is the free energy with the odd layers summed out (Rao-Blackwellisation, spec §3).
A state is a tuple ``xs`` of L+1 tensors, ``xs[l]`` of shape (B, n_l), float, values in {0, 1}.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .validate import check_generator, check_state

__all__ = ["DBM", "orthogonal_", "random_bits"]


def transpose(w: Tensor, panel: int = 256) -> Tensor:
    """w.T as a new contiguous (m, n) tensor for w (n, m), copied in panels of ``panel`` rows of
    w: on the CPU about 1.7x faster than ``w.T.contiguous()`` for a 784 x 784 matrix out of cache
    (the panel's reads stay in cache while its columns are written)."""
    if w.device.type != "cpu" or w.shape[0] <= panel:
        return w.T.contiguous()
    out = torch.empty(w.shape[1], w.shape[0], dtype=w.dtype, device=w.device)
    for i in range(0, w.shape[0], panel):
        out[:, i:i + panel].copy_(w[i:i + panel].T)
    return out


def random_bits(shape: tuple[int, int], generator: torch.Generator, dtype=torch.float32,
                device=None) -> Tensor:
    """Uniform {0, 1} entries of the given (B, n) shape, 64 per random draw (unpacked int64)."""
    b, n = shape
    words = torch.randint(-(1 << 63), (1 << 63) - 1, (b, (n + 63) // 64), generator=generator,
                          dtype=torch.int64, device=device)
    shifts = torch.arange(64, device=device, dtype=torch.int64)
    bits = (words.unsqueeze(-1) >> shifts) & 1                                  # (b, words, 64)
    return bits.reshape(b, -1)[:, :n].to(dtype)


def orthogonal_(w: Tensor, generator: torch.Generator | None, gain: float = 1.0) -> Tensor:
    """Fill ``w`` (rows x cols) with a (semi-)orthogonal matrix drawn with ``generator``.

    QR of a Gaussian matrix with the sign of R's diagonal folded in (Haar measure), as
    ``torch.nn.init.orthogonal_`` but with an explicit generator.
    """
    rows, cols = w.shape
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64,
                    device=w.device)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if rows < cols:
        q = q.T
    with torch.no_grad():
        w.copy_(gain * q[:rows, :cols])
    return w


class DBM(nn.Module):
    """A deep Boltzmann machine with layer sizes (n_0, n_1, ..., n_L); L = 1 is an RBM.

    Parameters
    ----------
    layer_sizes : sequence of int, length L + 1 >= 2
        n_0 is the number of visible units.
    init : {"orthogonal", "gaussian", "zeros"}
        Weight initialisation; biases start at zero. "gaussian" draws N(0, sigma^2).
    sigma : float
        Gain of the orthogonal init, or the standard deviation of the Gaussian init.
    offsets : sequence of tensors (n_l,) or None
        Fixed centering offsets mu_l (zero when None).
    generator : torch.Generator, optional
        Source of randomness for the initialisation (a fresh one seeded 0 when None, so the
        global RNG is never touched).

    Attributes
    ----------
    weights : ParameterList, ``weights[l-1]`` = W_l of shape (n_l, n_{l-1})
    biases : ParameterList, ``biases[l]`` = b_l of shape (n_l,)
    offsets : list of buffers ``offsets[l]`` = mu_l of shape (n_l,)
    """

    def __init__(self, layer_sizes: Sequence[int], init: str = "orthogonal", sigma: float = 1.0,
                 offsets: Sequence[Tensor] | None = None, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        super().__init__()
        sizes = tuple(int(n) for n in layer_sizes)
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"layer_sizes must have at least 2 positive entries, got {layer_sizes}")
        self.layer_sizes = sizes
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(0)
        check_generator(generator, torch.device(device))
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(sizes[l], sizes[l - 1], dtype=dtype, device=device))
             for l in range(1, len(sizes))])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(n, dtype=dtype, device=device)) for n in sizes])
        for w in self.weights:
            if init == "orthogonal":
                orthogonal_(w, generator, gain=sigma)
            elif init == "gaussian":
                with torch.no_grad():
                    w.copy_(sigma * torch.randn(w.shape, generator=generator, dtype=torch.float64,
                                                device=w.device))
            elif init == "zeros":
                nn.init.zeros_(w)
            else:
                raise ValueError(f"unknown init {init!r}; use 'orthogonal', 'gaussian' or 'zeros'")
        for l, n in enumerate(sizes):
            mu = torch.zeros(n, dtype=dtype, device=device) if offsets is None else offsets[l]
            mu = torch.as_tensor(mu, dtype=dtype, device=device)
            if mu.shape != (n,):
                raise ValueError(f"offset {l} must have shape ({n},), got {tuple(mu.shape)}")
            self.register_buffer(f"mu_{l}", mu.clone())
        self.centered = offsets is not None

    # ----------------------------------------------------------------------- structure
    @property
    def depth(self) -> int:
        """L, the number of hidden layers."""
        return len(self.layer_sizes) - 1

    @property
    def offsets(self) -> list[Tensor]:
        return [getattr(self, f"mu_{l}") for l in range(len(self.layer_sizes))]

    def layers(self, parity: int) -> range:
        """Indices of the layers in the even (0) or odd (1) block."""
        return range(parity, len(self.layer_sizes), 2)

    def check_finite(self) -> None:
        """Raise ValueError if any parameter is NaN or infinite. One host sync: a NaN or inf makes
        the parameter's sum non-finite. A finite sum proves the entries finite; a non-finite one
        (possibly an overflow of huge finite entries) is checked entry by entry."""
        params = list(self.named_parameters())
        with torch.no_grad():
            ok = torch.stack([p.sum() for _, p in params]).isfinite()
            if bool(ok.all()):
                return
            bad = [name for (name, p), good in zip(params, ok.tolist()) if not good and not bool(p.isfinite().all())]
        if bad:
            raise ValueError(f"parameter {bad[0]} has NaN or infinite entries")

    def set_offsets(self, offsets: Sequence[Tensor]) -> None:
        """Change the centering offsets mu -> mu' keeping the represented distribution.

        b'_l = b_l + W_l d_{l-1} + W_{l+1}^T d_{l+1} with d = mu' - mu (spec §3).
        """
        with torch.no_grad():
            d = [torch.as_tensor(m, dtype=mu.dtype, device=mu.device) - mu
                 for m, mu in zip(offsets, self.offsets)]
            shift = [torch.zeros_like(b) for b in self.biases]
            for l in range(1, len(self.layer_sizes)):
                w = self.weights[l - 1]
                shift[l] += w @ d[l - 1]
                shift[l - 1] += w.T @ d[l]
            for b, s in zip(self.biases, shift):
                b.add_(s)
            for l, m in enumerate(offsets):
                getattr(self, f"mu_{l}").copy_(torch.as_tensor(m))
        self.centered = True

    # ----------------------------------------------------------------------- conditionals
    def centred(self, xs: Sequence[Tensor], l: int) -> Tensor:
        return xs[l] - self.offsets[l] if self.centered else xs[l]

    def logits(self, xs: Sequence[Tensor], l: int, v_part: Tensor | None = None) -> Tensor:
        """a_l = b_l + W_l c_{l-1} + W_{l+1}^T c_{l+1}: logits of p(x_l = 1 | neighbours), (B, n_l).

        ``v_part`` (B, n_1), the cached ``visible_term`` of a clamped v, replaces b_1 + W_1 c_0.
        """
        if l == 1 and v_part is not None:
            a = v_part
        else:
            a = self.biases[l]
            if l > 0:
                a = a + self.centred(xs, l - 1) @ self.weights[l - 1].T
        if l < self.depth:
            a = a + self.centred(xs, l + 1) @ self.weights[l]
        return a

    def weight_t(self, l: int) -> Tensor:
        """W_l^T as a contiguous detached copy, (n_{l-1}, n_l), cached until W_l changes (its
        version counter moves with every in-place update, e.g. an optimiser step)."""
        w = self.weights[l - 1]
        key = (w.data_ptr(), w._version)
        cache = self.__dict__.setdefault("_weight_t", {})
        if l not in cache or cache[l][0] != key:
            cache[l] = (key, transpose(w.detach()))
        return cache[l][1]

    def visible_term(self, v: Tensor) -> Tensor:
        """b_1 + W_1 c_0: the part of layer 1's logits that a clamped v fixes, (B, n_1)."""
        return self.biases[1] + (v - self.offsets[0] if self.centered else v) @ self.weights[0].T

    def block_logits(self, xs: Sequence[Tensor], parity: int, v_part: Tensor | None = None
                     ) -> dict[int, Tensor]:
        """Logits of every layer of one block given the other block: {l: (B, n_l)}."""
        return {l: self.logits(xs, l, v_part) for l in self.layers(parity)}

    # ----------------------------------------------------------------------- energies
    def energy(self, xs: Sequence[Tensor], odd_logits: dict[int, Tensor] | None = None) -> Tensor:
        """E(x), shape (B,), by eq. (1); pass the odd-block logits when they are cached."""
        check_state(self, xs)
        e, odd_logits = self._even_part(xs, odd_logits)
        for l, a in odd_logits.items():
            e = e - (self.centred(xs, l) * a).sum(-1)
        return e

    def energy_from_even(self, xs: Sequence[Tensor], even_logits: dict[int, Tensor],
                         v_part: Tensor | None = None) -> Tensor:
        """E(x), (B,), from the even block's logits given the odd block (eq. (1) summed the other
        way: -sum_{l odd} b_l^T c_l - sum_{l even} c_l^T a_l). When v's logits are not among them
        (v clamped), its terms are c_0^T b_0 + c_1^T (v_part - b_1), with ``v_part`` the cached
        ``visible_term`` of v (computed when None)."""
        check_state(self, xs)
        e = 0.0
        for l in self.layers(1):
            e = e - self.centred(xs, l) @ self.biases[l]
        for l, a in even_logits.items():
            e = e - (self.centred(xs, l) * a).sum(-1)
        if 0 not in even_logits:
            vp = self.visible_term(xs[0]) if v_part is None else v_part
            e = e - self.centred(xs, 0) @ self.biases[0] - (self.centred(xs, 1) * (vp - self.biases[1])).sum(-1)
        return e

    def _even_part(self, xs, odd_logits):
        """-sum_{l even} b_l^T c_l, and the odd-block logits (computed unless given)."""
        if odd_logits is None:
            odd_logits = self.block_logits(xs, 1)
        e = 0.0
        for l in self.layers(0):
            e = e - self.centred(xs, l) @ self.biases[l]
        return e, odd_logits

    def free_energy(self, xs: Sequence[Tensor], odd_logits: dict[int, Tensor] | None = None) -> Tensor:
        """F(x_even) with the odd layers summed out, shape (B,), eq. (2); odd entries of xs unused."""
        f, odd_logits = self._even_part(xs, odd_logits)
        for l, a in odd_logits.items():
            f = f - F.softplus(a).sum(-1)
            if self.centered:
                f = f + a @ self.offsets[l]
        return f

    def extra_repr(self) -> str:
        return f"layer_sizes={self.layer_sizes}, centered={self.centered}"

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def random_state(self, batch: int, generator: torch.Generator, v: Tensor | None = None) -> tuple[Tensor, ...]:
        """A uniformly random state (B, n_l) per layer; ``v`` (B, n_0) replaces the visible layer."""
        p0 = self.weights[0]
        return tuple(v if (l == 0 and v is not None) else
                     random_bits((batch, n), generator, p0.dtype, p0.device)
                     for l, n in enumerate(self.layer_sizes))

