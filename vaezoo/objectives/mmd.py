"""``objective: mmd`` -- InfoVAE (Zhao, Song and Ermon 2019), with MMD-VAE as its default.

loss = -(E_q log p(x|z) - (1 - alpha) KL(q(z|x) || p(z)) - (alpha + lam - 1) MMD^2(q(z), p(z)))

(Zhao et al., eq. 6, with the maximum mean discrepancy as the divergence between the
aggregate posterior q(z) and the prior). MMD^2 is the unbiased estimate between the batch's
z ~ q(z|x) and as many draws from p(z) (Gretton et al. 2012, eq. 3); the kernel is the inverse
multiquadratic C / (C + |a - b|^2) with C = 2 D ``scale``^2, or the Gaussian exp(-|a - b|^2 / (2 D
``scale``^2)), D the latent size. The defaults alpha = 1, lam = 1000 drop the KL term (MMD-VAE).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..components import Objective
from ..conditioning import given
from ..validation import check_choice, check_nonnegative, check_positive_float
from ._flat import require_flat_latent

KERNELS = ("imq", "rbf")


class MMD(Objective):
    """InfoVAE / MMD-VAE. Metrics: ``loss``, ``elbo``, ``log_px_z``, ``kl`` and ``mmd`` (the batch's MMD^2, per example).

    Parameters:

    * ``alpha`` -- in [0, 1]; the KL weight is 1 - alpha.
    * ``lam`` -- λ; the MMD weight is alpha + lam - 1.
    * ``kernel`` -- ``imq`` (inverse multiquadratic, C = 2 D scale²) or ``rbf`` (Gaussian,
      variance D scale²), D the latent size.
    * ``scale`` -- kernel scale, in units of the prior's standard deviation.
    """

    def __init__(self, alpha: float = 1.0, lam: float = 1000.0, kernel: str = "imq", scale: float = 1.0) -> None:
        super().__init__()
        who = "objective 'mmd'"
        self.alpha = check_nonnegative(alpha, "alpha", who)
        if self.alpha > 1:
            raise ValueError(f"{who}: alpha must be in [0, 1] (the KL weight is 1 - alpha), got {alpha!r}")
        self.lam = check_nonnegative(lam, "lam", who)
        self.kernel = check_choice(kernel, "kernel", who, KERNELS)
        self.scale = check_positive_float(scale, "scale", who)

    def check(self, model: nn.Module) -> None:
        require_flat_latent(model, "mmd")

    def forward(self, model: nn.Module, x: Tensor, y: Any = None, **_: Any) -> tuple[Tensor, dict[str, Tensor]]:
        q = model.encode(x, **given(y))
        z = q.rsample()  # (B, D)
        log_px_z = model.likelihood.log_prob(x, model.decode(z, **given(y)))
        kl = model.kl(q, z.unsqueeze(0), **given(y))
        with torch.no_grad():
            prior_z = model.prior.sample(z.shape[0]).to(z)
        divergence = mmd(z, prior_z, kernel=self.kernel, scale=self.scale).expand(z.shape[0])
        loss = -(log_px_z - (1.0 - self.alpha) * kl - (self.alpha + self.lam - 1.0) * divergence)
        return loss.mean(), {"loss": loss, "elbo": log_px_z - kl, "log_px_z": log_px_z, "kl": kl, "mmd": divergence}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, lam={self.lam}, kernel={self.kernel!r}, scale={self.scale}"


def kernel_matrix(a: Tensor, b: Tensor, *, kernel: str = "imq", scale: float = 1.0) -> Tensor:
    """``k(a_i, b_j)`` for ``a (n, D)``, ``b (m, D)``: ``(n, m)``."""
    d2 = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    width = a.shape[-1] * scale**2
    if kernel == "imq":
        c = 2.0 * width
        return c / (c + d2)
    if kernel == "rbf":
        return torch.exp(-d2 / (2.0 * width))
    raise ValueError(f"unknown kernel {kernel!r}; one of {', '.join(KERNELS)}")


def mmd(a: Tensor, b: Tensor, *, kernel: str = "imq", scale: float = 1.0) -> Tensor:
    """The unbiased estimate of MMD^2 between samples ``a (n, D)`` and ``b (m, D)`` (n, m >= 2), a 0-d tensor."""
    n, m = a.shape[0], b.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"the MMD estimate needs at least 2 samples on each side, got {n} and {m}")
    kaa, kbb, kab = (kernel_matrix(u, v, kernel=kernel, scale=scale) for u, v in ((a, a), (b, b), (a, b)))
    within_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    within_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return within_a + within_b - 2.0 * kab.mean()
