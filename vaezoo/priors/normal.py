"""The standard normal prior (``prior: normal``): p(z) = N(0, I).

No parameters. ``distribution()`` is a ``StandardNormalDistribution``: an
``Independent(Normal(0, 1), 1)`` on the prior's device and dtype, built once per device and
dtype. KL(q || N(0, I)) for a diagonal Gaussian q is registered with torch.distributions'
``register_kl``, so ``kl_divergence(q, prior.distribution())`` takes the short formula
without building or broadcasting the prior's tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Independent, Normal, kl_divergence, register_kl

from ..components import Prior
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
    """p(z) = N(0, I) over ``latent_dim`` dimensions; no learnable parameters."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__(check_positive_int(latent_dim, "latent_dim", "StandardNormal"))
        # Not saved in the state_dict; only here so .to() / .double() give the prior a device and dtype.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self._cached: StandardNormalDistribution | None = None

    def distribution(self) -> StandardNormalDistribution:
        cached = self._cached
        anchor = self._anchor
        if cached is None or cached.base_dist.loc.dtype != anchor.dtype or cached.base_dist.loc.device != anchor.device:
            zeros = anchor.new_zeros(self.latent_dim)
            cached = StandardNormalDistribution(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)
            self._cached = cached
        return cached

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"
