"""Student-t likelihood (``likelihood: student_t``) for real-valued data.

    log p(x) = lgamma((df+1)/2) - lgamma(df/2) - log(df pi)/2 - log s - (df+1)/2 log1p(((x-loc)/s)^2 / df)

Three ways to set the degrees of freedom ``df``:

* ``df=4.0`` (default 5.0) -- fixed; the decoder outputs ``(loc, log_scale)``, ``P=2``;
* ``df=4.0, learn_df=True`` -- one learned ``df`` shared by all elements, initialised at
  ``df``; still ``P=2``; stored in the state_dict as ``raw_df``;
* ``df=None`` -- ``df`` per element from the decoder: ``(loc, log_scale, raw_df)``, ``P=3``.

A learned ``df`` is ``min_df + softplus(raw)``. For data ``(B, C, ...)`` the params are
``(B, P*C, ...)``, split with ``params.chunk(P, dim=-len(data_shape))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, StudentT as _TorchStudentT

from vaezoo import Likelihood
from vaezoo.errors import DataError


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class StudentT(Likelihood):
    """Student-t p(x | loc, s, df) per data element; a density (``discrete=False``), support: all reals.

    Parameters: ``df`` (fixed degrees of freedom, or None to predict them per element),
    ``learn_df`` (learn one shared ``df``, initialised at ``df``), ``min_df`` (lower bound of a
    learned ``df``; the default 1 keeps the mean defined), ``min_log_scale`` (clamps the
    decoder's log-scale from below, against variance collapse on constant pixels; off by
    default). ``mean(params)`` is ``loc``.
    """

    discrete = False

    def __init__(
        self, df: float | None = 5.0, learn_df: bool = False, min_df: float = 1.0, min_log_scale: float | None = None
    ) -> None:
        super().__init__()
        if min_log_scale is not None and (
            isinstance(min_log_scale, bool) or not isinstance(min_log_scale, (int, float)) or not math.isfinite(min_log_scale)
        ):
            raise ValueError(f"student_t: min_log_scale must be a finite number or None, got {min_log_scale!r}")
        if isinstance(min_df, bool) or not isinstance(min_df, (int, float)) or not 0 <= min_df < math.inf:
            raise ValueError(f"student_t: min_df must be a number >= 0, got {min_df!r}")
        if df is not None and (isinstance(df, bool) or not isinstance(df, (int, float)) or not 0 < df < math.inf):
            raise ValueError(f"student_t: df must be a positive number, or None to let the decoder predict it, got {df!r}")
        if learn_df and df is None:
            raise ValueError("student_t: learn_df=True learns one df initialised at df; give df a number (df=None already predicts df per element)")
        if learn_df and not df > min_df:
            raise ValueError(f"student_t: with learn_df=True, df (the initial value, {df}) must be above min_df ({min_df})")
        self.df = None if df is None else float(df)
        self.learn_df = bool(learn_df)
        self.min_df = float(min_df)
        self.min_log_scale = None if min_log_scale is None else float(min_log_scale)
        self.num_params = 3 if df is None else 2
        if self.learn_df:
            self.raw_df = nn.Parameter(torch.tensor(_inverse_softplus(self.df - self.min_df)))

    # -- parameters ------------------------------------------------------------------------
    def unpack(self, params: Tensor, event_dims: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(loc, log_scale, df)``, each broadcastable to the data's shape."""
        blocks = self.split(params, event_dims)
        loc, log_scale = blocks[0], blocks[1]
        if self.min_log_scale is not None:
            log_scale = log_scale.clamp(min=self.min_log_scale)
        if self.df is None:
            df = self.min_df + F.softplus(blocks[2])
        elif self.learn_df:
            df = (self.min_df + F.softplus(self.raw_df)).to(params.dtype)
        else:
            df = torch.tensor(self.df, dtype=params.dtype, device=params.device)
        return loc, log_scale, df

    def _event_dims(self, params: Tensor, event_dims: int | None) -> int:
        return params.dim() - 1 if event_dims is None else int(event_dims)

    def _check(self, x: Tensor, params: Tensor) -> int:
        event_dims = x.dim() - 1
        expected = self.param_shape(tuple(x.shape[1:]))
        if event_dims < 1 or params.dim() < x.dim() or tuple(params.shape[-event_dims:]) != expected:
            raise DataError(
                f"student_t: for data of shape {tuple(x.shape[1:])} the params must end in {expected} "
                f"(P={self.num_params} blocks of {x.shape[1] if x.dim() > 1 else '?'} channels), got {tuple(params.shape)}"
            )
        return event_dims

    # -- the contract ----------------------------------------------------------------------
    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """``x (B, *data_shape)``, ``params (..., B, *param_shape)`` -> ``(..., B)`` nats."""
        event_dims = self._check(x, params)
        x = x.to(dtype=params.dtype, device=params.device)
        loc, log_scale, df = self.unpack(params, event_dims)
        z = (x - loc) * torch.exp(-log_scale)
        lp = (
            torch.lgamma((df + 1) / 2)
            - torch.lgamma(df / 2)
            - 0.5 * torch.log(df * math.pi)
            - log_scale
            - (df + 1) / 2 * torch.log1p(z * z / df)
        )
        return lp.sum(dim=tuple(range(-event_dims, 0)))

    def distribution(self, params: Tensor, event_dims: int | None = None) -> Distribution:
        event_dims = self._event_dims(params, event_dims)
        loc, log_scale, df = self.unpack(params, event_dims)
        return Independent(_TorchStudentT(df.expand_as(loc), loc, torch.exp(log_scale)), event_dims)

    def mean(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return self.unpack(params, self._event_dims(params, event_dims))[0]

    def sample(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        with torch.no_grad():
            return self.distribution(params, event_dims).sample()

    def extra_repr(self) -> str:
        if self.df is None:
            return f"df=None (per element), min_df={self.min_df}"
        return f"df={self.df}, learn_df={self.learn_df}" + (f", min_df={self.min_df}" if self.learn_df else "")
