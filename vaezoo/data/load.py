"""``load_data``: read a source, split it, preprocess it for the likelihood, and check it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from . import preprocess
from .config import DataConfig, as_config, follow_likelihood
from .datasets import InMemoryDataset, ItemPipeline, Splits, SplitDataset, StreamingDataset
from .loaders import BatchIterator
from .preprocess import FIXED_SEED
from .raw import RawData
from .sources import load_source

CHECK_CHUNK = 4096


def load_data(
    cfg: DataConfig | Mapping[str, Any] | None = None, likelihood: Any = None, *, raw: RawData | None = None
) -> Splits:
    """Load ``cfg.name`` as train/val/test ``Splits`` prepared for ``likelihood``.

    Steps, all seeded: test split (the source's own, else a fixed carve independent of
    ``data.seed``); ``data.limit``; validation carved from train with ``data.seed``; scaling
    to [0, 1]; quantization to the likelihood's ``bits`` grid when it has one; binarization
    (static: once; dynamic: train per batch in ``BatchIterator``, val/test once);
    dequantization (train per batch, val/test once), both following the likelihood when
    ``cfg`` leaves them unset (``for_likelihood``); flattening. Finally each split is
    checked with ``likelihood.check_data`` (``DataError`` if outside its support).

    ``raw``: the source already read by ``read_source(cfg)`` (so a caller can learn the
    data shape with ``source_shape`` and build its model before preparing the data).
    """
    cfg = as_config(cfg)
    discrete = bool(getattr(likelihood, "discrete", False))
    quant_bits = getattr(likelihood, "bits", None) if likelihood is not None else None
    lik_name = type(likelihood).__name__
    if quant_bits is not None:
        quant_bits = int(quant_bits)
        if quant_bits != cfg.bits:
            warnings.warn(
                f"data.bits={cfg.bits} but the likelihood {lik_name} discretizes to {quant_bits} bits; "
                f"quantizing the data to {quant_bits} bits",
                stacklevel=2,
            )
    if cfg.dequantize and discrete:
        raise DataError(
            f"data.dequantize: uniform dequantization is for continuous likelihoods, but {lik_name} "
            "is discrete; set data.dequantize=false"
        )

    if raw is None:
        raw = load_source(cfg)
    cfg = for_likelihood(cfg, likelihood, raw)
    n_pool = len(raw.train_files) if raw.streaming else len(raw.train_x)
    pool = np.arange(n_pool)
    test_idx = None
    if not raw.has_test:
        pool, test_idx = preprocess.split_indices(n_pool, raw.test_fraction, FIXED_SEED, cfg.name, "test")
    if cfg.limit is not None:
        pool = pool[: cfg.limit]
    keep, val_pos = preprocess.split_indices(len(pool), float(cfg.val_fraction), cfg.seed, "val")
    train_idx, val_idx = pool[keep], pool[val_pos]

    make = _streaming_split if raw.streaming else _memory_split
    dq_bits = cfg.bits if cfg.dequantize else None
    common = dict(raw=raw, cfg=cfg, quant_bits=quant_bits, dq_bits=dq_bits)
    train = make(split="train", idx=train_idx, from_test=False, **common)
    val = make(split="val", idx=val_idx, from_test=False, **common)
    test = make(split="test", idx=test_idx, from_test=True, **common)

    data_shape = tuple(train.data_shape)
    if quant_bits is not None:
        num_bins: int | None = 2**quant_bits
    elif cfg.binarize != "none":
        num_bins = 2
    else:
        num_bins = None
    splits = Splits(
        train=train,
        val=val,
        test=test,
        data_shape=data_shape,
        num_bins=num_bins,
        description=_describe(cfg, raw, splits=(train, val, test), data_shape=data_shape, quant_bits=quant_bits),
        dequantized_bins=2**cfg.bits if cfg.dequantize else None,
        classes=raw.classes,
    )
    if likelihood is not None:
        check_splits(splits, likelihood, cfg)
    return splits


def for_likelihood(cfg: DataConfig, likelihood: Any, raw: RawData) -> DataConfig:
    """``cfg`` with the ``binarize``/``dequantize`` it left unset chosen for ``likelihood`` and the
    data in ``raw`` (``DataConfig.follow_likelihood``; images and integer arrays are quantised)."""
    quantized = raw.streaming or any(
        t is not None and not torch.is_floating_point(t) for t in (raw.train_x, raw.test_x)
    )
    return follow_likelihood(cfg, likelihood, quantized=quantized)


def read_source(cfg: DataConfig | Mapping[str, Any] | None = None) -> RawData:
    """The raw examples of ``cfg.name``, before splitting and preprocessing (pass to ``load_data(raw=...)``)."""
    return load_source(as_config(cfg))


def source_shape(raw: RawData, cfg: DataConfig | Mapping[str, Any] | None = None) -> tuple[int, ...]:
    """The shape of one example once ``load_data`` has prepared ``raw`` (what ``Splits.data_shape`` will be)."""
    cfg = as_config(cfg)
    if raw.streaming:
        shape = tuple(int(s) for s in raw.image_shape)
    else:
        x = raw.train_x if raw.train_x is not None else raw.test_x
        shape = tuple(int(s) for s in x.shape[1:])
    return (int(np.prod(shape)),) if cfg.flatten else shape


def _seed_for(split: str, cfg: DataConfig) -> int:
    return FIXED_SEED if split == "test" else cfg.seed


def _memory_split(
    *, split: str, idx: np.ndarray | None, from_test: bool, raw: RawData, cfg: DataConfig,
    quant_bits: int | None, dq_bits: int | None,
) -> InMemoryDataset:
    x_src, y_src = (raw.test_x, raw.test_y) if (from_test and idx is None) else (raw.train_x, raw.train_y)
    if idx is not None:
        ids = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        x_src = x_src.index_select(0, ids)
        y_src = y_src.index_select(0, ids) if y_src is not None else None
    else:
        ids = torch.arange(len(x_src))
    x = x_src.float().div_(raw.levels) if x_src.dtype != torch.float32 or raw.levels != 1 else x_src.clone()
    if quant_bits is not None:
        x = preprocess.quantize(x, quant_bits)
    seed = _seed_for(split, cfg)
    per_batch = "none"
    if cfg.binarize == "static" or (cfg.binarize == "dynamic" and split != "train"):
        x = preprocess.binarize_chunked(x, seed, "binarize", split)
    elif cfg.binarize == "dynamic":
        per_batch = "dynamic"
    dq_per_batch = None
    if dq_bits is not None:
        if split == "train":
            dq_per_batch = dq_bits
        else:
            x = preprocess.dequantize_chunked(x, dq_bits, seed, "dequantize", split)
    if cfg.flatten:
        x = x.flatten(1)  # also for an empty split (reshape cannot infer -1 from 0 rows)
    return InMemoryDataset(
        x.contiguous(), y_src, split=split, binarize=per_batch, dequantize_bits=dq_per_batch,
        classes=raw.classes, ids=ids,
    )


def _streaming_split(
    *, split: str, idx: np.ndarray | None, from_test: bool, raw: RawData, cfg: DataConfig,
    quant_bits: int | None, dq_bits: int | None,
) -> StreamingDataset:
    if from_test and idx is None:
        files, y = raw.test_files, raw.test_y
        ids = list(range(len(files)))
    else:
        files = [raw.train_files[i] for i in idx]
        y = raw.train_y.index_select(0, torch.from_numpy(np.asarray(idx, dtype=np.int64))) if raw.train_y is not None else None
        ids = [int(i) for i in idx]
    seed = _seed_for(split, cfg)
    per_batch = "none"
    bin_seed = None
    if cfg.binarize == "static" or (cfg.binarize == "dynamic" and split != "train"):
        bin_seed = (seed, "binarize", split)
    elif cfg.binarize == "dynamic":
        per_batch = "dynamic"
    dq_fixed, dq_per_batch = None, None
    if dq_bits is not None:
        if split == "train":
            dq_per_batch = dq_bits
        else:
            dq_fixed = (dq_bits, seed, "dequantize", split)
    pipeline = ItemPipeline(
        mode=raw.image_mode, image_size=cfg.image_size, quantize_bits=quant_bits,
        binarize_seed=bin_seed, dequantize=dq_fixed, flatten=cfg.flatten,
    )
    shape = (int(np.prod(raw.image_shape)),) if cfg.flatten else tuple(raw.image_shape)
    return StreamingDataset(
        files, y, ids, pipeline, shape, split=split, binarize=per_batch,
        dequantize_bits=dq_per_batch, classes=raw.classes,
    )


def check_splits(splits: Splits, likelihood: Any, cfg: DataConfig | None = None) -> None:
    """Run ``likelihood.check_data`` on the data as the model will see them: every fixed
    in-memory split in full, and one prepared batch of a split changed per batch or streamed."""
    check = getattr(likelihood, "check_data", None)
    if check is None:
        return
    name = cfg.name if cfg is not None else "data"
    for split in ("train", "val", "test"):
        ds: SplitDataset = getattr(splits, split)
        if len(ds) == 0:
            continue
        per_batch = getattr(ds, "binarize", "none") == "dynamic" or getattr(ds, "dequantize_bits", None) is not None
        if isinstance(ds, InMemoryDataset) and not per_batch:
            chunks = [ds.x[i : i + CHECK_CHUNK] for i in range(0, len(ds), CHECK_CHUNK)]
        else:
            it = BatchIterator(ds, 256, shuffle=False, seed=cfg.seed if cfg is not None else 0)
            chunks = [next(iter(it))[0]]
        for chunk in chunks:
            try:
                check(chunk)
            except DataError as exc:
                hint = ""
                if (
                    cfg is not None
                    and cfg.binarize == "none"
                    and type(likelihood).__name__ == "Bernoulli"
                    and "data.binarize" not in str(exc)
                ):
                    hint = " (set data.binarize=dynamic or static to binarize the data)"
                raise DataError(f"data.name={name!r}, {split} split: {exc}{hint}") from exc


def _describe(
    cfg: DataConfig, raw: RawData, *, splits: tuple[SplitDataset, ...], data_shape: tuple[int, ...],
    quant_bits: int | None,
) -> str:
    train, val, test = splits
    steps = []
    if quant_bits is not None:
        steps.append(f"quantized to {quant_bits} bits")
    if cfg.binarize == "static":
        steps.append(f"static binarization (seed {cfg.seed}; test seed {FIXED_SEED})")
    elif cfg.binarize == "dynamic":
        steps.append("dynamic binarization (val/test fixed)")
    if cfg.dequantize:
        steps.append(f"uniform dequantization to {cfg.bits} bits")
    if cfg.limit is not None:
        steps.append(f"limit {cfg.limit}")
    if raw.streaming:
        steps.append("streamed")
    test_note = "" if raw.has_test else f" (fixed {raw.test_fraction:.0%} split)"
    prep = ", ".join(steps) if steps else "no preprocessing"
    return (
        f"{cfg.name} from {raw.origin}: train {len(train)} / val {len(val)} / test {len(test)}{test_note}, "
        f"shape {data_shape}, values in [0, 1], {prep}"
    )
