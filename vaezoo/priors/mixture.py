"""A learnable mixture of Gaussians prior (``prior: mixture``).

p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)), with means, log-scales and mixture logits all
learned jointly with the VAE. The KL term has no closed form; use a Monte Carlo estimate
(``log q(z|x) - log p(z)`` at the sampled z).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..components import Prior
from ..nets.layers import check_weights
from ..validation import check_positive_float, check_positive_int
from ._diagonal_mixture import DiagonalNormalMixture


class GaussianMixture(Prior):
    """Mixture of ``components`` diagonal Gaussians with learnable weights, means and scales.

    Parameters:

    * ``components`` -- number of mixture components K.
    * ``init_spread`` -- the initial means are drawn from N(0, init_spread^2 I) (current torch RNG).
    * ``init_scale`` -- initial standard deviation of every component.

    Learnable tensors: ``loc (K, latent_dim)``, ``log_scale (K, latent_dim)``, ``logits (K,)``
    (initially uniform weights). Read the constrained values from ``means``, ``scales`` and
    ``weights``.
    """

    def __init__(
        self,
        latent_dim: int,
        components: int = 10,
        init_spread: float = 1.0,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__(check_positive_int(latent_dim, "latent_dim", "GaussianMixture"))
        self.components = check_positive_int(components, "components", "GaussianMixture")
        spread = check_positive_float(init_spread, "init_spread", "GaussianMixture")
        scale = check_positive_float(init_scale, "init_scale", "GaussianMixture")
        k, d = self.components, self.latent_dim  # checked before anything is allocated
        check_weights([("loc", k * d), ("log_scale", k * d), ("logits", k)], "GaussianMixture", "components or latent_dim")
        self.loc = nn.Parameter(torch.randn(self.components, self.latent_dim) * spread)
        self.log_scale = nn.Parameter(torch.full((self.components, self.latent_dim), math.log(scale)))
        self.logits = nn.Parameter(torch.zeros(self.components))

    @property
    def means(self) -> Tensor:
        return self.loc

    @property
    def scales(self) -> Tensor:
        return self.log_scale.exp()

    @property
    def weights(self) -> Tensor:
        return self.logits.softmax(-1)

    def distribution(self) -> DiagonalNormalMixture:
        return DiagonalNormalMixture(self.logits, self.loc, self.log_scale.exp())

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, components={self.components}"
