"""The Bernoulli log-probability, faster than its torch composition and as exact.

torch's CPU ``log1p`` (and so ``softplus``, ``logsigmoid`` and
``binary_cross_entropy_with_logits``) runs about ten times slower than ``exp`` or ``log`` on
x86 builds, in eager mode and in ``torch.compile``'s generated code alike. ``log1p`` below
computes the same function from ``log`` with Goldberg's correction, and the Bernoulli
log-probability carries its own exact gradient (the correction's derivative would not be
accurate), so that backward needs one ``sigmoid``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def log1p(u: Tensor) -> Tensor:
    """``log(1 + u)`` for ``u > -1``, within a few ulps, without calling torch's ``log1p``.

    Goldberg (1991), "What every computer scientist should know about floating-point
    arithmetic", Theorem 4: with ``w = fl(1 + u)``, ``log(w) * u / (w - 1)`` is accurate to a
    few ulps, and ``u`` itself when ``w == 1``. For forward computations: the gradient of this
    expression is not accurate; use it inside functions that define their own backward.
    """
    return _log1p_into(torch.empty_like(u), u)


def _log1p_into(out: Tensor, u: Tensor) -> Tensor:
    """``log1p(u)`` written into ``out`` (which may be ``u`` itself), with few temporaries:
    in eager mode every fresh temporary of this size costs page faults."""
    w = u + 1
    d = w - 1
    exact = d == 0
    d.masked_fill_(exact, 1.0)
    w.log_().mul_(u).div_(d)
    return torch.where(exact, u, w, out=out)


class _BernoulliLogProb(torch.autograd.Function):
    """``x l - max(l, 0) - log(1 + e^-|l|)`` (= ``x log σ(l) + (1 - x) log σ(-l)``) elementwise,
    with gradients ``x - σ(l)`` for ``l`` and ``l`` for ``x``: exact in both tails and at ``l = 0``."""

    @staticmethod
    def forward(logits: Tensor, x: Tensor) -> Tensor:
        # -(max(l, 0) - x l + log1p(e^-|l|)), in place where possible (see _log1p_into)
        u = logits.abs().neg_().exp_()
        lp = logits.clamp(min=0).addcmul_(x, logits, value=-1)
        return lp.add_(_log1p_into(u, u)).neg_()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        logits, x = ctx.saved_tensors
        grad_logits = grad * (x - torch.sigmoid(logits)) if ctx.needs_input_grad[0] else None
        grad_x = grad * logits if ctx.needs_input_grad[1] else None
        return grad_logits, grad_x


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """Elementwise ``log p(x | logits)`` of a Bernoulli (``x`` in ``[0, 1]`` gives the cross-entropy);
    ``logits`` and ``x`` of the same shape and dtype."""
    return _BernoulliLogProb.apply(logits, x)
