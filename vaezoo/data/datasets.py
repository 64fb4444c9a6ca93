"""The split containers ``load_data`` returns: ``InMemoryDataset``, ``StreamingDataset``, ``Splits``.

Both datasets carry what ``BatchIterator`` must still do to every batch: ``binarize``
(``"dynamic"``: a fresh Bernoulli draw per batch, else ``"none"``) and ``dequantize_bits``
(uniform dequantization per batch, or ``None``). Everything else is already applied.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import preprocess


class InMemoryDataset(Dataset):
    """A split held as tensors: ``x`` float32 ``(N, *data_shape)`` in [0, 1], ``y`` int64 ``(N,)`` or None.

    ``dataset[i]`` is ``x[i]`` when there are no labels, else ``(x[i], y[i])``; ``BatchIterator``
    batches by indexing ``x`` directly. ``ids[i]`` is the example's index in its source (the
    source's training pool, or its own test set), so splits can be traced and compared.
    """

    in_memory = True

    def __init__(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        split: str = "train",
        binarize: str = "none",
        dequantize_bits: int | None = None,
        classes: Sequence[str] | None = None,
        ids: Tensor | None = None,
    ) -> None:
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        self.x = x
        self.y = y
        self.ids = ids if ids is not None else torch.arange(len(x))
        self.split = split
        self.binarize = binarize
        self.dequantize_bits = dequantize_bits
        self.classes = list(classes) if classes is not None else None

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> Tensor | tuple[Tensor, Tensor]:
        return self.x[i] if self.y is None else (self.x[i], self.y[i])

    def to(self, device: torch.device | str) -> InMemoryDataset:
        """The same split with its tensors on ``device`` (batches are then indexed there)."""
        return InMemoryDataset(
            self.x.to(device),
            None if self.y is None else self.y.to(device),
            split=self.split,
            binarize=self.binarize,
            dequantize_bits=self.dequantize_bits,
            classes=self.classes,
            ids=self.ids,
        )

    def __repr__(self) -> str:
        return f"InMemoryDataset(split={self.split!r}, n={len(self)}, data_shape={self.data_shape})"


@dataclass(frozen=True)
class ItemPipeline:
    """Per-example steps of a ``StreamingDataset`` (deterministic: seeded by the example's id)."""

    mode: str  # PIL mode: "L" or "RGB"
    image_size: int | None
    quantize_bits: int | None = None
    binarize_seed: tuple[Any, ...] | None = None  # (seed, *tags): fixed Bernoulli draw per example
    dequantize: tuple[Any, ...] | None = None  # (bits, seed, *tags): fixed dequantization per example
    flatten: bool = False


class StreamingDataset(Dataset):
    """A split of image files read on demand (for folders too large to hold as tensors).

    ``dataset[i]`` loads file ``i`` and returns ``x`` (float32, ``data_shape``) or ``(x, y)``.
    ``ids[i]`` is the example's index in its source (as for ``InMemoryDataset``); with the
    split's name it seeds the example's fixed random steps.
    """

    in_memory = False

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        y: Tensor | None,
        ids: Sequence[int],
        pipeline: ItemPipeline,
        data_shape: tuple[int, ...],
        *,
        split: str = "train",
        binarize: str = "none",
        dequantize_bits: int | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.files = [os.fspath(f) for f in files]
        self.y = y
        self.ids = [int(i) for i in ids]
        self.pipeline = pipeline
        self.data_shape = tuple(data_shape)
        self.split = split
        self.binarize = binarize
        self.dequantize_bits = dequantize_bits
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor | tuple[Tensor, Tensor]:
        from .files import load_image

        p = self.pipeline
        arr = load_image(self.files[i], p.mode, p.image_size)
        x = torch.from_numpy(arr).float().div_(255.0)
        if p.quantize_bits is not None:
            x = preprocess.quantize(x, p.quantize_bits)
        if p.binarize_seed is not None:
            x = preprocess.binarize(x, preprocess.generator(*p.binarize_seed, self.ids[i]))
        if p.dequantize is not None:
            bits, *seed = p.dequantize
            x = preprocess.dequantize(x, bits, preprocess.generator(*seed, self.ids[i]))
        if p.flatten:
            x = x.reshape(-1)
        return x if self.y is None else (x, self.y[i])

    def __repr__(self) -> str:
        return f"StreamingDataset(split={self.split!r}, n={len(self)}, data_shape={self.data_shape})"


SplitDataset = Union[InMemoryDataset, StreamingDataset]


@dataclass
class Splits:
    """What ``load_data`` returns: three splits and what the model needs to know about them.

    ``num_bins`` is the number of values per dimension when the data lie on a grid the
    likelihood models (``2**bits`` for a discretized likelihood, 2 for binarized data), else
    None. ``dequantized_bins`` is ``2**bits`` when the data were uniformly dequantized (the
    density then converts to bits/dim on that grid), else None.
    """

    train: SplitDataset
    val: SplitDataset
    test: SplitDataset
    data_shape: tuple[int, ...]
    num_bins: Optional[int]
    description: str
    dequantized_bins: Optional[int] = None
    classes: Optional[list[str]] = field(default=None)
