"""The standard normal prior (``prior: normal``): p(z) = N(0, I).

No parameters. ``distribution()`` is ``Independent(Normal(0, 1), 1)`` on the prior's device
and dtype, so ``torch.distributions.kl_divergence(q, prior.distribution())`` is analytic for
a diagonal Gaussian ``q`` (as the built-in encoders return).
"""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal

from ..components import Prior
from ..validation import check_positive_int


class StandardNormal(Prior):
    """p(z) = N(0, I) over ``latent_dim`` dimensions; no learnable parameters."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__(check_positive_int(latent_dim, "latent_dim", "StandardNormal"))
        # Not saved in the state_dict; only here so .to() / .double() give the prior a device and dtype.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def distribution(self) -> Independent:
        zeros = self._anchor.new_zeros(self.latent_dim)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"
