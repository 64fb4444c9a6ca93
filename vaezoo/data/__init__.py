"""The data layer: sources, splits, likelihood-matched preprocessing, and batching.

``load_data(cfg, likelihood)`` returns ``Splits``; ``BatchIterator`` batches one split.
See ``docs/data.md``.
"""

from .config import DATASET_NAMES, DataConfig, as_config, default_root
from .datasets import InMemoryDataset, Splits, StreamingDataset
from .idx import read_idx
from .load import check_splits, for_likelihood, load_data, read_source, source_shape
from .loaders import BatchIterator

__all__ = [
    "DATASET_NAMES",
    "BatchIterator",
    "DataConfig",
    "InMemoryDataset",
    "Splits",
    "StreamingDataset",
    "as_config",
    "check_splits",
    "default_root",
    "for_likelihood",
    "load_data",
    "read_idx",
    "read_source",
    "source_shape",
]
