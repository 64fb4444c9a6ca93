"""Location-scale likelihoods (Gaussian, Laplace) with a learned or a fixed scale."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent

from ..components.base import Likelihood, sum_event
from ._common import event_dims_of, prepare

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class LocationScale(Likelihood):
    """Shared logic of the location-scale families ``p(x) = f((x - loc) / s) / s``.

    Built with ``scale=None`` the decoder outputs ``(loc, log_scale)`` (``P=2``, split with
    ``params.chunk(2, dim=-len(data_shape))``); built with a fixed ``scale > 0`` it outputs only
    ``loc`` (``P=1``). ``min_log_scale`` (off by default) clamps a learned ``log_scale`` from
    below before use, which prevents variance collapse on data with constant pixels; the
    log-density of the clamped parameters is exact. Subclasses implement ``_log_density``
    (elementwise, from ``loc`` and ``log_scale``) and ``_elementwise`` (a torch distribution).

    Parameters:

    * ``scale`` -- a fixed scale s > 0 (the decoder then outputs only ``loc``); null: learned,
      the decoder outputs ``loc`` and ``log s`` per element.
    * ``min_log_scale`` -- floor of a learned ``log s`` (null: none), against variance collapse
      on data with constant pixels.
    """

    discrete = False
    wants = "continuous"

    def __init__(self, scale: float | None = None, min_log_scale: float | None = None) -> None:
        super().__init__()
        name = type(self).__name__.lower()
        if scale is not None:
            if isinstance(scale, bool) or not isinstance(scale, (int, float)):
                raise TypeError(f"{name}: scale must be a positive float or None, got {scale!r}")
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(f"{name}: scale must be a finite number > 0 (or None to learn it), got {scale!r}")
            if min_log_scale is not None:
                raise ValueError(f"{name}: min_log_scale only applies to a learned scale; it cannot be used with scale={scale!r}")
        if min_log_scale is not None:
            if isinstance(min_log_scale, bool) or not isinstance(min_log_scale, (int, float)):
                raise TypeError(f"{name}: min_log_scale must be a float or None, got {min_log_scale!r}")
            if not math.isfinite(min_log_scale):
                raise ValueError(f"{name}: min_log_scale must be finite, got {min_log_scale!r}")
        self.scale = None if scale is None else float(scale)
        self.min_log_scale = None if min_log_scale is None else float(min_log_scale)
        self.num_params = 2 if scale is None else 1

    def loc_log_scale(self, params: Tensor, event_dims: int) -> tuple[Tensor, Tensor]:
        """Split ``params`` into ``(loc, log_scale)``, both shaped like the data."""
        if self.scale is not None:
            return params, torch.full_like(params, math.log(self.scale))
        loc, log_scale = self.split(params, event_dims)
        if self.min_log_scale is not None:
            log_scale = log_scale.clamp(min=self.min_log_scale)
        return loc, log_scale

    def _log_density(self, x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
        raise NotImplementedError

    def _elementwise(self, loc: Tensor, log_scale: Tensor) -> Distribution:
        raise NotImplementedError

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        x, event_dims = prepare(self, x, params)
        loc, log_scale = self.loc_log_scale(params, event_dims)
        return sum_event(self._log_density(x, loc, log_scale), event_dims)

    def distribution(self, params: Tensor, event_dims: int | None = None) -> Distribution:
        event_dims = event_dims_of(params, event_dims)
        loc, log_scale = self.loc_log_scale(params, event_dims)
        return Independent(self._elementwise(loc, log_scale), event_dims)

    def mean(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return self.loc_log_scale(params, event_dims_of(params, event_dims))[0]

    def sample(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return self.distribution(params, event_dims).sample()

    def extra_repr(self) -> str:
        if self.scale is not None:
            return f"scale={self.scale}"
        return "" if self.min_log_scale is None else f"min_log_scale={self.min_log_scale}"


class Gaussian(LocationScale):
    """Gaussian likelihood ``N(x | loc, s^2)`` for real-valued data (a density, ``discrete=False``).

    With ``scale=None`` (default) the decoder outputs ``(loc, log_scale)`` per element
    (``P=2``: for data ``(B, C, ...)`` params ``(B, 2C, ...)``, first ``C`` channels ``loc``,
    next ``C`` channels ``log s``); with a fixed ``scale=s`` it outputs ``loc`` only (``P=1``).
    ``log p = -((x - loc)/s)^2 / 2 - log s - log(2 pi)/2``; support: all reals.
    """

    def _log_density(self, x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
        z = (x - loc) * torch.exp(-log_scale)
        return -0.5 * z * z - log_scale - _HALF_LOG_2PI

    def _elementwise(self, loc: Tensor, log_scale: Tensor) -> Distribution:
        return torch.distributions.Normal(loc, torch.exp(log_scale))


class Laplace(LocationScale):
    """Laplace likelihood ``Laplace(x | loc, b)`` for real-valued data (a density, ``discrete=False``).

    With ``scale=None`` (default) the decoder outputs ``(loc, log_scale)`` per element
    (``P=2``: for data ``(B, C, ...)`` params ``(B, 2C, ...)``, first ``C`` channels ``loc``,
    next ``C`` channels ``log b``); with a fixed ``scale=b`` it outputs ``loc`` only (``P=1``).
    ``log p = -|x - loc| / b - log b - log 2``; support: all reals.
    """

    def _log_density(self, x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
        return -(x - loc).abs() * torch.exp(-log_scale) - log_scale - _LOG_2

    def _elementwise(self, loc: Tensor, log_scale: Tensor) -> Distribution:
        return torch.distributions.Laplace(loc, torch.exp(log_scale))
