"""Optimizer, learning-rate and KL (beta) schedules, and EMA weights.

Schedules are pure functions of the global step, so resuming needs only the step count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn


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


class FusedStep:
    """``optimizer.step()`` for a fused Adam/AdamW, with less Python per step.

    ``torch.optim.Adam.step`` spends about half a millisecond per call in Python (hooks,
    gathering parameters and state, grouping by device and dtype) before it runs one fused
    kernel. For the common case -- every parameter has a gradient and its state, one device
    and dtype, no amsgrad -- this calls the same kernel with the same arguments on the
    optimizer's own state tensors (step counts incremented first, and decremented again for
    a skipped update, exactly as torch does), so the update and ``state_dict`` are the same
    bit for bit. Anything else (the first step, which creates the state) goes through
    ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.adamw = isinstance(optimizer, torch.optim.AdamW)
        self.kernel = getattr(torch, "_fused_adamw_" if self.adamw else "_fused_adam_", None)
        self.plain = self.kernel is not None and type(optimizer) in (torch.optim.Adam, torch.optim.AdamW)

    def _lists(self) -> list[tuple[dict, list, list, list, list, list]] | None:
        """Per group: the group, params, grads, exp_avgs, exp_avg_sqs, steps; None when this
        step must go through ``optimizer.step()``. Rebuilt every step (the state tensors are
        new after ``load_state_dict``)."""
        opt, out = self.optimizer, []
        for group in opt.param_groups:
            if (
                not group.get("fused")
                or group.get("amsgrad")
                or group.get("maximize")
                or group.get("differentiable")
                or isinstance(group["lr"], Tensor)
                or bool(group.get("decoupled_weight_decay", self.adamw)) != self.adamw
            ):
                return None
            params = group["params"]
            if not params:
                continue
            grads, exp_avgs, exp_avg_sqs, steps = [], [], [], []
            device, dtype = params[0].device, params[0].dtype
            if device.type not in ("cpu", "cuda"):
                return None
            for p in params:
                state = opt.state.get(p)
                if p.grad is None or not state or p.device != device or p.dtype != dtype:
                    return None
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            out.append((group, params, grads, exp_avgs, exp_avg_sqs, steps))
        return out

    def __call__(self, found_inf: Tensor | None = None) -> None:
        """One update; ``found_inf`` (a float32 tensor, 1.0 = skip) skips it on the device."""
        lists = self._lists() if self.plain else None
        if lists is None:
            self.optimizer.found_inf = found_inf
            self.optimizer.step()
            return
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in lists:
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            self.kernel(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=float(beta1),
                beta2=float(beta2),
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=found_inf,
            )
            if found_inf is not None:
                torch._foreach_sub_(steps, [found_inf] * len(steps))


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
