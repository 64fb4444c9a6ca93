"""The standard normal prior (``prior: normal``): p(z) = N(0, I).

No parameters. ``distribution()`` is a ``StandardNormalDistribution``: an
``Independent(Normal(0, 1), 1)`` on the prior's device and dtype, built once per device and
dtype. KL(q || N(0, I)) for a diagonal Gaussian q is registered with torch.distributions'
``register_kl``, so ``kl_divergence(q, prior.distribution())`` takes the short formula
without building or broadcasting the prior's tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal, kl_divergence, register_kl

from ..components import Prior
from ..errors import DataError
from ..validation import check_positive_int


class StandardNormalDistribution(Independent):
    """N(0, I) over the last dimension: ``Independent(Normal(0, 1), 1)``, known to ``kl_divergence``."""


@register_kl(Independent, StandardNormalDistribution)
def _kl_to_standard_normal(q: Independent, p: StandardNormalDistribution) -> Tensor:
    """KL(q || N(0, I)), ``q`` a diagonal Gaussian: sum of 0.5 (s^2 + m^2 - 1 - log s^2).

    The same operations as torch's Normal-Normal formula with loc 0 and scale 1 (the same
    numbers bit for bit), without the prior's tensors. Any other ``q`` goes to torch's own
    Independent-Independent rule.
    """
    base = q.base_dist
    if type(base) is Normal and q.reinterpreted_batch_ndims == 1:
        var_ratio = base.scale.pow(2)  # (scale / 1)^2
        t1 = base.loc.pow(2)  # ((loc - 0) / 1)^2
        return (0.5 * (var_ratio + t1 - 1 - var_ratio.log())).sum(-1)
    return kl_divergence(q, Independent(p.base_dist, p.reinterpreted_batch_ndims))


class StandardNormal(Prior):
    """p(z) = N(0, I) over ``latent_dim`` dimensions; no learnable parameters.

    In a conditional model with ``model.condition.prior: true`` vaezoo builds it with
    ``condition_dim``: then p(z|y) = N(loc(y), diag(scale(y)^2)) with loc and log scale linear
    in y (Sohn et al. 2015's conditional prior), initialised to N(0, I);
    ``distribution(y)`` has batch shape ``(B,)``, ``log_prob(z, y)`` and ``sample(n, y)``.
    """

    def __init__(self, latent_dim: int, condition_dim: int = 0) -> None:
        super().__init__(check_positive_int(latent_dim, "latent_dim", "StandardNormal"))
        self.condition_dim = check_positive_int(condition_dim, "condition_dim", "StandardNormal", allow_zero=True)
        # Not saved in the state_dict; only here so .to() / .double() give the prior a device and dtype.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self._cached: StandardNormalDistribution | None = None
        if self.condition_dim:
            self.conditional = nn.Linear(self.condition_dim, 2 * self.latent_dim)
            nn.init.zeros_(self.conditional.weight)
            nn.init.zeros_(self.conditional.bias)

    def distribution(self, y: Tensor | None = None) -> Independent:
        if self.condition_dim or y is not None:
            return self._conditional(y)
        cached = self._cached
        anchor = self._anchor
        if cached is None or cached.base_dist.loc.dtype != anchor.dtype or cached.base_dist.loc.device != anchor.device:
            zeros = anchor.new_zeros(self.latent_dim)
            cached = StandardNormalDistribution(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)
            self._cached = cached
        return cached

    def _conditional(self, y: Tensor | None) -> Independent:
        if not self.condition_dim:
            raise DataError("StandardNormal: got y, but this prior was built without condition_dim (an unconditional prior)")
        if y is None or y.shape[-1] != self.condition_dim:
            got = "nothing" if y is None else f"shape {tuple(y.shape)}"
            raise DataError(f"StandardNormal: a conditional prior needs y of shape (..., {self.condition_dim}), got {got}")
        loc, log_scale = self.conditional(y.to(self.conditional.weight.dtype)).chunk(2, dim=-1)
        return Independent(Normal(loc, log_scale.exp(), validate_args=False), 1)

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.distribution(y).log_prob(z)

    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        if self.condition_dim:
            d = self.distribution(y)
            if d.batch_shape != (int(n),):
                raise DataError(f"StandardNormal: sample({n}, y) needs y of shape ({n}, {self.condition_dim}), got {tuple(y.shape) if y is not None else None}")
            return d.sample()
        return self.distribution().sample((int(n),))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}" + (f", condition_dim={self.condition_dim}" if self.condition_dim else "")
