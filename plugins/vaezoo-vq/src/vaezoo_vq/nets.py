"""The encoder and decoder of a VQ-VAE: x -> one D-vector per latent position -> likelihood parameters.

``net: mlp`` -- a fixed number of positions L: the encoder is an MLP to L*D numbers, the decoder
an MLP from the L*D numbers of z_q. ``net: conv`` -- a spatial grid (van den Oord et al. 2017,
sec. 4.1): ``downsample`` stride-2 4x4 convolutions, a 3x3 convolution and ``res_blocks``
residual blocks (ReLU, 3x3 conv, ReLU, 1x1 conv) to a 1x1 convolution with D channels, so the
grid is H/2^d x W/2^d and its positions are taken in raster order (row by row); the decoder
mirrors it with stride-2 4x4 transposed convolutions.

Encoders map ``(B, *data_shape)`` to ``(B, L, D)``; decoders ``(B, L, D)`` to ``(B, *param_shape)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

NETS = ("conv", "mlp")


def _mlp(n_in: int, widths: Sequence[int], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class MLPEncoder(nn.Module):
    """x -> ``(B, positions, dim)`` through hidden layers of ``hidden`` widths (ReLU)."""

    def __init__(self, data_shape: tuple[int, ...], positions: int, dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.positions, self.dim = positions, dim
        self.net = _mlp(math.prod(data_shape), hidden, positions * dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).view(len(x), self.positions, self.dim)


class MLPDecoder(nn.Module):
    """``(B, positions, dim)`` -> ``(B, *param_shape)`` through hidden layers of ``hidden`` widths (ReLU)."""

    def __init__(self, positions: int, dim: int, param_shape: tuple[int, ...], hidden: Sequence[int]) -> None:
        super().__init__()
        self.param_shape = tuple(param_shape)
        self.net = _mlp(positions * dim, hidden, math.prod(self.param_shape))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.flatten(1)).view(len(z), *self.param_shape)


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), ``channels`` wide."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def grid_shape(data_shape: Sequence[int], downsample: int) -> tuple[int, int]:
    """The code grid of ``net: conv``: ``(H / 2^downsample, W / 2^downsample)``."""
    return data_shape[1] >> downsample, data_shape[2] >> downsample


class ConvEncoder(nn.Module):
    """x ``(B, C, H, W)`` -> ``(B, h*w, dim)`` in raster order; see the module doc."""

    def __init__(self, data_shape: tuple[int, ...], dim: int, channels: int, res_blocks: int, downsample: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n_in = data_shape[0]
        for _ in range(downsample):
            layers += [nn.Conv2d(n_in, channels, 4, stride=2, padding=1), nn.ReLU()]
            n_in = channels
        layers.append(nn.Conv2d(n_in, channels, 3, padding=1))
        layers += [ResidualBlock(channels) for _ in range(res_blocks)]
        layers += [nn.ReLU(), nn.Conv2d(channels, dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(2).transpose(1, 2)


class ConvDecoder(nn.Module):
    """``(B, h*w, dim)`` in raster order -> ``(B, *param_shape)``; mirrors ``ConvEncoder``."""

    def __init__(self, grid: tuple[int, int], dim: int, param_shape: tuple[int, ...], channels: int, res_blocks: int,
                 downsample: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        out = param_shape[0]
        layers: list[nn.Module] = [nn.Conv2d(dim, channels, 3, padding=1)]
        layers += [ResidualBlock(channels) for _ in range(res_blocks)]
        layers.append(nn.ReLU())
        for i in range(downsample):
            last = i == downsample - 1
            layers.append(nn.ConvTranspose2d(channels, out if last else channels, 4, stride=2, padding=1))
            if not last:
                layers.append(nn.ReLU())
        if downsample == 0:
            layers.append(nn.Conv2d(channels, out, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.transpose(1, 2).unflatten(2, self.grid))
