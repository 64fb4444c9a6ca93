"""Priors over the grid of codes c = (c_1, ..., c_L), c_i in {0, ..., K-1}, in raster order.

``uniform`` -- p(c) = K^-L, nothing to learn. ``transformer`` -- an autoregressive model
p(c) = prod_i p(c_i | c_<i): a small decoder-only transformer (pre-norm blocks of causal
self-attention and a GELU MLP, learned position embeddings) reading a start token followed by
c_1 .. c_{L-1}; its output layer starts at zero, so it starts as the uniform prior.

Both give ``log_prob(codes (B, L)) -> (B,)`` in nats and ``sample(n, device) -> (n, L)`` codes;
``learned`` says whether there is anything to train.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class UniformPrior(nn.Module):
    """p(c) = K^-L for every grid of L codes out of K."""

    learned = False

    def __init__(self, num_codes: int, positions: int) -> None:
        super().__init__()
        self.num_codes, self.positions = int(num_codes), int(positions)

    def log_prob(self, codes: Tensor) -> Tensor:
        return torch.full(codes.shape[:-1], -self.positions * math.log(self.num_codes), dtype=torch.float64,
                          device=codes.device)

    def sample(self, n: int, device: torch.device | None = None) -> Tensor:
        return torch.randint(self.num_codes, (int(n), self.positions), device=device)

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, positions={self.positions}"


class _Block(nn.Module):
    """h + attention(norm(h)), then + mlp(norm(h)); attention is causal over the positions."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: Tensor) -> Tensor:
        b, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, w / heads)
        h = h + self.proj(a.transpose(1, 2).reshape(b, t, w))
        return h + self.mlp(self.norm2(h))


class TransformerPrior(nn.Module):
    """Autoregressive p(c) over L codes out of K (see the module doc).

    Parameters: ``width`` (of the token and position embeddings and every block), ``layers``
    (blocks), ``heads`` (attention heads; must divide ``width``).
    """

    learned = True
    SAMPLE_CHUNK = 1024  #: ``sample`` draws at most this many grids at a time

    def __init__(self, num_codes: int, positions: int, width: int = 128, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.num_codes, self.positions = int(num_codes), int(positions)
        self.token = nn.Embedding(self.num_codes + 1, width)  # the last token is the start token
        self.position = nn.Parameter(torch.randn(self.positions, width) * 0.02)
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, self.num_codes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def logits(self, prefix: Tensor) -> Tensor:
        """Logits of c_{t+1} given the start token and c_1..c_t for every t < T: ``(B, T) -> (B, T, K)``;
        ``prefix[:, 0]`` is the start token."""
        h = self.token(prefix) + self.position[: prefix.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def _start(self, n: int, device: torch.device | None) -> Tensor:
        return torch.full((n, 1), self.num_codes, dtype=torch.long, device=device)

    def log_prob(self, codes: Tensor) -> Tensor:
        prefix = torch.cat([self._start(len(codes), codes.device), codes[:, :-1]], dim=1)
        logp = torch.log_softmax(self.logits(prefix), dim=-1)
        return logp.gather(-1, codes.unsqueeze(-1)).squeeze(-1).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, device: torch.device | None = None) -> Tensor:
        device = device or self.head.weight.device
        if int(n) == 0:
            return torch.zeros((0, self.positions), dtype=torch.long, device=device)
        return torch.cat([self._sample(m, device) for m in _chunks(int(n), self.SAMPLE_CHUNK)])

    def _sample(self, n: int, device: torch.device) -> Tensor:
        seq = self._start(n, device)
        for _ in range(self.positions):
            probs = torch.softmax(self.logits(seq)[:, -1].double(), dim=-1)
            seq = torch.cat([seq, torch.multinomial(probs, 1)], dim=1)
        return seq[:, 1:]

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, positions={self.positions}"


def _chunks(n: int, size: int) -> list[int]:
    return [min(size, n - start) for start in range(0, n, size)]


PRIORS = {"uniform": UniformPrior, "transformer": TransformerPrior}
