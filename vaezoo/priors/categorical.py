"""The categorical prior (``prior: categorical``): p(z) = prod_n Cat(z_n; pi_n) over N = latent_dim / K
one-hot variables, uniform (pi_nk = 1/K) or with learned logits.

It is the prior of categorical latents (``Encoder.latent == "categorical"``, such as
``encoder: categorical``), and is evaluated in the same measure as the posterior it is bound to:

* the encoder gives relaxed samples (training, ``hard: false``): ``distribution()`` is the
  Concrete relaxation of p at the encoder's current temperature (Maddison et al. 2017's relaxed
  prior), so ``log q(z) - log p(z)`` (Monte Carlo KL, IWAE weights) is a difference of densities;
* otherwise (eval mode, ``hard: true``, or unbound): the discrete distribution, and log_prob is
  the log-mass, as the posterior's.

KL(q || p) (``model.kl: auto``) is the exact KL of the categoricals in every state
(``vaezoo.distributions.categorical``). Sampling follows the same state; in eval mode,
``sample(n)`` draws exact one-hot vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from ..components import Prior
from ..components.base import check_latents
from ..distributions.categorical import OneHotCategoricals, RelaxedOneHotCategoricals
from ..errors import ConfigError
from ..validation import check_positive_int


class CategoricalPrior(Prior):
    """N = ``latent_dim / categories`` independent categoricals over one-hot z, uniform or learned.

    Parameters:

    * ``categories`` -- K, the categories of each variable; the same as the encoder's, and
      ``latent_dim`` a multiple of it.
    * ``learn`` -- learn the logits of every variable (``logits (N, K)``, initially uniform);
      false: the uniform prior, 1/K for each category (nothing to learn or save).
    """

    latents = ("categorical",)

    def __init__(self, latent_dim: int, categories: int = 10, learn: bool = False) -> None:
        who = "CategoricalPrior"
        super().__init__(check_positive_int(latent_dim, "latent_dim", who))
        self.categories = check_positive_int(categories, "categories", who)
        if self.categories < 2:
            raise ValueError(f"{who}: categories must be at least 2, got {categories}")
        if self.latent_dim % self.categories:
            raise ConfigError(
                f"{who}: latent_dim {self.latent_dim} is not a multiple of categories {self.categories}; latent_dim "
                f"is N variables x {self.categories} categories, as for the encoder"
            )
        if not isinstance(learn, bool):
            raise ValueError(f"{who}: learn must be true or false, got {learn!r}")
        self.groups, self.learn = self.latent_dim // self.categories, learn
        zeros = torch.zeros(self.groups, self.categories)
        if learn:
            self.logits = nn.Parameter(zeros)
        else:  # uniform: not saved; a buffer only so that .to() / .double() move it
            self.register_buffer("logits", zeros, persistent=False)
        # object.__setattr__ keeps the encoder out of this module's submodules and state_dict.
        object.__setattr__(self, "_encoder", None)

    def bind(self, encoder: nn.Module, data_shape: tuple[int, ...]) -> None:
        """Follow ``encoder``'s state (relaxed or discrete, its temperature); refuse one that is not
        of categorical latents with ``categories`` categories (``ConfigError``)."""
        check_latents(self, encoder)
        theirs = getattr(encoder, "categories", None)
        if theirs != self.categories or not callable(getattr(encoder, "relaxed_temperature", None)):
            raise ConfigError(
                f"model.prior: the categorical prior has categories={self.categories}, but the encoder "
                f"({type(encoder).__name__}) has categories={theirs!r}; give both the same categories"
                + ("" if callable(getattr(encoder, "relaxed_temperature", None)) else " (and the encoder a relaxed_temperature())")
            )
        object.__setattr__(self, "_encoder", encoder)

    def distribution(self) -> OneHotCategoricals | RelaxedOneHotCategoricals:
        encoder = self.__dict__.get("_encoder")
        tau = encoder.relaxed_temperature() if encoder is not None else None
        if tau is None:
            return OneHotCategoricals(self.logits, validate_args=False)
        return RelaxedOneHotCategoricals(self.logits, tau.to(self.logits), validate_args=False)

    def extra_repr(self) -> str:
        bound = self.__dict__.get("_encoder") is not None
        return f"latent_dim={self.latent_dim}, categories={self.categories}, learn={self.learn}, bound={bound}"
