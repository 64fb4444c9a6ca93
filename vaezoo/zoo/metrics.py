"""How a zoo entry's recorded ``check`` is reproduced: ``vaezoo.measurement.measure`` on the
entry's split, with its K, seed and batch size, within a stated tolerance."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..measurement import measure, num_bins_of  # noqa: F401  (the zoo measures with these)

#: A reproduced check value v matches the recorded r when |v - r| <= CHECK_ATOL + CHECK_RTOL * |r| (nats).
CHECK_ATOL = 0.01
CHECK_RTOL = 1e-4


def split_tensor(dataset: Any, first: int | None = None) -> Tensor:
    """The first ``first`` examples (all when None) of a split as one float tensor."""
    n = len(dataset) if first is None else min(int(first), len(dataset))
    x = getattr(dataset, "x", None)
    if isinstance(x, Tensor):
        return x[:n]
    items = [dataset[i] for i in range(n)]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


def split_labels(model: Any, dataset: Any, first: int | None = None) -> Tensor | None:
    """The labels of ``split_tensor(dataset, first)`` when ``model`` is conditional (it measures log p(x|y)); else None."""
    if getattr(model, "condition", None) is None:
        return None
    from ..evaluation import dataset_tensors

    y = dataset_tensors(dataset)[1]
    return None if y is None else y[: len(dataset) if first is None else min(int(first), len(dataset))]


def reproduce_check(model: Any, check: dict[str, Any], data_config: dict[str, Any]) -> dict[str, Any]:
    """Measure ``model`` as ``check`` says (split, first, num_samples, seed, batch_size) on ``data_config``."""
    from ..data import load_data

    splits = load_data(data_config, likelihood=model.likelihood)
    split = getattr(splits, check["split"])
    x = split_tensor(split, check["first"])
    return measure(model, x, num_samples=check["num_samples"], seed=check["seed"],
                   batch_size=check["batch_size"], num_bins=num_bins_of(splits), y=split_labels(model, split, check["first"]))


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
