"""Conv blocks for the ``hierarchical`` architecture (``blocks: conv``): spatial latents.

Every block takes and returns *flat* tensors ``(..., n)`` -- the concatenation of its
inputs' feature maps flattened -- so that the hierarchy's probabilistic code is the same for
MLP and conv blocks. Level l (1..L) lives at the resolution after l stride-2 convolutions
(``ceil(side / 2**l)``, as the ``conv`` nets); its latent z_l has ``latent_dims[l-1]``
channels per position. A top-down block computes at its level and then doubles the
resolution with a stride-2 transposed convolution whose ``output_padding`` (0 or 1) gives
exactly the size below, so nothing is cropped or interpolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from ..nets.conv import side_sizes
from ..nets.layers import make_activation

Shape = tuple[int, int, int]


class FlatConv(nn.Module):
    """``body`` applied to the channel concatenation of ``parts`` (their shapes), read from and written to flat tensors."""

    def __init__(self, parts: Sequence[Shape], body: nn.Module) -> None:
        super().__init__()
        self.parts = [tuple(int(v) for v in p) for p in parts]
        self.sizes = [math.prod(p) for p in self.parts]
        self.body = body

    def forward(self, flat: Tensor) -> Tensor:
        lead = flat.shape[:-1]
        pieces = flat.reshape(-1, flat.shape[-1]).split(self.sizes, dim=-1)
        maps = [piece.reshape(-1, *shape) for piece, shape in zip(pieces, self.parts)]
        out = self.body(maps[0] if len(maps) == 1 else torch.cat(maps, dim=1))
        return out.reshape(*lead, -1)


class ConvGaussianHead(nn.Module):
    """Features -> a diagonal Gaussian over the flattened spatial latent (``loc`` and ``raw`` channel halves)."""

    def __init__(self, block: FlatConv, min_scale: float) -> None:
        super().__init__()
        self.block = block
        self.min_scale = float(min_scale)

    def forward(self, h: Tensor) -> Independent:
        loc, raw = self.block(h).chunk(2, dim=-1)
        return Independent(Normal(loc, nn.functional.softplus(raw) + self.min_scale), 1)


def _up(c_in: int, c_out: int, k: int, size: tuple[int, int], target: tuple[int, int]) -> nn.ConvTranspose2d:
    pad = (target[0] - (2 * size[0] - 1), target[1] - (2 * size[1] - 1))
    return nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=pad)


def build_conv_blocks(
    data_shape: Shape, latent_channels: Sequence[int], channels: Sequence[int], param_channels: int,
    kernel_size: int, activation: str, min_scale: float, who: str, condition_channels: int = 0,
) -> dict[str, object]:
    """The modules of a conv hierarchy and the flat latent sizes: ``up``, ``top_head``, ``td``,
    ``prior_heads``, ``post_heads``, ``out`` (as ``HierarchicalVAE`` uses them), ``dims`` and
    ``sides`` (height and width of each resolution, the data's first). ``condition_channels``:
    a conditional hierarchy's y, as that many constant channels joining x (the first bottom-up
    block) and z_L (the top top-down block)."""
    c0, height, width = data_shape
    n = len(latent_channels)
    hs, ws = side_sizes(height, n), side_sizes(width, n)
    res = list(zip(hs, ws))  # res[r]: the size at level r (0: the data)
    feat = [channels[0], *channels]  # feat[r]: channels of the features at resolution r
    k = kernel_size

    def act() -> nn.Module:
        return make_activation(activation, who)

    cy = int(condition_channels)
    up, c_prev = [], c0
    for r in range(1, n + 1):
        parts = [(c_prev, *res[r - 1])] + ([(cy, *res[0])] if r == 1 and cy else [])
        body = nn.Sequential(nn.Conv2d(sum(p[0] for p in parts), channels[r - 1], k, stride=2, padding=k // 2), act())
        up.append(FlatConv(parts, body))
        c_prev = channels[r - 1]
    top = FlatConv([(channels[-1], *res[n])], nn.Conv2d(channels[-1], 2 * latent_channels[-1], 1))
    td = []
    for i in range(n):  # td[i]: at level i + 1, from z_{i+1} (and t_{i+2}), up to resolution i
        r = i + 1
        parts = [(latent_channels[i], *res[r])] + ([(feat[r], *res[r])] if i < n - 1 else [(cy, *res[r])] if cy else [])
        c_in = sum(p[0] for p in parts)
        body = nn.Sequential(
            nn.Conv2d(c_in, feat[r], k, padding=k // 2), act(),
            _up(feat[r], feat[r - 1], k, res[r], res[r - 1]), act(),
        )
        td.append(FlatConv(parts, body))
    prior_heads = [FlatConv([(feat[i + 1], *res[i + 1])], nn.Conv2d(feat[i + 1], 2 * latent_channels[i], 1)) for i in range(n - 1)]
    post_heads = [
        FlatConv([(channels[i], *res[i + 1]), (feat[i + 1], *res[i + 1])], nn.Conv2d(channels[i] + feat[i + 1], 2 * latent_channels[i], 1))
        for i in range(n - 1)
    ]
    out = FlatConv([(feat[0], *res[0])], nn.Conv2d(feat[0], param_channels, k, padding=k // 2))
    dims = flat_dims(data_shape, latent_channels)
    return {
        "up": nn.ModuleList(up), "top_head": ConvGaussianHead(top, min_scale), "td": nn.ModuleList(td),
        "prior_heads": nn.ModuleList(prior_heads), "post_heads": nn.ModuleList(post_heads), "out": out, "dims": dims,
        "sides": tuple(res),
    }


def flat_dims(data_shape: Shape, latent_channels: Sequence[int]) -> tuple[int, ...]:
    """The size of each flattened spatial latent z_l: channels x the level's height x width."""
    n = len(latent_channels)
    hs, ws = side_sizes(data_shape[1], n), side_sizes(data_shape[2], n)
    return tuple(latent_channels[i] * hs[i + 1] * ws[i + 1] for i in range(n))


def conv_weights(data_shape: Shape, latent_channels: Sequence[int], channels: Sequence[int], param_channels: int, k: int,
                 condition_channels: int = 0) -> list[tuple[str, int]]:
    """``(description, weights)`` of every conv of ``build_conv_blocks``, counted before building (for ``check_weights``)."""
    def conv(c_in: int, c_out: int, size: int) -> tuple[str, int]:
        return f"Conv({c_in} -> {c_out}, {size}x{size})", c_in * c_out * size * size + c_out

    n = len(latent_channels)
    feat = [channels[0], *channels]
    out, c_prev = [], data_shape[0] + int(condition_channels)
    for r in range(1, n + 1):
        out.append(conv(c_prev, channels[r - 1], k))
        c_prev = channels[r - 1]
    out.append(conv(channels[-1], 2 * latent_channels[-1], 1))
    for i in range(n):
        r = i + 1
        c_in = latent_channels[i] + (feat[r] if i < n - 1 else int(condition_channels))
        out += [conv(c_in, feat[r], k), conv(feat[r], feat[r - 1], k)]
    for i in range(n - 1):
        out += [conv(feat[i + 1], 2 * latent_channels[i], 1), conv(channels[i] + feat[i + 1], 2 * latent_channels[i], 1)]
    out.append(conv(feat[0], param_channels, k))
    return out
