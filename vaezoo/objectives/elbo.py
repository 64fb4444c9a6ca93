"""``objective: elbo`` -- the evidence lower bound, with a KL weight, its warm-up and free bits.

loss = -(E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))), the KL analytic where the model knows
a formula (``model.kl``), Monte Carlo from the same z otherwise; beta rises linearly from ~0
over ``kl_warmup_epochs`` (Bowman et al. 2016; Sonderby et al. 2016); free bits (Kingma et
al. 2016) hold each latent dimension's batch-mean KL at ``free_bits`` nats at least.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..conditioning import given
from ..validation import check_nonnegative, check_positive_int
from ._warmup import WarmedUpBeta


class ELBO(WarmedUpBeta):
    """The ELBO. Metrics: ``loss``, ``elbo``, ``log_px_z``, ``kl`` (and any other term the model reports).

    Parameters:

    * ``beta`` -- weight of the KL term (a beta-VAE for values other than 1); the ELBO reported
      is always the true one.
    * ``kl_warmup_epochs`` -- KL warm-up: the KL weight rises linearly from ~0 to ``beta`` over
      this many epochs (0: off).
    * ``free_bits`` -- free bits λ (Kingma et al. 2016): when the KL is analytic and splits into
      one term per latent dimension (a ``normal`` prior) each dimension's batch-mean KL counts at
      least λ nats in the loss; otherwise (a Monte Carlo KL: ``mixture`` or ``vamp`` priors,
      ``model.kl=mc``) one floor of λ·``latent_dim`` nats applies to the batch-mean total KL.
    * ``num_samples`` -- z samples per example (a K-sample estimate of the ELBO).
    """

    def __init__(self, beta: float = 1.0, kl_warmup_epochs: float = 0.0, free_bits: float = 0.0, num_samples: int = 1) -> None:
        who = "objective 'elbo'"
        super().__init__(beta, kl_warmup_epochs, who)
        self.free_bits = check_nonnegative(free_bits, "free_bits", who)
        self.num_samples = check_positive_int(num_samples, "num_samples", who)

    def forward(self, model: nn.Module, x: Tensor, beta: Any = None, y: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
        out = model.elbo(x, num_samples=self.num_samples, beta=self.beta if beta is None else beta, free_bits=self.free_bits, **given(y))
        return out["loss"].mean(), out

    def extra_repr(self) -> str:
        return f"beta={self.beta}, kl_warmup_epochs={self.kl_warmup_epochs}, free_bits={self.free_bits}, num_samples={self.num_samples}"
