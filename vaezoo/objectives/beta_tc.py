"""``objective: beta_tc`` -- the beta-TCVAE (Chen et al. 2018, "Isolating sources of
disentanglement in VAEs").

The KL of every example splits into three terms (Chen et al., eq. 2), each estimated on the
minibatch by minibatch-weighted sampling (their eq. 6) with M the batch size and N the size
of the training set:

  log q(z_i)        ~ logsumexp_j log q(z_i | x_j)        - log(N M)
  log prod_d q(z_id) = sum_d [logsumexp_j log q(z_id | x_j) - log(N M)]

  mi   = log q(z_i|x_i) - log q(z_i)                 (index-code mutual information)
  tc   = log q(z_i) - log prod_d q(z_id)             (total correlation)
  dwkl = log prod_d q(z_id) - log p(z_i)             (dimension-wise KL)

mi + tc + dwkl = log q(z_i|x_i) - log p(z_i), a one-sample estimate of KL(q(z|x) || p(z)).
loss = -(log p(x|z) - alpha mi - beta tc - gamma dwkl). Needs q and p that factorise over the
latent dimensions (diagonal posteriors; the ``normal`` prior).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Independent

from ..components import Objective
from ..conditioning import given
from ..errors import ConfigError
from ..validation import check_nonnegative, check_positive_int
from ._flat import require_flat_latent


class BetaTC(Objective):
    """beta-TCVAE. Metrics: ``loss``, ``elbo``, ``log_px_z``, ``kl`` (= mi + tc + dwkl), ``mi``, ``tc``, ``dwkl``.

    Parameters:

    * ``alpha`` -- weight of the index-code mutual information ``mi``.
    * ``beta`` -- weight of the total correlation ``tc``.
    * ``gamma`` -- weight of the dimension-wise KL ``dwkl``.
    * ``dataset_size`` -- N of the estimator; null: the size of the training split.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 6.0, gamma: float = 1.0, dataset_size: int | None = None) -> None:
        super().__init__()
        who = "objective 'beta_tc'"
        self.alpha = check_nonnegative(alpha, "alpha", who)
        self.beta = check_nonnegative(beta, "beta", who)
        self.gamma = check_nonnegative(gamma, "gamma", who)
        self.dataset_size = None if dataset_size is None else check_positive_int(dataset_size, "dataset_size", who)

    def setup(self, *, steps_per_epoch: int, dataset_size: int) -> None:
        if self.dataset_size is None:
            self.dataset_size = int(dataset_size)

    def check(self, model: nn.Module) -> None:
        require_flat_latent(model, "beta_tc")
        p = model.prior.distribution()
        if not (isinstance(p, Independent) and p.reinterpreted_batch_ndims == 1):
            name = (getattr(model, "config", None) or {}).get("prior", {})
            name = name.get("name") if isinstance(name, dict) else name
            raise ConfigError(
                f"objective 'beta_tc': the total-correlation split needs a prior that factorises over the latent "
                f"dimensions (an Independent distribution, like prior 'normal'); prior {name!r} gives {type(p).__name__}"
            )

    def forward(self, model: nn.Module, x: Tensor, y: Any = None, **_: Any) -> tuple[Tensor, dict[str, Tensor]]:
        if self.dataset_size is None:
            raise ValueError("objective 'beta_tc': set dataset_size, or call setup(steps_per_epoch=..., dataset_size=N)")
        q = model.encode(x, **given(y))
        if not (isinstance(q, Independent) and q.reinterpreted_batch_ndims == 1):
            raise ValueError(f"objective 'beta_tc' needs a posterior that factorises over z (Independent), got {type(q).__name__}")
        z = q.rsample()  # (M, D)
        log_px_z = model.likelihood.log_prob(x, model.decode(z, **given(y)))  # (M,)
        terms = decompose_kl(q, z, model.prior.distribution(), self.dataset_size)
        kl = terms["mi"] + terms["tc"] + terms["dwkl"]
        loss = -(log_px_z - self.alpha * terms["mi"] - self.beta * terms["tc"] - self.gamma * terms["dwkl"])
        return loss.mean(), {"loss": loss, "elbo": log_px_z - kl, "log_px_z": log_px_z, "kl": kl, **terms}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, dataset_size={self.dataset_size}"


def decompose_kl(q: Independent, z: Tensor, p: Independent, dataset_size: int) -> dict[str, Tensor]:
    """``{mi, tc, dwkl}`` per example ``(M,)`` for one sample ``z (M, D)`` of a factorised ``q``
    (batch ``(M,)``), a factorised prior ``p`` and a training set of ``dataset_size`` examples."""
    m = z.shape[0]
    log_nm = math.log(dataset_size * m)
    pairs = q.base_dist.log_prob(z.unsqueeze(1))  # (M, M, D): log q(z_i,d | x_j,d)
    log_qz_x = pairs.diagonal(dim1=0, dim2=1).sum(0)  # (M,): log q(z_i | x_i)
    log_qz = torch.logsumexp(pairs.sum(-1), dim=1) - log_nm  # (M,)
    log_prod = (torch.logsumexp(pairs, dim=1) - log_nm).sum(-1)  # (M,)
    log_pz = p.base_dist.log_prob(z).sum(-1)  # (M,)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_prod, "dwkl": log_prod - log_pz}
