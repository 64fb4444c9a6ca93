"""The ``objective`` contract: what training minimises, and what it reports."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class Objective(nn.Module):
    """Turns a model and a batch into the loss to minimise and named per-example metrics.

    Built with its config parameters (``objective: {name: ..., **params}``). The trainer calls

    * ``setup(steps_per_epoch=..., dataset_size=...)`` once before training (schedules given
      in epochs become steps; estimators that need N learn it);
    * ``schedule(step)`` before every step: values that change with the step (the KL weight
      under warm-up), passed to ``forward`` as keyword arguments and logged; under
      ``train.compile`` they arrive as 0-d tensors, so they must only enter tensor arithmetic;
    * ``forward(model, x, **schedule) -> (loss, metrics)``: ``loss`` a scalar to minimise,
      ``metrics`` per-example tensors of shape ``(B,)`` in nats (the same names every step).
      The trainer averages and logs every metric; it knows none of their names.

    ``check(model)`` raises ``vaezoo.errors.ConfigError`` (one line: what the objective needs
    and what the model lacks) for a model it cannot train; ``build_objective`` calls it.
    """

    def setup(self, *, steps_per_epoch: int, dataset_size: int) -> None:
        """Called once by the trainer before the first step. Default: nothing to do."""

    def schedule(self, step: int) -> dict[str, float]:
        """The step-dependent values for ``forward``. Default: none."""
        return {}

    def check(self, model: nn.Module) -> None:
        """Refuse a model this objective cannot train. Default: every model."""

    def forward(self, model: nn.Module, x: Tensor, **schedule: Any) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError


def warmup(step: int, value: float, warmup_steps: int) -> float:
    """``value`` reached linearly over ``warmup_steps`` steps (KL warm-up): ``value * (step + 1) / warmup_steps``."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return value
    return value * (step + 1) / warmup_steps
