"""Categorical latents: N independent categoricals of K categories, z their one-hot vectors
flattened to ``(N*K,)`` (variable n is ``z[..., n*K:(n+1)*K]``).

Both distributions take ``logits (..., N, K)`` (log-probabilities up to a constant per
variable) and a 0-d ``temperature``; batch shape ``(...)``, event shape ``(N*K,)``:

* ``OneHotCategoricals`` -- the discrete distribution. ``sample`` draws exact one-hot vectors
  (the Gumbel-max trick: the argmax over k of log pi_k + g_k, g_k ~ Gumbel(0, 1) i.i.d.);
  ``log_prob`` is the log-mass sum_n log pi_{n,k_n}, computed as sum_nk z_nk log pi_nk (exact
  at one-hot z, its linear extension elsewhere); ``rsample`` is the straight-through
  Gumbel-softmax estimator (Jang, Gu & Poole 2017): the value is the same exact one-hot draw,
  the gradient that of the relaxed sample softmax((log pi + g) / temperature).
* ``RelaxedOneHotCategoricals`` -- the Concrete / Gumbel-softmax relaxation (Maddison, Mnih &
  Teh 2017; Jang et al. 2017): y = softmax((log pi + g) / tau) on each variable's simplex, and
  ``log_prob`` its log-density with respect to Lebesgue measure on the first K - 1 coordinates
  of the simplex, summed over the variables:

      log Gamma(K) + (K - 1) log tau + sum_k (log pi_k - (tau + 1) log y_k)
                   - K logsumexp_k (log pi_k - tau log y_k).

  Relaxed samples are computed in log space and floored at the smallest normal number of
  their dtype, so that ``log_prob`` of a sample is finite even at low temperatures.

``mean`` is the probabilities pi (flattened): the mean of the one-hot draws, and the limit of
the relaxed mean as tau -> 0 (which has no closed form at tau > 0).

KL(q || p) between any two of them (registered with ``register_kl``) is the exact KL of the
categoricals, sum_n sum_k q_nk (log q_nk - log p_nk), whatever their temperatures.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints, register_kl

MAX_SUPPORT = 2**20
"""The most points ``OneHotCategoricals.enumerate_support`` lists (K**N of them)."""


class _OneHotGroups(constraints.Constraint):
    """Values that are N one-hot vectors of length K, flattened."""

    is_discrete = True
    event_dim = 1

    def __init__(self, categories: int) -> None:
        self.categories = int(categories)
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        v = value.unflatten(-1, (-1, self.categories))
        return (((v == 0) | (v == 1)).all(-1) & (v.sum(-1) == 1)).all(-1)


class _SimplexGroups(constraints.Constraint):
    """Values that are N points of the probability simplex of K categories, flattened."""

    event_dim = 1

    def __init__(self, categories: int) -> None:
        self.categories = int(categories)
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        v = value.unflatten(-1, (-1, self.categories))
        return ((v >= 0).all(-1) & ((v.sum(-1) - 1).abs() < 1e-5)).all(-1)


class _Categoricals(Distribution):
    """What both distributions share: the logits, the temperature, the shapes, the Gumbel noise."""

    arg_constraints = {"logits": constraints.real, "temperature": constraints.positive}
    has_rsample = True

    def __init__(self, logits: Tensor, temperature: Any = 1.0, validate_args: bool | None = None) -> None:
        if not isinstance(logits, Tensor) or logits.dim() < 2 or logits.shape[-1] < 2:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"{type(self).__name__}: logits must be a tensor (..., N, K) with K >= 2 categories, got {shape}")
        self.logits = logits - logits.logsumexp(-1, keepdim=True)  # log pi, normalised per variable
        self.temperature = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
        if self.temperature.dim() != 0:
            raise ValueError(f"{type(self).__name__}: temperature must be one number (a 0-d tensor), got shape {tuple(self.temperature.shape)}")
        self.groups, self.categories = int(logits.shape[-2]), int(logits.shape[-1])
        super().__init__(logits.shape[:-2], torch.Size((self.groups * self.categories,)), validate_args=validate_args)

    @property
    def probs(self) -> Tensor:
        """pi, ``(..., N, K)``."""
        return self.logits.exp()

    @property
    def mean(self) -> Tensor:
        return self.probs.flatten(-2)

    @property
    def mode(self) -> Tensor:
        """The most probable one-hot vector of each variable."""
        return _one_hot(self.logits).flatten(-2)

    def entropy(self) -> Tensor:
        """The entropy of the categoricals (of the discrete distribution), summed over the variables."""
        return -(_xlogx_terms(self.logits)).sum((-1, -2))

    def expand(self, batch_shape: Any, _instance: Any = None) -> _Categoricals:
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(*batch_shape, self.groups, self.categories)
        return type(self)(logits, self.temperature, validate_args=False)

    def _groups(self, value: Tensor) -> Tensor:
        """``value (..., N*K)`` as ``(..., N, K)``."""
        if value.shape[-1:] != self.event_shape:
            raise ValueError(
                f"{type(self).__name__}: expected z of shape (..., {self.groups * self.categories}) "
                f"({self.groups} variables of {self.categories} categories), got {tuple(value.shape)}"
            )
        return value.unflatten(-1, (self.groups, self.categories))

    def _perturbed(self, sample_shape: Any) -> Tensor:
        """log pi + g with g ~ Gumbel(0, 1), shape ``(*sample_shape, *batch, N, K)``."""
        shape = torch.Size(sample_shape) + self.logits.shape
        u = torch.rand(shape, dtype=self.logits.dtype, device=self.logits.device)
        u = u.clamp_min(torch.finfo(u.dtype).tiny)
        return self.logits.expand(shape) - torch.log(-torch.log(u))

    def _relaxed(self, perturbed: Tensor) -> Tensor:
        """log softmax(perturbed / temperature), floored at the log of the dtype's smallest normal number."""
        return torch.log_softmax(perturbed / self.temperature, dim=-1).clamp_min(_log_floor(perturbed.dtype))

    def _counted(self) -> None:
        """Tell the encoder that made this posterior in training mode that it was sampled (once)."""
        tick = self.__dict__.pop("_on_rsample", None)
        if tick is not None:
            tick()

    def extra_repr(self) -> str:
        return f"groups={self.groups}, categories={self.categories}, temperature={float(self.temperature):.4g}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}, batch_shape={tuple(self.batch_shape)})"


