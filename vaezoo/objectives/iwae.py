"""``objective: iwae`` -- the importance weighted bound (Burda et al. 2016), optionally trained
with the doubly reparameterised gradient estimator (DReG; Tucker et al. 2019).

bound = log (1/K) sum_k w_k, w_k = p(x|z_k) p(z_k)^beta / q(z_k|x)^beta, z_k ~ q(z|x). With
``dreg: true`` the score term beta * sum_k wt_k d log q(z_k) / d psi (wt the normalised weights,
psi every parameter) is replaced by its reparameterised equal, beta * sum_k (wt_k - wt_k^2)
d log w_k / d z_k dz_k/dpsi (Tucker et al. 2019, eq. 5-8), so that the gradient is

    sum_k wt_k d log p~(x, z_k) / d psi |z  +  sum_k ((1 - beta) wt_k + beta wt_k^2) d log w_k / d z_k dz_k/dpsi

(log p~ = log p(x|z) + beta log p(z)): unbiased for the bound's gradient, with a variance that
does not grow with K for the inference network. The model's ``log_weights(detach_q=True)``
gives log q without gradients to the parameters and z on which the path derivative arrives
once; a hook on each z scales it. The value reported is the bound either way.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..validation import check_positive_int
from ..conditioning import given
from ._warmup import WarmedUpBeta


class IWAE(WarmedUpBeta):
    """The IWAE bound with ``num_samples`` samples. Metrics: ``loss`` (-bound), ``elbo`` (the
    bound with beta = 1), ``log_px_z`` (mean over samples) and ``kl`` (Monte Carlo, -E log p(z)/q(z|x)).

    Parameters:

    * ``num_samples`` -- K, the samples per example.
    * ``dreg`` -- train the encoder with the doubly reparameterised gradient estimator (Tucker
      et al. 2019): unbiased, lower variance for large K; the reported bound is the same.
    * ``beta`` -- weight of log p(z) - log q(z|x) inside the bound (1: the true bound).
    * ``kl_warmup_epochs`` -- warm-up of ``beta``, as for ``elbo``.
    """

    def __init__(self, num_samples: int = 5, dreg: bool = False, beta: float = 1.0, kl_warmup_epochs: float = 0.0) -> None:
        who = "objective 'iwae'"
        super().__init__(beta, kl_warmup_epochs, who)
        self.num_samples = check_positive_int(num_samples, "num_samples", who)
        if not isinstance(dreg, bool):
            raise ValueError(f"{who}: dreg must be true or false, got {dreg!r}")
        self.dreg = dreg

    def forward(self, model: nn.Module, x: Tensor, beta: Any = None, y: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
        beta = self.beta if beta is None else beta
        k = self.num_samples
        lw = model.log_weights(x, k, detach_q=self.dreg, **given(y))
        log_ratio = lw.log_pz - lw.log_qz  # (K, B)
        log_w = lw.log_px_z + beta * log_ratio
        bound = torch.logsumexp(log_w, dim=0) - math.log(k)
        unweighted = bound if isinstance(beta, float) and beta == 1.0 else torch.logsumexp(lw.log_px_z + log_ratio, 0) - math.log(k)
        metrics = {"elbo": unweighted, "log_px_z": lw.log_px_z.mean(0), "kl": -log_ratio.mean(0), "loss": -bound}
        if not self.dreg or not torch.is_grad_enabled():
            return -bound.mean(), metrics
        weights = torch.softmax(log_w.detach(), dim=0)  # (K, B), normalised over the samples
        path = (1.0 - beta) + beta * weights  # the path term's weight over the surrogate's wt
        for z in lw.z:
            if z.requires_grad:
                shape = (*path.shape, *[1] * (z.dim() - path.dim()))
                z.register_hook(lambda g, s=path.reshape(shape): (g * s).to(g.dtype))  # bf16 autocast
        surrogate = (weights * log_w).sum(0)  # gradient: sum_k wt_k grad log w_k
        loss = -(bound.detach() + surrogate - surrogate.detach())  # the value of -bound, the DReG gradient
        return loss.mean(), metrics

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, dreg={self.dreg}, beta={self.beta}, kl_warmup_epochs={self.kl_warmup_epochs}"
