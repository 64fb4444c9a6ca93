"""Pieces shared by the built-in encoders and decoders.

* ``make_activation(name, who)`` -- an activation module by name (``ACTIVATIONS``).
* ``dense_layers(n_in, n_out, activation, who)`` -- one hidden layer of a fully connected net:
  Linear + activation, or ``GatedDense`` for ``activation="gated"``.
* ``DiagonalGaussianHead`` -- features -> ``Independent(Normal(loc, scale), 1)``.
* ``split_batch`` -- check the trailing shape of an input and flatten its leading dims.
* ``check_weights`` -- refuse a network too large to allocate (``MAX_WEIGHTS``), before building it.

The argument validators (``check_positive_int``, ``check_shape``, ...) are in ``vaezoo.validation``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from ..errors import DataError
from ..validation import check_choice

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


MAX_WEIGHTS = 2**31
"""The most weights (and biases) one built-in encoder or decoder may hold: 2**31, 8 GiB as float32.

A larger network is a typo in a size (hidden, channels, latent_dim, data_shape); it is
refused with one line before anything is allocated."""


def linear_weights(n_in: int, n_out: int) -> tuple[str, int]:
    """``(description, weights + biases)`` of ``nn.Linear(n_in, n_out)``, for ``check_weights``."""
    return f"Linear({n_in} -> {n_out})", n_in * n_out + n_out


def check_weights(layers: Sequence[tuple[str, int]], who: str, sizes: str) -> None:
    """Raise ``ValueError`` if the ``(description, count)`` layers hold more than ``MAX_WEIGHTS`` in all.

    Plain integer arithmetic: nothing is allocated. ``sizes`` names the parameters to lower.
    """
    total = sum(n for _, n in layers)
    if total > MAX_WEIGHTS:
        name, n = max(layers, key=lambda layer: layer[1])
        raise ValueError(
            f"{who}: {total:,} weights ({total * 4 / 2**30:,.0f} GiB as float32) is more than the "
            f"{MAX_WEIGHTS:,} (8 GiB) a vaezoo network may hold; its largest layer, {name}, has {n:,}. "
            f"Lower {sizes}"
        )


def make_activation(name: str, who: str) -> nn.Module:
    """A fresh activation module for ``name``; ``ValueError`` naming the choices otherwise."""
    return ACTIVATIONS[check_choice(name, "activation", who, ACTIVATIONS)]()


GATED = "gated"
DENSE_ACTIVATIONS = (*ACTIVATIONS, GATED)
"""What a fully connected hidden layer may use: an elementwise activation, or ``gated``."""


class GatedDense(nn.Module):
    """``(W x + b) * sigmoid(V x + c)``: the gated dense layer of the VampPrior code (Tomczak &
    Welling 2018; gated linear units, Dauphin et al. 2017). One ``Linear(n_in, 2 n_out)``
    holds ``W`` and ``V``; ``(..., n_in)`` -> ``(..., n_out)``."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 2 * n_out)

    def forward(self, x: Tensor) -> Tensor:
        h, gate = self.linear(x).chunk(2, dim=-1)
        return h * torch.sigmoid(gate)


def check_dense_activation(name: str, who: str) -> str:
    """``name`` if a fully connected hidden layer can use it (``DENSE_ACTIVATIONS``), else ``ValueError``."""
    return check_choice(name, "activation", who, DENSE_ACTIVATIONS)


def dense_layers(n_in: int, n_out: int, activation: str, who: str) -> list[nn.Module]:
    """One hidden layer: ``[Linear, activation]``, or ``[GatedDense]`` for ``activation="gated"``."""
    if check_dense_activation(activation, who) == GATED:
        return [GatedDense(n_in, n_out)]
    return [nn.Linear(n_in, n_out), make_activation(activation, who)]


def dense_weights(n_in: int, n_out: int, activation: str) -> tuple[str, int]:
    """``(description, weights + biases)`` of ``dense_layers(n_in, n_out, activation)``, for ``check_weights``."""
    if activation == GATED:
        return f"GatedDense({n_in} -> {n_out})", 2 * (n_in * n_out + n_out)
    return linear_weights(n_in, n_out)


class DiagonalGaussianHead(nn.Module):
    """Linear map from features to a diagonal Gaussian over z.

    ``scale = softplus(raw) + min_scale``: softplus keeps the scale positive with gradients
    everywhere, and the floor ``min_scale`` keeps ``log q(z|x)`` finite when the raw output
    goes very negative.
    """

    def __init__(self, in_features: int, latent_dim: int, min_scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * latent_dim)
        self.min_scale = float(min_scale)

    def forward(self, h: Tensor) -> Independent:
        loc, raw = self.linear(h).chunk(2, dim=-1)
        scale = nn.functional.softplus(raw) + self.min_scale
        return Independent(Normal(loc, scale), 1)

    def extra_repr(self) -> str:
        return f"min_scale={self.min_scale:g}"


def split_batch(x: Tensor, shape: tuple[int, ...], what: str, who: str) -> tuple[torch.Size, Tensor]:
    """Check that ``x`` ends with ``shape``; return its leading dims and ``x`` as ``(N, *shape)``."""
    n = len(shape)
    if x.dim() < n or tuple(x.shape[x.dim() - n:]) != shape:
        raise DataError(
            f"{who}: expected input of shape (..., {', '.join(map(str, shape))}) ({what}), "
            f"got {tuple(x.shape)}"
        )
    lead = x.shape[: x.dim() - n]
    return lead, x.reshape(-1, *shape)


def with_condition(flat: Tensor, y: Tensor | None, lead: torch.Size, condition_dim: int, who: str) -> Tensor:
    """``flat (N, F)`` with y joined as ``(N, F + condition_dim)`` for a net built with ``condition_dim``.

    ``y`` has the leading dims ``lead`` of the input (N = prod(lead)) or fewer (sample
    dimensions first: a ``(B, C)`` y serves a ``(K, B, ...)`` input); a net without
    ``condition_dim`` refuses y, one with it needs y.
    """
    if not condition_dim:
        if y is not None:
            raise DataError(f"{who}: got y, but this net was built without condition_dim (not part of a conditional model)")
        return flat
    if y is None:
        raise DataError(f"{who}: built for a conditional model (condition_dim={condition_dim}); call it with y")
    if y.shape[-1] != condition_dim or y.dim() - 1 > len(lead) or tuple(y.shape[:-1]) != tuple(lead[len(lead) - (y.dim() - 1):]):
        raise DataError(f"{who}: y must be (..., {condition_dim}) with leading dims ending those of the input {tuple(lead)}, got {tuple(y.shape)}")
    y = y.to(dtype=flat.dtype).expand(*lead, condition_dim).reshape(-1, condition_dim)
    return torch.cat([flat, y], dim=-1)