class OneHotCategoricals(_Categoricals):
    """The discrete distribution of N categoricals over one-hot z (see the module doc)."""

    has_enumerate_support = True

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return _OneHotGroups(self.categories)

    def sample(self, sample_shape: Any = torch.Size()) -> Tensor:
        with torch.no_grad():
            return _one_hot(self._perturbed(sample_shape)).flatten(-2)

    def rsample(self, sample_shape: Any = torch.Size()) -> Tensor:
        """Exact one-hot draws whose gradient is that of the relaxed sample (straight-through)."""
        self._counted()
        perturbed = self._perturbed(sample_shape)
        hard = _one_hot(perturbed.detach())
        soft = self._relaxed(perturbed).exp()
        return (hard + (soft - soft.detach())).flatten(-2)  # x - x is exactly 0: the value is the one-hot draw

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return (self._groups(value) * self.logits).sum((-1, -2))

    def enumerate_support(self, expand: bool = True) -> Tensor:
        """All K**N one-hot vectors, ``(K**N, *batch, N*K)`` (``(K**N, 1, .., 1, N*K)`` without ``expand``)."""
        n, k = self.groups, self.categories
        if k**n > MAX_SUPPORT:
            raise ValueError(
                f"{type(self).__name__}: {k}**{n} = {k**n:,} one-hot configurations are too many to list "
                f"(at most {MAX_SUPPORT:,})"
            )
        index = torch.cartesian_prod(*[torch.arange(k, device=self.logits.device)] * n).reshape(-1, n)
        points = torch.nn.functional.one_hot(index, k).to(self.logits.dtype).flatten(-2)  # (K**N, N*K)
        points = points.reshape(len(points), *([1] * len(self.batch_shape)), n * k)
        return points.expand(len(points), *self.batch_shape, n * k) if expand else points


class RelaxedOneHotCategoricals(_Categoricals):
    """The Concrete / Gumbel-softmax relaxation of N categoricals at ``temperature`` (see the module doc)."""

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        return _SimplexGroups(self.categories)

    def sample(self, sample_shape: Any = torch.Size()) -> Tensor:
        with torch.no_grad():
            return self._relaxed(self._perturbed(sample_shape)).exp().flatten(-2)

    def rsample(self, sample_shape: Any = torch.Size()) -> Tensor:
        self._counted()
        return self._relaxed(self._perturbed(sample_shape)).exp().flatten(-2)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_y = self._groups(value).clamp_min(torch.finfo(value.dtype).tiny).log()
        tau, k = self.temperature, self.categories
        log_norm = math.lgamma(k) + (k - 1) * tau.log()
        terms = (self.logits - (tau + 1) * log_y).sum(-1) - k * (self.logits - tau * log_y).logsumexp(-1)
        return (log_norm + terms).sum(-1)


@register_kl(_Categoricals, _Categoricals)
def _kl_categoricals(q: _Categoricals, p: _Categoricals) -> Tensor:
    """The exact KL of the categoricals, sum_n sum_k q_nk (log q_nk - log p_nk); relaxation ignored."""
    if (q.groups, q.categories) != (p.groups, p.categories):
        raise ValueError(
            f"KL of categorical latents: q has {q.groups} variables of {q.categories} categories, p has "
            f"{p.groups} of {p.categories}; they must agree"
        )
    possible = q.logits > -math.inf  # q_nk = 0 adds nothing (and no NaN gradient)
    log_q = q.logits.masked_fill(~possible, 0.0)
    return torch.where(possible, log_q.exp() * (log_q - p.logits), 0.0).sum((-1, -2))


def _one_hot(scores: Tensor) -> Tensor:
    """The one-hot vector of the largest score along the last dimension (same dtype)."""
    return torch.nn.functional.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)


def _xlogx_terms(log_p: Tensor) -> Tensor:
    """p log p elementwise, 0 where p = 0 (with a zero gradient there, not NaN)."""
    possible = log_p > -math.inf
    safe = log_p.masked_fill(~possible, 0.0)
    return torch.where(possible, safe.exp() * safe, 0.0)


def _log_floor(dtype: torch.dtype) -> float:
    return math.log(torch.finfo(dtype).tiny)
