"""``DataConfig``: what to load and how to preprocess it (the ``data:`` block of a run)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import DataError, did_you_mean, one_of

DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "image_folder", "tensor")
BINARIZE_MODES = ("dynamic", "static", "none")
WANTS = ("binary", "bins", "continuous")
"""What a likelihood's ``wants`` may say about its data (``vaezoo.components.Likelihood``)."""


@dataclass
class DataConfig:
    """Where the data come from and how they are prepared (plain typed fields: omegaconf-friendly).

    See ``docs/data.md`` for the meaning of each field; ``load_data`` validates them.
    ``binarize`` and ``dequantize`` left None follow the likelihood (``follow_likelihood``).
    """

    name: str = "digits"
    root: Optional[str] = None
    download: bool = False
    binarize: Optional[str] = None
    dequantize: Optional[bool] = None
    bits: int = 8
    val_fraction: float = 0.1
    seed: int = 0
    image_size: Optional[int] = None
    grayscale: bool = False
    flatten: bool = False
    limit: Optional[int] = None
    in_memory: Optional[bool] = None


def as_config(cfg: DataConfig | Mapping[str, Any] | None) -> DataConfig:
    """Turn a ``DataConfig``, a dict or an omegaconf ``DictConfig`` into a validated ``DataConfig``."""
    if cfg is None:
        cfg = DataConfig()
    elif not isinstance(cfg, DataConfig):
        if not isinstance(cfg, Mapping):
            raise DataError(f"data: expected a DataConfig or a mapping, got {type(cfg).__name__}")
        try:  # an omegaconf DictConfig: resolve interpolations into plain values
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            pass
        known = [f.name for f in dataclasses.fields(DataConfig)]
        for key in cfg:
            if key not in known:
                raise DataError(
                    f"data.{key}: unknown key.{did_you_mean(str(key), known)} Available: {one_of(known)}"
                )
        cfg = DataConfig(**dict(cfg))
    validate(cfg)
    return cfg


def validate(cfg: DataConfig) -> None:
    """Raise a one-line ``DataError`` naming the key for any invalid field."""
    if cfg.name not in DATASET_NAMES:
        raise DataError(
            f"data.name: unknown dataset {cfg.name!r}.{did_you_mean(cfg.name, DATASET_NAMES)} "
            f"Available: {one_of(DATASET_NAMES)}"
        )
    if cfg.binarize is not None and cfg.binarize not in BINARIZE_MODES:
        raise DataError(
            f"data.binarize: unknown mode {cfg.binarize!r}.{did_you_mean(str(cfg.binarize), BINARIZE_MODES)} "
            f"Available: {one_of(BINARIZE_MODES)}, or null to follow the likelihood"
        )
    _check_int(cfg.bits, "bits", 1, 16)
    _check_int(cfg.seed, "seed", 0, None)
    if cfg.limit is not None:
        _check_int(cfg.limit, "limit", 1, None)
    if cfg.image_size is not None:
        _check_int(cfg.image_size, "image_size", 1, None)
    if isinstance(cfg.val_fraction, bool) or not isinstance(cfg.val_fraction, (int, float)):
        raise DataError(f"data.val_fraction: expected a number in [0, 1), got {cfg.val_fraction!r}")
    if not 0.0 <= float(cfg.val_fraction) < 1.0:
        raise DataError(f"data.val_fraction: must lie in [0, 1), got {cfg.val_fraction}")
    for key in ("download", "grayscale", "flatten"):
        if not isinstance(getattr(cfg, key), bool):
            raise DataError(f"data.{key}: expected true or false, got {getattr(cfg, key)!r}")
    if cfg.dequantize is not None and not isinstance(cfg.dequantize, bool):
        raise DataError(f"data.dequantize: expected true, false or null (follow the likelihood), got {cfg.dequantize!r}")
    if cfg.in_memory is not None and not isinstance(cfg.in_memory, bool):
        raise DataError(f"data.in_memory: expected true, false or null, got {cfg.in_memory!r}")
    if cfg.root is not None and not isinstance(cfg.root, (str, os.PathLike)):
        raise DataError(f"data.root: expected a path, got {cfg.root!r}")
    if cfg.dequantize and cfg.binarize not in ("none", None):
        raise DataError(
            f"data.dequantize: cannot dequantize binarized data (data.binarize={cfg.binarize!r}); "
            "set one of them off"
        )


def follow_likelihood(cfg: DataConfig, likelihood: Any, *, quantized: bool = True) -> DataConfig:
    """``cfg`` with ``binarize``/``dequantize`` left None chosen from ``likelihood.wants``.

    ``binary``: dynamic binarization; ``continuous``: uniform dequantization of ``quantized``
    data (8-bit images, digits); ``bins`` and no opinion (or no likelihood): neither.
    """
    wants = getattr(likelihood, "wants", None)
    binarize = cfg.binarize
    if binarize is None:
        binarize = "dynamic" if wants == "binary" and not cfg.dequantize else "none"
    dequantize = cfg.dequantize
    if dequantize is None:
        discrete = bool(getattr(likelihood, "discrete", False))
        dequantize = wants == "continuous" and not discrete and quantized and binarize == "none"
    return dataclasses.replace(cfg, binarize=binarize, dequantize=dequantize)


def preprocessing_note(cfg: DataConfig, likelihood: Any, name: str) -> str | None:
    """One line when the ``binarize`` set in ``cfg`` does not suit ``likelihood.wants``, saying what to set."""
    wants = getattr(likelihood, "wants", None)
    if cfg.binarize not in ("dynamic", "static") or wants not in ("continuous", "bins"):
        return None
    models = "a density of continuous values" if wants == "continuous" else "quantised grey levels"
    fix = "data.binarize=none data.dequantize=true" if wants == "continuous" else "data.binarize=none"
    return (
        f"data.binarize={cfg.binarize}: likelihood {name!r} models {models}, but the data will be binarized "
        f"to 0/1; set {fix}, or leave data.binarize and data.dequantize unset (null) to follow the likelihood"
    )


def _check_int(value: Any, key: str, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"data.{key}: expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise DataError(f"data.{key}: must be {bound}, got {value}")


def default_root() -> Path:
    """``$VAEZOO_HOME/data`` if ``VAEZOO_HOME`` is set, else ``~/.cache/vaezoo/data``."""
    home = os.environ.get("VAEZOO_HOME")
    if home:
        return Path(home).expanduser() / "data"
    return Path("~/.cache/vaezoo/data").expanduser()
