"""The one measurement: ELBO, importance-sampled NLL and bits/dim of a model on data.

``measure(model, x, num_samples=K, seed=s, batch_size=b)``: for each batch in order one ELBO
sample, then the K-sample importance-weighted estimate of log p(x) (``Model.log_likelihood``,
Burda et al. 2016), all under ``torch.manual_seed(seed)`` with the caller's RNG state kept and
the model in eval mode on its own device. ``nll_se`` is the standard error of the mean NLL over
the examples: the sample standard deviation of the per-example estimates / sqrt(N) (None for
one example); ``nll_per_example`` holds the per-example estimates themselves (float64, for a
paired comparison: ``vaezoo.comparison``). Same model, data, seed and batch size give the
same numbers with the same vaezoo (an architecture's chunking of the K samples decides which
random numbers go where), which is what lets ``vaezoo eval`` and the zoo's tests reproduce a
recorded check. ``vaezoo eval``, ``vaezoo compare``, the end of training and the zoo all measure here.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def bits_per_dim(nll: float | Tensor, data_shape: tuple[int, ...], *, discrete: bool, num_bins: int = 256) -> Any:
    """-log p(x) / (D ln 2). For a density (``discrete=False``) of data scaled to [0, 1], D log
    ``num_bins`` nats are added first: the density turned into the probability of the
    quantisation bins (an upper bound on the bits of those bins under uniform dequantization)."""
    d = math.prod(data_shape)
    return (nll + (0.0 if discrete else d * math.log(num_bins))) / (d * math.log(2.0))


def num_bins_of(splits: Any) -> int:
    """Bins per dimension for bits/dim: the dequantization grid, else the data's grid, else 256."""
    return int(getattr(splits, "dequantized_bins", None) or getattr(splits, "num_bins", None) or 256)


def condition_of(model: Any, y: Tensor | None, n: int) -> Tensor | None:
    """The ``y`` a model takes: the labels for a conditional model (a ``DataError`` without them), else None."""
    condition = getattr(model, "condition", None)
    if condition is None:
        return None
    from .errors import DataError

    if y is None:
        raise DataError(f"this model is conditional ({condition.describe()}), but the data have no labels or covariates")
    if len(y) != n:
        raise DataError(f"y: {len(y)} labels for {n} examples")
    return y


@torch.no_grad()
def measure(model: Any, x: Tensor, *, num_samples: int, seed: int = 0, batch_size: int = 256,
            num_bins: int = 256, y: Tensor | None = None) -> dict[str, Any]:
    """Mean ``neg_elbo`` and ``nll`` (nats per example), ``nll_se`` and ``bits_per_dim`` of ``model`` on ``x``.

    A conditional model (``model.condition``) needs the labels or covariates ``y`` of ``x``; its
    numbers are then of log p(x|y). An unconditional model ignores ``y``.
    """
    if len(x) == 0:
        raise ValueError("measure: no examples")
    y = condition_of(model, y, len(x))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    neg_elbo = nll = 0.0
    per_example = []
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(int(seed))
            for start in range(0, len(x), int(batch_size)):
                xb = x[start : start + int(batch_size)].to(device)
                kw = {} if y is None else {"y": y[start : start + int(batch_size)].to(device)}
                neg_elbo -= float(model.elbo(xb, **kw)["elbo"].double().sum())
                log_px = model.log_likelihood(xb, int(num_samples), **kw).double()
                nll -= float(log_px.sum())
                per_example.append(log_px.cpu())
    finally:
        model.train(was_training)
    n = len(x)
    values = torch.cat(per_example)
    discrete = bool(getattr(model.likelihood, "discrete", False))
    return {
        "neg_elbo": neg_elbo / n,
        "nll": nll / n,
        "nll_se": float(values.std() / math.sqrt(n)) if n > 1 else None,
        "nll_per_example": -values,
        "bits_per_dim": bits_per_dim(nll / n, tuple(model.data_shape), discrete=discrete, num_bins=num_bins),
        "num_examples": n,
        "num_samples": int(num_samples),
    }
