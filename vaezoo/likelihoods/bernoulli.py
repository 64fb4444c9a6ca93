"""Bernoulli and continuous Bernoulli likelihoods, parameterised by logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Independent, constraints
from torch.distributions.utils import broadcast_all

from ..components.base import Likelihood, _check_finite, sum_event
from ..errors import DataError
from ._common import event_dims_of, log1mexp, prepare
from ._fast import bernoulli_log_prob


def _value_range(x: Tensor) -> str:
    return f"[{x.min().item():.4g}, {x.max().item():.4g}]"


def check_binary(lik: Likelihood, x: Tensor, name: str) -> None:
    """``DataError`` naming likelihood ``name`` unless ``x`` is finite and in {0, 1}."""
    _check_finite(x, lik)
    if not ((x == 0) | (x == 1)).all():
        raise DataError(
            f"{name} likelihood needs binary data in {{0, 1}}; got values in {_value_range(x)} "
            f"— binarize it (data.binarize=dynamic|static) or use continuous_bernoulli"
        )


# -- Bernoulli --------------------------------------------------------------------------------


class _StableBernoulli(torch.distributions.Bernoulli):
    """``torch.distributions.Bernoulli`` whose ``log_prob`` uses ``logsigmoid`` (exact in the tails)."""

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return value * F.logsigmoid(logits) + (1 - value) * F.logsigmoid(-logits)


class Bernoulli(Likelihood):
    """Bernoulli likelihood for binary data: one logit per data element (``P=1``).

    ``p(x|l) = sigmoid(l)^x (1 - sigmoid(l))^(1-x)`` with support ``x in {0, 1}`` (a probability
    mass, so ``discrete=True``). For data ``(B, C, ...)`` the decoder outputs logits of shape
    ``(B, C, ...)``; the mean is ``sigmoid(l)``.
    """

    num_params = 1
    discrete = True
    wants = "binary"

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        x, event_dims = prepare(self, x, params)
        # x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - max(l, 0) - log(1 + e^-|l|):
        # exact in both tails, with the gradient x - sigmoid(l) (see _fast).
        return sum_event(bernoulli_log_prob(params, x.expand_as(params)), event_dims)

    def distribution(self, params: Tensor, event_dims: int | None = None) -> Distribution:
        event_dims = event_dims_of(params, event_dims)
        return Independent(_StableBernoulli(logits=params), event_dims)

    def mean(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return torch.sigmoid(params)

    def sample(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        with torch.no_grad():
            return torch.bernoulli(torch.sigmoid(params))

    def check_data(self, x: Tensor) -> None:
        check_binary(self, x, "bernoulli")


# -- continuous Bernoulli ---------------------------------------------------------------------

_TAYLOR_CUTOFF = 0.25
# log(sinh(u)/u) = sum_n 2^(2n) B_2n u^(2n) / (2n (2n)!) = u^2/6 - u^4/180 + u^6/2835 - u^8/37800 + ...
_LOG_SINHC = (1.0 / 6.0, -1.0 / 180.0, 1.0 / 2835.0, -1.0 / 37800.0)
# d/dl [l/2 + log(sinh(l/2)/(l/2))] = 1/2 + l/12 - l^3/720 + l^5/30240 - l^7/1209600
_MEAN_SERIES = (1.0 / 12.0, -1.0 / 720.0, 1.0 / 30240.0, -1.0 / 1209600.0)


def cb_log_normalizer(logits: Tensor) -> Tensor:
    """``A(l) = log ∫_0^1 exp(l x) dx = log((e^l - 1) / l)``, stable for all ``l``.

    For ``|l| >= 0.25``: ``max(l, 0) + log(1 - e^-|l|) - log|l|``. Near 0 (where that form
    cancels) the Taylor series ``A(l) = l/2 + log(sinh(u)/u)`` with ``u = l/2``, to ``u^8``
    (truncation error below 3e-15 at the cutoff).
    """
    a = logits.abs()
    small = a < _TAYLOR_CUTOFF
    a_safe = torch.where(small, torch.ones_like(a), a)
    far = torch.relu(logits) + log1mexp(a_safe) - torch.log(a_safe)
    u2 = (logits / 2) ** 2
    series = u2 * (_LOG_SINHC[0] + u2 * (_LOG_SINHC[1] + u2 * (_LOG_SINHC[2] + u2 * _LOG_SINHC[3])))
    return torch.where(small, logits / 2 + series, far)


def cb_mean(logits: Tensor) -> Tensor:
    """``E[x] = A'(l) = 1 / (1 - e^-l) - 1 / l`` (Taylor series near ``l = 0``)."""
    small = logits.abs() < _TAYLOR_CUTOFF
    l_safe = torch.where(small, torch.ones_like(logits), logits)
    far = 1.0 / (-torch.expm1(-l_safe)) - 1.0 / l_safe
    l2 = logits * logits
    series = 0.5 + logits * (_MEAN_SERIES[0] + l2 * (_MEAN_SERIES[1] + l2 * (_MEAN_SERIES[2] + l2 * _MEAN_SERIES[3])))
    return torch.where(small, series, far)


