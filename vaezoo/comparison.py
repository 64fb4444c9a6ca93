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
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError, VaezooError


def compare(models: Sequence[tuple[str, Any]], x: Tensor, *, num_samples: int = 1000, seed: int = 0,
            batch_size: int = 256, num_bins: int = 256, y: Tensor | None = None,
            progress: bool | None = False) -> dict[str, Any]:
    """Measure each ``(label, model)`` on ``x`` (labels ``y`` for conditional models);
    ``progress``: a progress bar per model on stderr (True always, None on a terminal, False never).

    Returns ``{"num_examples", "num_samples", "seed", "reference", "models": [...]}``; each
    model's row has ``name``, ``neg_elbo``, ``nll``, ``nll_se`` and, after the first,
    ``difference`` (mean of its per-example NLL minus the first model's) and
    ``difference_se`` (their standard deviation / sqrt(N); None for one example).
    """
    if len(models) < 2:
        raise ConfigError(f"compare: give at least two models, got {len(models)}")
    from .evaluation import measure_with_progress

    rows: list[dict[str, Any]] = []
    base: Tensor | None = None
    for name, model in models:  # measure ignores y for an unconditional model
        m = measure_with_progress(model, x, progress=progress, desc=f"{name} (K={num_samples})", num_samples=num_samples,
                                  seed=seed, batch_size=batch_size, num_bins=num_bins, y=y)
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
                         device: str = "cpu", data: str | None = None, data_root: str | None = None,
                         binarize: str | None = None
                         ) -> tuple[list[tuple[str, Any]], Tensor, Tensor | None, int, str]:
    """``(models, x, y, num_bins, unit)`` for run folders, model folders or zoo names ``paths``.

    Each model's own data (``vaezoo.evaluation.run_data_config``, with ``data`` (another
    dataset), ``data_root`` and ``binarize`` overriding it for every model, as ``vaezoo eval``
    does) must give the very same examples as the first's, all
    likelihoods must be masses or all densities, and all models conditional or none;
    otherwise a ``ConfigError`` in one line says which model differs and how.
    """
    from .evaluation import dataset_tensors, load_model, load_split, num_bins_for, run_data_config, with_overrides

    if len(paths) < 2:
        raise ConfigError(f"compare: give at least two models, got {len(paths)}")
    seen: dict[str, str] = {}
    for path in paths:
        key = _identity(path)
        if key in seen:
            raise ConfigError(f"compare: {path} is given twice ({seen[key]}); each model once")
        seen[key] = path
    models: list[tuple[str, Any]] = []
    first: dict[str, Any] | None = None
    num_bins = 256
    for path in paths:
        model = load_model(path, device=device)
        section = with_overrides(run_data_config(path, required=data is None), name=data, root=data_root,
                                 binarize=binarize)
        splits, dataset = load_split(section, model, split, where=f"compare: {path}")
        x, y = dataset_tensors(dataset)
        if limit is not None:
            x, y = x[:limit], (None if y is None else y[:limit])
        this = {"path": path, "x": x, "y": y, "discrete": bool(getattr(model.likelihood, "discrete", False)),
                "conditional": getattr(model, "condition", None) is not None, "data": section}
        if first is None:
            first = this
            num_bins = num_bins_for(splits)
        else:
            _check_comparable(first, this, split)
        models.append((path, model))
    assert first is not None
    n = len(first["x"])
    unit = (f"nats, {'mass' if first['discrete'] else 'density'}; {first['data'].get('name')}, {split} split, "
            f"{n} example{'s' if n != 1 else ''}")
    return models, first["x"], first["y"], num_bins, unit


def _check_comparable(ref: dict[str, Any], this: dict[str, Any], split: str) -> None:
    """``ConfigError`` naming how ``this`` model's measurement differs from the reference's."""
    a, b = ref["path"], this["path"]
    if this["conditional"] != ref["conditional"]:
        who, other = (b, a) if this["conditional"] else (a, b)
        raise ConfigError(f"compare: {who} is conditional (its NLL is -log p(x|y)) but {other} is not "
                          f"(-log p(x)); compare conditional models with each other")
    if this["discrete"] != ref["discrete"]:
        kinds = {True: "a probability mass", False: "a density"}
        raise ConfigError(f"compare: {b} measures {kinds[this['discrete']]} but {a} {kinds[ref['discrete']]}; "
                          f"a density is never ranked against a mass")
    x0, x = ref["x"], this["x"]
    if x.shape != x0.shape:
        raise ConfigError(f"compare: {b} is measured on {len(x)} {split} examples of shape {tuple(x.shape[1:])} "
                          f"({this['data'].get('name')}), {a} on {len(x0)} of shape {tuple(x0.shape[1:])} "
                          f"({ref['data'].get('name')}); compare models of the same data")
    y0, y = ref["y"], this["y"]
    if not torch.equal(x, x0) or (y is not None and y0 is not None and not torch.equal(y, y0)):
        keys = ("name", "binarize", "dequantize", "bits", "val_fraction", "seed", "image_size", "grayscale")
        d0, d1 = _settings(ref["data"]), _settings(this["data"])
        differ = [f"data.{k}: {d0.get(k)!r} vs {d1.get(k)!r}" for k in keys if d0.get(k) != d1.get(k)]
        how = "; data settings differ (" + ", ".join(differ) + ")" if differ else ""
        raise ConfigError(f"compare: {b} is measured on other {split} examples than {a} (the same shape and count, "
                          f"other values{how}); compare models of the same data and preprocessing")


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    """A data section with vaezoo's defaults filled in (as recorded, when it cannot be read)."""
    import dataclasses

    from .data import as_config

    try:
        return dataclasses.asdict(as_config(data))
    except (ConfigError, TypeError, ValueError):  # only for the message: load_split accepted the section
        return dict(data)


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
    lines.append(f"K={result['num_samples']} importance samples, seed {result['seed']}, the same examples for every "
                 f"model ({unit})")
    return "\n".join(lines)


def _identity(path: str) -> str:
    """What ``path`` names, for refusing a model given twice: a run and its ``model/`` folder are one model."""
    if not Path(path).is_dir():
        return path  # a zoo name or Hub name (a missing folder is reported when it is loaded)
    from .loading import locate

    try:
        model_dir, _ = locate(path)
    except VaezooError:
        return str(Path(path).resolve())
    return str(model_dir.resolve())
