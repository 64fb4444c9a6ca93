"""What a data source returns: ``RawData``, the raw examples before preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

FOLDER_TEST_FRACTION = 0.1
"""The share of a source without a test split that ``load_data`` carves out as one."""


@dataclass
class RawData:
    """A source's examples before preprocessing.

    In memory: ``train_x``/``test_x`` are ``(N, C, H, W)`` or ``(N, D)`` tensors, ``uint8``
    (divide by ``levels``) or float in [0, 1]. Streaming: ``train_files``/``test_files``.
    ``test_x``/``test_files`` None means the source has no test split: ``load_data`` carves
    ``test_fraction`` of the pool with a fixed seed.
    """

    origin: str
    train_x: Tensor | None = None
    train_y: Tensor | None = None
    test_x: Tensor | None = None
    test_y: Tensor | None = None
    levels: int = 255
    test_fraction: float = FOLDER_TEST_FRACTION
    classes: list[str] | None = None
    # streaming image folders
    train_files: list[str] | None = None
    test_files: list[str] | None = None
    image_mode: str = "RGB"
    image_shape: tuple[int, ...] = field(default_factory=tuple)

    @property
    def streaming(self) -> bool:
        return self.train_files is not None

    @property
    def has_test(self) -> bool:
        return self.test_x is not None or self.test_files is not None
