"""Convolutional encoder and decoder for images (``encoder: conv``, ``decoder: conv``).

Images are ``(C, H, W)`` of any size (odd sizes included). Each encoder layer is a
stride-2 convolution with an odd kernel and padding ``kernel_size // 2``, which maps a side
``n`` to ``ceil(n / 2)``. The decoder walks the same size sequence backwards with stride-2
transposed convolutions whose ``output_padding`` (0 or 1 per side) is chosen so that every
intermediate size, and the output, match exactly; nothing is cropped or interpolated.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.distributions import Independent

from ..components import Decoder, Encoder
from ..validation import check_int_list, check_min_scale, check_positive_int, check_shape
from .layers import DiagonalGaussianHead, check_weights, linear_weights, make_activation, split_batch, with_condition


def _image_shape(shape: object, what: str, who: str, other: str) -> tuple[int, int, int]:
    shape = check_shape(shape, what, who)
    if len(shape) != 3:
        raise ValueError(
            f"{who} needs an image {what} (C, H, W), got {shape}; for flat or non-image data "
            f"use the 'mlp' {other}"
        )
    return shape  # type: ignore[return-value]


def _check_kernel(kernel_size: object, who: str) -> int:
    k = check_positive_int(kernel_size, "kernel_size", who)
    if k % 2 == 0:
        raise ValueError(f"{who}: kernel_size must be odd (3, 5, ...) so sizes halve exactly, got {k}")
    return k


def side_sizes(n: int, steps: int) -> list[int]:
    """``[n, ceil(n/2), ceil(n/4), ...]``: the side after each of ``steps`` stride-2 layers."""
    sizes = [n]
    for _ in range(steps):
        sizes.append(-(-sizes[-1] // 2))
    return sizes


def _conv_weights(c_in: int, c_out: int, k: int) -> tuple[str, int]:
    """``(description, weights + biases)`` of a ``k x k`` (transposed) convolution, for ``check_weights``."""
    return f"Conv({c_in} -> {c_out}, {k}x{k})", c_in * c_out * k * k + c_out


class ConvEncoder(Encoder):
    """q(z|x) = N(loc(x), diag(scale(x)^2)) from stride-2 convolutions and a dense layer.

    ``forward(x)``: ``x (..., C, H, W)`` -> ``Independent(Normal(loc, scale), 1)`` with batch
    shape ``(...)`` and event shape ``(latent_dim,)``. In a conditional model vaezoo builds it
    with ``condition_dim`` and calls ``forward(x, y)``: y joins the flattened feature map.

    Parameters:

    * ``channels`` -- output channels of each stride-2 convolution (each halves H and W,
      rounding up).
    * ``kernel_size`` -- odd kernel size of the convolutions.
    * ``hidden`` -- width of the dense layer after the convolutions (0: none).
    * ``activation`` -- ``relu``, ``gelu``, ``silu``, ``tanh`` or ``elu``.
    * ``min_scale`` -- floor added to ``softplus(raw)`` to give the posterior scale.
    """

    def __init__(
        self,
        data_shape: tuple[int, ...],
        latent_dim: int,
        channels: list[int] = (32, 64),  # type: ignore[assignment]
        kernel_size: int = 3,
        hidden: int = 256,
        activation: str = "relu",
        min_scale: float = 1e-4,
        condition_dim: int = 0,
    ) -> None:
        who = "ConvEncoder"
        c, h, w = _image_shape(data_shape, "data_shape", who, "encoder")
        latent_dim = check_positive_int(latent_dim, "latent_dim", who)
        channels = list(check_int_list(channels, "channels", who, allow_empty=False))
        k = _check_kernel(kernel_size, who)
        hidden = check_positive_int(hidden, "hidden", who, allow_zero=True)
        make_activation(activation, who)
        super().__init__((c, h, w), latent_dim)
        self.channels, self.kernel_size, self.hidden, self.activation = tuple(channels), k, hidden, activation
        self.condition_dim = check_positive_int(condition_dim, "condition_dim", who, allow_zero=True)

        # y joins the flattened feature map, before the dense layer (or the head)
        features = channels[-1] * side_sizes(h, len(channels))[-1] * side_sizes(w, len(channels))[-1] + self.condition_dim
        dense = [features, *([hidden] if hidden else []), 2 * latent_dim]
        check_weights(
            [_conv_weights(a, b, k) for a, b in zip([c, *channels[:-1]], channels)]
            + [linear_weights(a, b) for a, b in zip(dense[:-1], dense[1:])],
            who,
            "data_shape, channels, hidden or latent_dim",
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels):
            layers += [nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2), make_activation(activation, who)]
        layers.append(nn.Flatten())
        self._flat = len(layers)  # body[:_flat] ends with the flattened features, where y joins
        if hidden:
            layers += [nn.Linear(features, hidden), make_activation(activation, who)]
            features = hidden
        self.body = nn.Sequential(*layers)
        self.head = DiagonalGaussianHead(features, latent_dim, check_min_scale(min_scale, who))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Independent:
        lead, flat = split_batch(x, self.data_shape, "data_shape", type(self).__name__)
        if self.condition_dim or y is not None:
            h = flat
            for i, layer in enumerate(self.body):
                if i == self._flat:
                    h = with_condition(h, y, lead, self.condition_dim, type(self).__name__)
                h = layer(h)
            if self._flat == len(self.body):
                h = with_condition(h, y, lead, self.condition_dim, type(self).__name__)
        else:
            h = self.body(flat)
        return self.head(h.reshape(*lead, h.shape[-1]))


class ConvDecoder(Decoder):
    """z -> likelihood parameters with a dense layer and stride-2 transposed convolutions.

    ``forward(z)``: ``(..., latent_dim)`` -> ``(..., *param_shape)`` with ``param_shape``
    ``(P*C, H, W)``, exactly, for any H and W. In a conditional model vaezoo builds it with
    ``condition_dim`` and calls ``forward(z, y)``: y joins z.

    Parameters:

    * ``channels`` -- input channels of each stride-2 transposed convolution, coarsest
      first (the mirror of the encoder's ``channels``); the last one outputs ``P*C``.
    * ``kernel_size`` -- odd kernel size of the transposed convolutions.
    * ``hidden`` -- width of a dense layer between z and the first feature map (0: none).
    * ``activation`` -- ``relu``, ``gelu``, ``silu``, ``tanh`` or ``elu``.
    """

    def __init__(
        self,
        latent_dim: int,
        param_shape: tuple[int, ...],
        channels: list[int] = (64, 32),  # type: ignore[assignment]
        kernel_size: int = 3,
        hidden: int = 256,
        activation: str = "relu",
        condition_dim: int = 0,
    ) -> None:
        who = "ConvDecoder"
        p, h, w = _image_shape(param_shape, "param_shape", who, "decoder")
        latent_dim = check_positive_int(latent_dim, "latent_dim", who)
        channels = list(check_int_list(channels, "channels", who, allow_empty=False))
        k = _check_kernel(kernel_size, who)
        hidden = check_positive_int(hidden, "hidden", who, allow_zero=True)
        make_activation(activation, who)
        super().__init__(latent_dim, (p, h, w))
        self.channels, self.kernel_size, self.hidden, self.activation = tuple(channels), k, hidden, activation
        self.condition_dim = check_positive_int(condition_dim, "condition_dim", who, allow_zero=True)
        inputs = latent_dim + self.condition_dim

        steps = len(channels)
        hs, ws = side_sizes(h, steps), side_sizes(w, steps)
        self._start = (channels[0], hs[-1], ws[-1])
        dense_sizes = [inputs, *([hidden] if hidden else []), math.prod(self._start)]
        check_weights(
            [linear_weights(a, b) for a, b in zip(dense_sizes[:-1], dense_sizes[1:])]
            + [_conv_weights(a, b, k) for a, b in zip(channels, [*channels[1:], p])],
            who,
            "latent_dim, hidden, channels or data_shape",
        )
        dense: list[nn.Module] = []
        features = inputs
        if hidden:
            dense += [nn.Linear(inputs, hidden), make_activation(activation, who)]
            features = hidden
        dense += [nn.Linear(features, math.prod(self._start)), make_activation(activation, who)]
        self.dense = nn.Sequential(*dense)

        # A stride-2 transposed conv with odd kernel k and padding k//2 maps n to
        # 2n - 1 + output_padding; the target side m has ceil(m/2) = n, so output_padding
        # is 1 when m is even and 0 when it is odd.
        layers: list[nn.Module] = []
        outs = [*channels[1:], p]
        for i, (c_in, c_out) in enumerate(zip(channels, outs)):
            target_h, target_w = hs[steps - 1 - i], ws[steps - 1 - i]
            layers.append(
                nn.ConvTranspose2d(
                    c_in, c_out, k, stride=2, padding=k // 2,
                    output_padding=(1 - target_h % 2, 1 - target_w % 2),
                )
            )
            if i < steps - 1:
                layers.append(make_activation(activation, who))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        lead, flat = split_batch(z, (self.latent_dim,), "latent_dim", type(self).__name__)
        flat = with_condition(flat, y, lead, self.condition_dim, type(self).__name__)
        out = self.deconv(self.dense(flat).reshape(-1, *self._start))
        return out.reshape(*lead, *self.param_shape)
