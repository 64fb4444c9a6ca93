"""Deterministic preprocessing: seeds, splits, quantization, binarization, dequantization.

Every random choice takes its seed from ``derive_seed(seed, *tags)``, so the result of a
step depends only on the run's seed and the step's name, never on what ran before it.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import Tensor

FIXED_SEED = 0
"""Seed of choices that must be the same in every run (test splits, test-set binarization),
so that numbers from runs with different ``data.seed`` are measured on the same data."""


def derive_seed(seed: int, *tags: int | str) -> int:
    """A 63-bit seed that depends only on ``seed`` and the ``tags`` (ints or strings)."""
    key = [zlib.crc32(t.encode()) if isinstance(t, str) else int(t) for t in tags]
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=key).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def generator(seed: int, *tags: int | str, device: torch.device | str | None = None) -> torch.Generator:
    """A ``torch.Generator`` (on ``device``) seeded with ``derive_seed(seed, *tags)``."""
    g = torch.Generator(device=device if device is not None else "cpu")
    g.manual_seed(derive_seed(seed, *tags))
    return g


def split_indices(n: int, fraction: float, seed: int, *tags: int | str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into ``(rest, part)``: ``part`` holds ``fraction*n`` indices (rounded
    half up; at least one when ``fraction > 0`` and ``n > 1``) chosen by a permutation seeded
    with ``(seed, *tags)``; both come back sorted."""
    k = int(fraction * n + 0.5)
    if fraction > 0 and k == 0 and n > 1:
        k = 1
    k = min(k, max(n - 1, 0))
    perm = np.random.default_rng(derive_seed(seed, "split", *tags)).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def quantize(x: Tensor, bits: int) -> Tensor:
    """Snap values in [0, 1] to the grid ``k / (2**bits - 1)``, ``k = 0 .. 2**bits - 1``."""
    levels = (1 << bits) - 1
    return torch.round(x * levels).div_(levels)


def binarize(x: Tensor, g: torch.Generator) -> Tensor:
    """One Bernoulli draw per value: 1 with probability ``x`` (values in [0, 1]), else 0."""
    u = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)


def dequantize(x: Tensor, bits: int, g: torch.Generator) -> Tensor:
    """Uniform dequantization: ``(k + U) / 2**bits`` with ``k = round(x * (2**bits - 1))``.

    Each value stays inside its own bin ``[k, k + 1) / 2**bits`` (so in ``[0, 1)``) even where
    float rounding of ``k + U`` would reach ``k + 1``."""
    levels = (1 << bits) - 1
    k = torch.round(x * levels)
    u = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype)
    upper = torch.nextafter((k + 1).div_(levels + 1), torch.zeros((), dtype=x.dtype, device=x.device))
    return torch.minimum((k + u).div_(levels + 1), upper)


def binarize_chunked(x: Tensor, seed: int, *tags: int | str, chunk: int = 8192) -> Tensor:
    """``binarize`` a whole split once, with one seeded generator, in chunks of examples."""
    g = generator(seed, *tags)
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], chunk):
        out[start : start + chunk] = binarize(x[start : start + chunk], g)
    return out


def dequantize_chunked(x: Tensor, bits: int, seed: int, *tags: int | str, chunk: int = 8192) -> Tensor:
    """``dequantize`` a whole split once, with one seeded generator."""
    g = generator(seed, *tags)
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], chunk):
        out[start : start + chunk] = dequantize(x[start : start + chunk], bits, g)
    return out
