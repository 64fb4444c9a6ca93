"""The ``tensorboard`` logger: event files under the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import flatten, scalars
from .base import Logger


class TensorBoardLogger(Logger):
    """TensorBoard event files: every number as a scalar, every figure as an image, the config
    as a text table (``config``).

    Parameters:

    * ``dir`` -- the event folder, relative to the run folder.
    """

    library = "tensorboard"
    install = "pip install 'vaezoo[tensorboard]'"

    def __init__(self, dir: str = "tensorboard") -> None:
        self.dir = dir
        self.writer: Any = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / self.dir))
        rows = "\n".join(f"| {k} | {v} |" for k, v in flatten(config).items())
        self.writer.add_text("config", "| key | value |\n| --- | --- |\n" + rows, 0)

    def log_metrics(self, record: dict[str, Any]) -> None:
        step = int(record.get("step", 0))
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, step)

    def log_images(self, name: str, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self.writer.add_image(name, pixels, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