def _cb_icdf_nonpositive(m: Tensor, u: Tensor) -> Tensor:
    """Inverse CDF of CB(m) for ``m <= 0``: ``log1p(u (e^m - 1)) / m`` (``u`` at ``m = 0``)."""
    zero = m == 0
    m_safe = torch.where(zero, -torch.ones_like(m), m)
    return torch.where(zero, u, torch.log1p(u * torch.expm1(m_safe)) / m_safe)


class ContinuousBernoulliLogits(Distribution):
    """Elementwise continuous Bernoulli on ``[0, 1]`` with natural parameter ``logits``.

    ``log p(x|l) = l x - log((e^l - 1) / l)`` (Loaiza-Ganem & Cunningham, 2019), evaluated
    stably for any finite ``l``. ``rsample`` inverts the CDF ``(e^(l x) - 1) / (e^l - 1)``.
    """

    arg_constraints = {"logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, logits: Tensor, validate_args: bool | None = None) -> None:
        (self.logits,) = broadcast_all(logits)
        super().__init__(self.logits.shape, validate_args=validate_args)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return logits * value - cb_log_normalizer(logits)

    @property
    def mean(self) -> Tensor:
        return cb_mean(self.logits)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        logits = self.logits.expand(shape)
        u = torch.rand(shape, dtype=logits.dtype, device=logits.device)
        neg = logits <= 0
        x = torch.where(
            neg,
            _cb_icdf_nonpositive(torch.where(neg, logits, -logits), u),
            1 - _cb_icdf_nonpositive(torch.where(neg, logits, -logits), 1 - u),
        )
        return x.clamp(0, 1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli likelihood for data in ``[0, 1]``: one logit per element (``P=1``).

    ``p(x|l) = C(l) sigmoid(l)^x (1 - sigmoid(l))^(1-x)`` with the normalising constant
    included, i.e. ``log p = l x - log((e^l - 1) / l)`` (Loaiza-Ganem & Cunningham, 2019,
    "The continuous Bernoulli: fixing a pervasive error in variational autoencoders"); a
    density on ``[0, 1]`` (``discrete=False``), stable near ``l = 0`` via a Taylor series. For
    data ``(B, C, ...)`` the decoder outputs logits ``(B, C, ...)``; the mean is
    ``1 / (1 - e^-l) - 1 / l`` (not ``sigmoid(l)``).
    """

    num_params = 1
    discrete = False
    wants = "continuous"

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        x, event_dims = prepare(self, x, params)
        return sum_event(params * x - cb_log_normalizer(params), event_dims)

    def distribution(self, params: Tensor, event_dims: int | None = None) -> Distribution:
        event_dims = event_dims_of(params, event_dims)
        return Independent(ContinuousBernoulliLogits(params), event_dims)

    def mean(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return cb_mean(params)

    def sample(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return ContinuousBernoulliLogits(params).sample()

    def check_data(self, x: Tensor) -> None:
        _check_finite(x, self)
        if (x < 0).any() or (x > 1).any():
            raise DataError(
                f"continuous_bernoulli likelihood needs data in [0, 1]; got values in {_value_range(x)} "
                f"— rescale it (e.g. x / 255) or use gaussian/laplace"
            )
