"""Fully connected encoder and decoder (``encoder: mlp``, ``decoder: mlp``).

Both work for data of any shape: the encoder flattens each example, the decoder reshapes
its output to ``param_shape``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.distributions import Independent

from ..components import Decoder, Encoder
from ..validation import check_int_list, check_min_scale, check_positive_int, check_shape
from .layers import (DiagonalGaussianHead, check_dense_activation, check_weights, dense_layers, dense_weights,
                     linear_weights, split_batch, with_condition)


def _stack(sizes: list[int], activation: str, who: str) -> nn.Sequential:
    """A hidden layer (``dense_layers``) for each consecutive pair in ``sizes``."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += dense_layers(a, b, activation, who)
    return nn.Sequential(*layers)


def _weights(sizes: list[int], activation: str) -> list[tuple[str, int]]:
    """``check_weights`` entries of the hidden layers between ``sizes[:-1]`` and the linear output layer."""
    hidden = [dense_weights(a, b, activation) for a, b in zip(sizes[:-2], sizes[1:-1])]
    return [*hidden, linear_weights(sizes[-2], sizes[-1])]


class MLPEncoder(Encoder):
    """q(z|x) = N(loc(x), diag(scale(x)^2)) from a fully connected network.

    ``forward(x)``: ``x (..., *data_shape)`` -> ``Independent(Normal(loc, scale), 1)`` with
    batch shape ``(...)`` and event shape ``(latent_dim,)``.

    In a conditional model (``model.condition``) vaezoo builds it with ``condition_dim`` and
    calls ``forward(x, y)``: y ``(..., condition_dim)`` joins the flattened input.

    Parameters:

    * ``hidden`` -- widths of the hidden layers, input side first (``[]``: a linear encoder).
    * ``activation`` -- ``relu``, ``gelu``, ``silu``, ``tanh``, ``elu``, or ``gated``: every hidden
      layer a ``GatedDense``, (W h + b) * sigmoid(V h + c), as in the VampPrior paper's networks.
    * ``min_scale`` -- floor added to ``softplus(raw)`` to give the posterior scale.
    """

    def __init__(
        self,
        data_shape: tuple[int, ...],
        latent_dim: int,
        hidden: list[int] = (512, 256),  # type: ignore[assignment]
        activation: str = "relu",
        min_scale: float = 1e-4,
        condition_dim: int = 0,
    ) -> None:
        who = "MLPEncoder"
        data_shape = check_shape(data_shape, "data_shape", who)
        latent_dim = check_positive_int(latent_dim, "latent_dim", who)
        hidden = list(check_int_list(hidden, "hidden", who, allow_empty=True))
        check_dense_activation(activation, who)  # validate before building anything
        super().__init__(data_shape, latent_dim)
        self.hidden = tuple(hidden)
        self.activation = activation
        self.condition_dim = check_positive_int(condition_dim, "condition_dim", who, allow_zero=True)
        in_features = math.prod(self.data_shape) + self.condition_dim
        sizes = [in_features, *hidden, 2 * latent_dim]
        check_weights(_weights(sizes, activation), who, "data_shape, hidden or latent_dim")
        self.body = _stack([in_features, *hidden], activation, who)
        self.head = DiagonalGaussianHead(([in_features, *hidden])[-1], latent_dim, check_min_scale(min_scale, who))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Independent:
        lead, flat = split_batch(x, self.data_shape, "data_shape", type(self).__name__)
        h = self.body(with_condition(flat.flatten(1), y, lead, self.condition_dim, type(self).__name__))
        return self.head(h.reshape(*lead, h.shape[-1]))


class MLPDecoder(Decoder):
    """z -> likelihood parameters with a fully connected network.

    ``forward(z)``: ``(..., latent_dim)`` -> ``(..., *param_shape)``, any leading dims.

    In a conditional model vaezoo builds it with ``condition_dim`` and calls ``forward(z, y)``:
    y ``(..., condition_dim)`` joins z.

    Parameters:

    * ``hidden`` -- widths of the hidden layers, latent side first (``[]``: linear).
    * ``activation`` -- ``relu``, ``gelu``, ``silu``, ``tanh``, ``elu``, or ``gated``: every hidden
      layer a ``GatedDense``, (W h + b) * sigmoid(V h + c), as in the VampPrior paper's networks.
    """

    def __init__(
        self,
        latent_dim: int,
        param_shape: tuple[int, ...],
        hidden: list[int] = (256, 512),  # type: ignore[assignment]
        activation: str = "relu",
        condition_dim: int = 0,
    ) -> None:
        who = "MLPDecoder"
        latent_dim = check_positive_int(latent_dim, "latent_dim", who)
        param_shape = check_shape(param_shape, "param_shape", who)
        hidden = list(check_int_list(hidden, "hidden", who, allow_empty=True))
        check_dense_activation(activation, who)
        super().__init__(latent_dim, param_shape)
        self.hidden = tuple(hidden)
        self.activation = activation
        self.condition_dim = check_positive_int(condition_dim, "condition_dim", who, allow_zero=True)
        inputs = latent_dim + self.condition_dim
        sizes = [inputs, *hidden, math.prod(self.param_shape)]
        check_weights(_weights(sizes, activation), who, "latent_dim, hidden or data_shape")
        self.body = _stack([inputs, *hidden], activation, who)
        self.out = nn.Linear(([inputs, *hidden])[-1], math.prod(self.param_shape))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        lead, flat = split_batch(z, (self.latent_dim,), "latent_dim", type(self).__name__)
        flat = with_condition(flat, y, lead, self.condition_dim, type(self).__name__)
        return self.out(self.body(flat)).reshape(*lead, *self.param_shape)
