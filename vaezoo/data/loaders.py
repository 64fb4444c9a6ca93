"""``BatchIterator``: deterministic, shardable batches with per-batch binarization/dequantization."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from . import preprocess


class BatchIterator:
    """Batches ``(x, y)`` of a split (``y`` is None for unlabelled data).

    The order of epoch ``e`` depends only on ``(seed, e)``: call ``set_epoch(e)`` before each
    epoch (an iteration that runs to the end also advances ``epoch`` by one, so forgetting it
    does not repeat the same order). With ``world_size > 1`` every rank takes the strided
    slice ``perm[rank::world_size]`` of the same permutation, so ranks are disjoint; the
    permutation is first padded by wrapping around (or, with ``drop_last``, cut) to a multiple
    of ``world_size`` so that every rank gets the same number of batches.

    Per batch, after moving it to ``device``: ``binarize="dynamic"`` draws ``x ~ Bernoulli(x)``
    and ``dequantize`` (bits) adds uniform noise, each from a generator seeded by
    ``(seed, epoch, rank, batch)``, so a resumed run sees the same batches. ``None`` takes
    both settings from the dataset (what ``load_data`` asked for).

    In-memory datasets (with a tensor ``.x``) are batched by indexing that tensor; any other
    map-style dataset streams through a ``torch.utils.data.DataLoader`` in the same order.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int | torch.Generator = 0,
        drop_last: bool = False,
        binarize: str | None = None,
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
        *,
        dequantize: bool | int | None = None,
        pin_memory: bool | None = None,
        num_workers: int = 0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        if isinstance(seed, torch.Generator):
            seed = int(torch.randint(0, 2**62, (1,), generator=seed).item())
        if binarize is None:
            binarize = getattr(dataset, "binarize", "none")
        if binarize not in ("dynamic", "static", "none"):
            raise ValueError(f"binarize must be 'dynamic', 'static' or 'none', got {binarize!r}")
        if dequantize is None:
            dequantize = getattr(dataset, "dequantize_bits", None)
        elif dequantize is True:
            dequantize = getattr(dataset, "dequantize_bits", None) or 8
        elif dequantize is False:
            dequantize = None
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.binarize = binarize
        self.dequantize_bits: int | None = dequantize
        self.device = torch.device(device) if device is not None else None
        self.rank = rank
        self.world_size = world_size
        if pin_memory is None:
            pin_memory = self.device is not None and self.device.type == "cuda"
        self.pin_memory = bool(pin_memory)
        self.num_workers = int(num_workers)
        self.epoch = 0
        self._start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Use the order of ``epoch``; the next iteration starts at batch ``start_batch``
        (to resume mid-epoch; later iterations start at 0)."""
        self.epoch = int(epoch)
        self._start_batch = int(start_batch)

    def _per_rank(self, n: int) -> int:
        if self.drop_last:
            return n // self.world_size
        return math.ceil(n / self.world_size)

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        m = self._per_rank(len(self.dataset))
        return m // self.batch_size if self.drop_last else math.ceil(m / self.batch_size)

    def indices(self, epoch: int | None = None) -> Tensor:
        """This rank's example indices for ``epoch`` (default: the current one), in order."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = len(self.dataset)
        if self.shuffle:
            perm = torch.randperm(n, generator=preprocess.generator(self.seed, "order", epoch))
        else:
            perm = torch.arange(n)
        total = self._per_rank(n) * self.world_size
        if total > n:  # pad by wrapping around so every rank has the same count
            perm = torch.cat([perm, perm.repeat(math.ceil((total - n) / n))[: total - n]])
        order = perm[:total][self.rank :: self.world_size]
        if self.drop_last:
            order = order[: (len(order) // self.batch_size) * self.batch_size]
        return order

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        epoch, start = self.epoch, self._start_batch
        self._start_batch = 0
        order = self.indices(epoch)
        bounds = [
            (b, order[b * self.batch_size : (b + 1) * self.batch_size])
            for b in range(start, math.ceil(len(order) / self.batch_size))
        ]
        x_all = getattr(self.dataset, "x", None)
        if isinstance(x_all, Tensor):
            batches = self._indexed(x_all, bounds)
        else:
            batches = self._streamed(bounds)
        for b, (x, y) in batches:
            yield self._finish(x, y, epoch, b)
        if self.epoch == epoch:
            self.epoch = epoch + 1

    def _indexed(self, x_all: Tensor, bounds: list[tuple[int, Tensor]]) -> Iterator[tuple[int, tuple[Tensor, Tensor | None]]]:
        y_all = getattr(self.dataset, "y", None)
        for b, idx in bounds:
            idx = idx.to(x_all.device)
            x = x_all.index_select(0, idx)
            y = y_all.index_select(0, idx.to(y_all.device)) if y_all is not None else None
            yield b, (x, y)

    def _streamed(self, bounds: list[tuple[int, Tensor]]) -> Iterator[tuple[int, tuple[Tensor, Tensor | None]]]:
        from torch.utils.data import DataLoader

        if not bounds:
            return
        loader = DataLoader(
            self.dataset,
            batch_sampler=[idx.tolist() for _, idx in bounds],
            num_workers=self.num_workers,
        )
        for (b, _), batch in zip(bounds, loader):
            if isinstance(batch, Tensor):
                yield b, (batch, None)
            else:
                yield b, (batch[0], batch[1] if len(batch) > 1 else None)

    def _finish(self, x: Tensor, y: Tensor | None, epoch: int, b: int) -> tuple[Tensor, Tensor | None]:
        if self.device is not None and x.device != self.device:
            if self.pin_memory and x.device.type == "cpu":
                x = x.pin_memory()
                y = y.pin_memory() if y is not None else None
            x = x.to(self.device, non_blocking=self.pin_memory)
            y = y.to(self.device, non_blocking=self.pin_memory) if y is not None else None
        if self.binarize == "dynamic":
            g = preprocess.generator(self.seed, "binarize", epoch, self.rank, b, device=x.device)
            x = preprocess.binarize(x, g)
        if self.dequantize_bits is not None:
            g = preprocess.generator(self.seed, "dequantize", epoch, self.rank, b, device=x.device)
            x = preprocess.dequantize(x, self.dequantize_bits, g)
        return x, y

    def __repr__(self) -> str:
        return (
            f"BatchIterator(n={len(self.dataset)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, epoch={self.epoch}, rank={self.rank}/{self.world_size}, binarize={self.binarize!r})"
        )


class LoaderBatches:
    """A user's ``DataLoader`` as a batch source for the trainer: ``(x, y)`` on ``device``.

    Batch items may be ``x`` or ``(x, label, ...)``. Its order is the loader's own (a shuffling
    loader without a generator draws it from torch's RNG, which the trainer seeds per epoch);
    ``set_epoch`` is passed to a sampler that has one (``DistributedSampler``).
    """

    def __init__(self, loader: Any, device: torch.device | str | None = None) -> None:
        self.loader = loader
        self.dataset = loader.dataset
        self.device = torch.device(device) if device is not None else None

    def set_epoch(self, epoch: int) -> None:
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        for batch in self.loader:
            if isinstance(batch, (tuple, list)):
                x, y = batch[0], (batch[1] if len(batch) > 1 else None)
            else:
                x, y = batch, None
            if not isinstance(x, Tensor):
                raise TypeError(f"DataLoader batches must be a tensor x or (x, label, ...), got {type(x).__name__}")
            if self.device is not None:
                x = x.to(self.device)
                y = y.to(self.device) if isinstance(y, Tensor) else y
            yield x, y


def batches_of(source: Any, batch_size: int, **kwargs: Any) -> BatchIterator | LoaderBatches:
    """A ``DataLoader`` as it is (``LoaderBatches``), any other dataset through ``BatchIterator``."""
    from torch.utils.data import DataLoader

    if isinstance(source, DataLoader):
        if int(kwargs.get("world_size", 1)) > 1:
            raise ValueError("a DataLoader cannot be split across processes; pass its Dataset instead")
        return LoaderBatches(source, kwargs.get("device"))
    return BatchIterator(source, batch_size, **kwargs)


def num_examples(source: Any) -> int:
    """Examples in a dataset or in a ``DataLoader``'s dataset."""
    from torch.utils.data import DataLoader

    return len(source.dataset) if isinstance(source, DataLoader) else len(source)
