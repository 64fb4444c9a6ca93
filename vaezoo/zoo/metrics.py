"""How zoo entries are measured, and how a recorded ``check`` is reproduced.

One function measures: ``measure(model, x, num_samples=K, seed=s, batch_size=b)``. For each
batch in order it draws one ELBO sample, then the K-sample importance-weighted estimate of
log p(x) (``VAE.log_likelihood``), all under ``torch.manual_seed(seed)`` (the caller's RNG
state is restored). Same model, data, seed, batch size -> the same numbers up to float
rounding, which is what lets a test reproduce ``meta.check``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

#: A reproduced check value v matches the recorded r when |v - r| <= CHECK_ATOL + CHECK_RTOL * |r| (nats).
CHECK_ATOL = 0.01
CHECK_RTOL = 1e-4


@torch.no_grad()
def measure(model: Any, x: Tensor, *, num_samples: int, seed: int = 0, batch_size: int = 256,
            num_bins: int = 256) -> dict[str, float | int]:
    """Mean ``neg_elbo`` and ``nll`` (nats per example) and ``bits_per_dim`` of ``model`` on ``x``.

    ``bits_per_dim`` = (nll + D log num_bins [continuous likelihoods only]) / (D ln 2), the
    ``VAE.bits_per_dim`` convention. The model is evaluated in eval mode on its own device.
    """
    if len(x) == 0:
        raise ValueError("measure: no examples")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    neg_elbo = nll = 0.0
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(int(seed))
            for start in range(0, len(x), int(batch_size)):
                xb = x[start : start + int(batch_size)].to(device)
                neg_elbo -= float(model.elbo(xb)["elbo"].double().sum())
                nll -= float(model.log_likelihood(xb, int(num_samples)).double().sum())
    finally:
        model.train(was_training)
    n = len(x)
    d = math.prod(model.data_shape)
    correction = 0.0 if getattr(model.likelihood, "discrete", False) else d * math.log(num_bins)
    return {
        "neg_elbo": neg_elbo / n,
        "nll": nll / n,
        "bits_per_dim": (nll / n + correction) / (d * math.log(2.0)),
        "num_examples": n,
        "num_samples": int(num_samples),
    }


def num_bins_of(splits: Any) -> int:
    """Bins per dimension for bits/dim: the dequantization grid, else the data's grid, else 256."""
    return int(getattr(splits, "dequantized_bins", None) or getattr(splits, "num_bins", None) or 256)


def split_tensor(dataset: Any, first: int | None = None) -> Tensor:
    """The first ``first`` examples (all when None) of a split as one float tensor."""
    n = len(dataset) if first is None else min(int(first), len(dataset))
    x = getattr(dataset, "x", None)
    if isinstance(x, Tensor):
        return x[:n]
    items = [dataset[i] for i in range(n)]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


def reproduce_check(model: Any, check: dict[str, Any], data_config: dict[str, Any]) -> dict[str, float | int]:
    """Measure ``model`` as ``check`` says (split, first, num_samples, seed, batch_size) on ``data_config``."""
    from ..data import load_data

    splits = load_data(data_config, likelihood=model.likelihood)
    x = split_tensor(getattr(splits, check["split"]), check["first"])
    return measure(model, x, num_samples=check["num_samples"], seed=check["seed"],
                   batch_size=check["batch_size"], num_bins=num_bins_of(splits))


def check_mismatches(check: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Human-readable differences beyond the tolerance (empty: the check is reproduced)."""
    out = []
    for key in ("neg_elbo", "nll"):
        want, got = float(check[key]), float(measured[key])
        if abs(got - want) > CHECK_ATOL + CHECK_RTOL * abs(want):
            out.append(f"{key}: recorded {want:.4f}, measured {got:.4f} (tolerance {CHECK_ATOL} + {CHECK_RTOL:g}*|x| nats)")
    if int(measured["num_examples"]) != int(check["first"]):
        out.append(f"num_examples: the check uses the first {check['first']} examples of the {check['split']} split, "
                   f"but only {measured['num_examples']} were measured")
    return out
