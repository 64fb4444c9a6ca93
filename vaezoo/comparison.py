"""Paired comparison: several models' importance-sampled NLL on the same examples.

The standard error of one model's mean NLL (``nll_se``) is mostly the spread between
examples -- some images cost every model more nats -- so two models whose intervals overlap
may still differ reliably. ``compare`` measures every model on the same examples with the
same seed (``vaezoo.measurement.measure``) and reports, for each model after the first, the
mean per-example difference to the first and the standard error of those differences.

``vaezoo compare A B ...`` on the command line: ``load_models_and_data`` finds each model's
data (as ``vaezoo eval`` does) and refuses models measured on different examples or in
different units (a density is never ranked against a probability mass; -log p(x|y) of a
conditional model never against -log p(x)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError


def compare(models: Sequence[tuple[str, Any]], x: Tensor, *, num_samples: int = 1000, seed: int = 0,
            batch_size: int = 256, num_bins: int = 256, y: Tensor | None = None) -> dict[str, Any]:
    """Measure each ``(label, model)`` on ``x`` (labels ``y`` for conditional models).

    Returns ``{"num_examples", "num_samples", "seed", "reference", "models": [...]}``; each
    model's row has ``name``, ``neg_elbo``, ``nll``, ``nll_se`` and, after the first,
    ``difference`` (mean of its per-example NLL minus the first model's) and
    ``difference_se`` (their standard deviation / sqrt(N); None for one example).
    """
    if len(models) < 2:
        raise ConfigError(f"compare: give at least two models, got {len(models)}")
    from .measurement import measure

    rows: list[dict[str, Any]] = []
    base: Tensor | None = None
    for name, model in models:
        wants_y = getattr(model, "condition", None) is not None
        m = measure(model, x, num_samples=num_samples, seed=seed, batch_size=batch_size, num_bins=num_bins,
                    y=y if wants_y else None)
        values = m["nll_per_example"]
        row = {"name": name, "neg_elbo": m["neg_elbo"], "nll": m["nll"], "nll_se": m["nll_se"]}
        if base is None:
            base = values
        else:
            d = values - base
            row["difference"] = float(d.mean())
            row["difference_se"] = float(d.std() / math.sqrt(len(d))) if len(d) > 1 else None
        rows.append(row)
    return {"num_examples": len(x), "num_samples": int(num_samples), "seed": int(seed), "reference": rows[0]["name"],
            "models": rows}


def load_models_and_data(paths: Sequence[str], *, split: str = "test", limit: int | None = None,
                         device: str = "cpu") -> tuple[list[tuple[str, Any]], Tensor, Tensor | None, int, str]:
    """``(models, x, y, num_bins, unit)`` for run folders, model folders or zoo names ``paths``.

    Each model's own data (``vaezoo.evaluation.run_data_config``) must give the very same
    examples as the first's, and all likelihoods must be masses or all densities; otherwise
    a ``ConfigError`` in one line says which model differs.
    """
    from .evaluation import dataset_tensors, load_model, load_split, num_bins_for, run_data_config

    if len(paths) < 2:
        raise ConfigError(f"compare: give at least two models, got {len(paths)}")
    if len(set(paths)) < len(paths):
        twice = next(p for p in paths if list(paths).count(p) > 1)
        raise ConfigError(f"compare: {twice} is given twice; each model once")
    models: list[tuple[str, Any]] = []
    first: tuple[str, Tensor, Tensor | None, bool, str, bool] | None = None
    num_bins = 256
    for path in paths:
        model = load_model(path, device=device)
        data = run_data_config(path)
        splits, dataset = load_split(data, model, split)
        x, y = dataset_tensors(dataset)
        if limit is not None:
            x, y = x[:limit], (None if y is None else y[:limit])
        discrete = bool(getattr(model.likelihood, "discrete", False))
        conditional = getattr(model, "condition", None) is not None
        what = f"{data.get('name')} ({split}, {len(x)} examples)"
        if first is None:
            first = (path, x, y, discrete, what, conditional)
            num_bins = num_bins_for(splits)
        else:
            ref, x0, y0, discrete0, what0, conditional0 = first
            if conditional != conditional0:
                who, other = (path, ref) if conditional else (ref, path)
                raise ConfigError(f"compare: {who} is conditional (its NLL is -log p(x|y)) but {other} is not "
                                  f"(-log p(x)); compare conditional models with each other")
            if discrete != discrete0:
                kinds = {True: "a probability mass", False: "a density"}
                raise ConfigError(f"compare: {path} measures {kinds[discrete]} but {ref} {kinds[discrete0]}; "
                                  f"a density is never ranked against a mass")
            same = x.shape == x0.shape and torch.equal(x, x0) and (y is None or y0 is None or torch.equal(y, y0))
            if not same:
                raise ConfigError(f"compare: {path} is measured on other examples ({what}) than {ref} ({what0}); "
                                  f"compare models of the same data and preprocessing")
        models.append((path, model))
    assert first is not None
    _, x, y, discrete, what, _ = first
    unit = f"nats, {'mass' if discrete else 'density'}; {what}"
    return models, x, y, num_bins, unit


def format_table(result: dict[str, Any], unit: str) -> str:
    """The comparison as an aligned text table, one line per model, then the protocol."""
    width = max(len(r["name"]) for r in result["models"])
    ref = result["reference"]
    lines = [f"{'model':<{width}}  {'-ELBO':>9}  {'NLL ± se':>17}  paired difference to {ref}"]
    for r in result["models"]:
        se = f" ± {r['nll_se']:.2f}" if r["nll_se"] is not None else ""
        if "difference" in r:
            dse = f" ± {r['difference_se']:.3f}" if r["difference_se"] is not None else ""
            diff = f"{r['difference']:+.3f}{dse}"
        else:
            diff = "(reference)"
        lines.append(f"{r['name']:<{width}}  {r['neg_elbo']:>9.3f}  {r['nll']:>9.3f}{se:<8}  {diff}")
    lines.append(f"K={result['num_samples']} importance samples, seed {result['seed']}, "
                 f"the same {result['num_examples']} examples for every model ({unit})")
    return "\n".join(lines)
