"""The KL weight beta and its linear warm-up, shared by the objectives that weight a KL term."""

from __future__ import annotations

from ..components import Objective, warmup
from ..validation import check_nonnegative


class WarmedUpBeta(Objective):
    """An objective with ``beta`` reached linearly over ``kl_warmup_epochs`` (``schedule`` gives it per step)."""

    def __init__(self, beta: float, kl_warmup_epochs: float, who: str) -> None:
        super().__init__()
        self.beta = check_nonnegative(beta, "beta", who)
        self.kl_warmup_epochs = check_nonnegative(kl_warmup_epochs, "kl_warmup_epochs", who)
        self.warmup_steps = 0

    def setup(self, *, steps_per_epoch: int, dataset_size: int) -> None:
        self.warmup_steps = round(self.kl_warmup_epochs * steps_per_epoch)

    def schedule(self, step: int) -> dict[str, float]:
        return {"beta": warmup(step, self.beta, self.warmup_steps)}
