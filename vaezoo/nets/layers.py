"""Pieces shared by the built-in encoders and decoders.

* ``make_activation(name, who)`` -- an activation module by name (``ACTIVATIONS``).
* ``DiagonalGaussianHead`` -- features -> ``Independent(Normal(loc, scale), 1)``.
* ``check_*`` helpers -- one-line ``ValueError`` messages for bad constructor arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from ..errors import DataError, did_you_mean, one_of

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


def make_activation(name: str, who: str) -> nn.Module:
    """A fresh activation module for ``name``; ``ValueError`` naming the choices otherwise."""
    cls = ACTIVATIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"{who}: unknown activation {name!r}.{did_you_mean(str(name), ACTIVATIONS)} "
            f"Choose one of {one_of(ACTIVATIONS)}"
        )
    return cls()


def check_positive_int(value: object, what: str, who: str, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{who}: {what} must be {bound} integer, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def check_int_list(values: object, what: str, who: str, allow_empty: bool) -> tuple[int, ...]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise ValueError(f"{who}: {what} must be a list of positive integers, got {values!r}")
    out = tuple(check_positive_int(v, f"every entry of {what}", who) for v in values)
    if not out and not allow_empty:
        raise ValueError(f"{who}: {what} must have at least one entry, got {values!r}")
    return out


def check_shape(shape: object, what: str, who: str) -> tuple[int, ...]:
    if not isinstance(shape, Sequence) or isinstance(shape, str) or len(shape) == 0:
        raise ValueError(f"{who}: {what} must be a non-empty tuple of positive integers, got {shape!r}")
    return tuple(check_positive_int(s, f"every entry of {what}", who) for s in shape)


def check_min_scale(value: object, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{who}: min_scale must be a positive number, got {value!r}")
    return float(value)


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
