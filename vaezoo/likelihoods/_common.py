"""Helpers shared by the built-in likelihoods: the number of event dimensions of params,
the shape check of ``log_prob``'s arguments, and ``log(1 - exp(-d))``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..components.base import Likelihood
from ..errors import DataError


def event_dims_of(params: Tensor, event_dims: int | None) -> int:
    """The number of trailing event dimensions of ``params``.

    ``None`` means "params carry exactly one batch dimension" (``(B, *param_shape)``); pass
    ``event_dims=len(data_shape)`` when there are extra leading sample dimensions.
    """
    if event_dims is None:
        event_dims = params.dim() - 1
    event_dims = int(event_dims)
    if not 1 <= event_dims <= params.dim():
        raise ValueError(
            f"event_dims={event_dims} is invalid for params of shape {tuple(params.shape)}; "
            f"it must be between 1 and {params.dim()} (len(data_shape))"
        )
    return event_dims


def prepare(lik: Likelihood, x: Tensor, params: Tensor) -> tuple[Tensor, int]:
    """Check that ``x (B, *data_shape)`` and ``params (..., B, *param_shape)`` agree.

    Returns ``x`` on the device and in the dtype of ``params``, and ``len(data_shape)``.
    """
    if x.dim() < 2:
        raise DataError(
            f"{type(lik).__name__}.log_prob: x must be (B, *data_shape) with at least 2 dims, "
            f"got shape {tuple(x.shape)}"
        )
    event_dims = x.dim() - 1
    expected = lik.param_shape(tuple(x.shape[1:]))
    got = tuple(params.shape[-event_dims:]) if params.dim() >= event_dims else tuple(params.shape)
    if params.dim() < x.dim() or got != expected:
        raise DataError(
            f"{type(lik).__name__}.log_prob: for data of shape {tuple(x.shape[1:])} the params must "
            f"end in {expected} (P={lik.num_params} blocks of {x.shape[1]} channels), got params "
            f"of shape {tuple(params.shape)}"
        )
    if not torch.is_floating_point(params):
        raise DataError(f"{type(lik).__name__}: params must be floating point, got {params.dtype}")
    return x.to(device=params.device, dtype=params.dtype), event_dims


def log1mexp(d: Tensor) -> Tensor:
    """``log(1 - exp(-d))`` for ``d > 0``, accurate for tiny and large ``d``.

    Mächler (2012), "Accurately computing log(1 - exp(-|a|))": ``log(-expm1(-d))`` for
    ``d <= log 2`` and ``log1p(-exp(-d))`` above.
    """
    small = d <= math.log(2.0)
    d_small = torch.where(small, d, torch.ones_like(d))  # keep the unused branch finite
    d_large = torch.where(small, torch.ones_like(d), d)
    return torch.where(small, torch.log(-torch.expm1(-d_small)), torch.log1p(-torch.exp(-d_large)))
