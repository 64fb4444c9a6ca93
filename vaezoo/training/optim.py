"""Optimizer, learning-rate and KL (beta) schedules, and EMA weights.

Schedules are pure functions of the global step, so resuming needs only the step count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def build_optimizer(params: Iterable[nn.Parameter], train_cfg) -> torch.optim.Optimizer:
    """Adam or AdamW with the fused kernel when this torch/device supports it, else foreach.

    The fused kernel also lets the trainer skip an update without a host sync (``found_inf``).
    """
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[train_cfg.optimizer]
    params = [p for p in params if p.requires_grad]
    kwargs = dict(
        lr=float(train_cfg.lr),
        betas=tuple(float(b) for b in train_cfg.betas),
        eps=float(train_cfg.eps),
        weight_decay=float(train_cfg.weight_decay),
    )
    if params and all(p.is_floating_point() for p in params):
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return cls(params, foreach=True, **kwargs)


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    return all(bool(g.get("fused")) for g in optimizer.param_groups)


def lr_at(step: int, *, lr: float, total_steps: int, warmup_steps: int, schedule: str, min_lr: float) -> float:
    """Learning rate for ``step`` (0-based): linear warm-up, then constant, cosine or linear decay to ``min_lr``."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    floor = min(min_lr, lr)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine":
        return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return floor + (lr - floor) * (1.0 - progress)  # linear


def beta_at(step: int, *, beta: float, warmup_steps: int) -> float:
    """KL weight for ``step``: rises linearly from ~0 to ``beta`` over ``warmup_steps`` (KL warm-up)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return beta
    return beta * (step + 1) / warmup_steps


class EMA:
    """Exponential moving average of a model's floating-point parameters.

    ``decay_at(n) = min(decay, (1 + n) / (10 + n))``, so early averages are not dominated
    by the random initialisation. ``state`` maps parameter names to the averaged tensors.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.names = [n for n, p in model.named_parameters() if p.is_floating_point()]
        live = dict(model.named_parameters())
        self.state = {n: live[n].detach().clone() for n in self.names}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        live = dict(model.named_parameters())
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_([self.state[n] for n in self.names], [live[n].detach() for n in self.names], 1.0 - d)
        self.updates += 1

    @torch.no_grad()
    def swap(self, model: nn.Module) -> None:
        """Exchange the model's parameters and the averages (call twice to undo)."""
        live = dict(model.named_parameters())
        for n in self.names:
            tmp = live[n].detach().clone()
            live[n].copy_(self.state[n])
            self.state[n].copy_(tmp)
