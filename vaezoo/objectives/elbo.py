"""``objective: elbo`` -- the evidence lower bound, with a KL weight, its warm-up and free bits.

loss = -(E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))), the KL analytic where the model knows
a formula (``model.kl``), Monte Carlo from the same z otherwise; beta rises linearly from ~0
over ``kl_warmup_epochs`` (Bowman et al. 2016; Sonderby et al. 2016); free bits (Kingma et
al. 2016) hold each latent dimension's batch-mean KL at ``free_bits`` nats at least.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..components import Objective, warmup
from ..validation import check_nonnegative, check_positive_int


class ELBO(Objective):
    """The ELBO. Metrics: ``loss``, ``elbo``, ``log_px_z``, ``kl`` (and any other term the model reports)."""

    def __init__(self, beta: float = 1.0, kl_warmup_epochs: float = 0.0, free_bits: float = 0.0, num_samples: int = 1) -> None:
        super().__init__()
        who = "objective 'elbo'"
        self.beta = check_nonnegative(beta, "beta", who)
        self.kl_warmup_epochs = check_nonnegative(kl_warmup_epochs, "kl_warmup_epochs", who)
        self.free_bits = check_nonnegative(free_bits, "free_bits", who)
        self.num_samples = check_positive_int(num_samples, "num_samples", who)
        self.warmup_steps = 0

    def setup(self, *, steps_per_epoch: int, dataset_size: int) -> None:
        self.warmup_steps = round(self.kl_warmup_epochs * steps_per_epoch)

    def schedule(self, step: int) -> dict[str, float]:
        return {"beta": warmup(step, self.beta, self.warmup_steps)}

    def forward(self, model: nn.Module, x: Tensor, beta: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
        out = model.elbo(x, num_samples=self.num_samples, beta=self.beta if beta is None else beta, free_bits=self.free_bits)
        return out["loss"].mean(), out

    def extra_repr(self) -> str:
        return f"beta={self.beta}, kl_warmup_epochs={self.kl_warmup_epochs}, free_bits={self.free_bits}, num_samples={self.num_samples}"
