"""Callbacks: code the ``Trainer`` calls at documented points of training (see docs/python.md).

Events, in order, for a run of E epochs with S steps each and step records every
``log.interval`` steps::

    on_fit_start(trainer)                     once, before the first step
    on_step_end(trainer, record)              per step record (kind "step": train/* means since the last one)
    on_validation_end(trainer, record)        per epoch, when there is validation data (the val/* metrics)
    on_epoch_end(trainer, record)             per epoch (kind "epoch": train/*, val/*, lr, time)
    on_checkpoint(trainer, path)              after each checkpoint written by trainer.save_checkpoint
    on_fit_end(trainer, result)               once, with the FitResult (not after an exception)

Callbacks run in list order. A callback stops training after the current epoch with
``trainer.stop(reason, message)`` (or by setting ``trainer.should_stop = True``).
``EarlyStopping`` and ``Checkpoint`` are the two the command line installs; replace them
by passing your own.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checkpoint import CHECKPOINT_NAME


class Callback:
    """Base class: every event is a no-op; override the ones you need."""

    def on_fit_start(self, trainer: Any) -> None:
        """Before the first step (after a resume, before the first remaining step)."""

    def on_step_end(self, trainer: Any, record: dict[str, Any]) -> None:
        """After each step record (every ``log.interval`` steps; ``record["step"]`` is the step count)."""

    def on_validation_end(self, trainer: Any, record: dict[str, Any]) -> None:
        """After validating an epoch: ``record`` holds the ``val/*`` metrics (EMA weights when enabled)."""

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        """After each epoch (``trainer.epoch`` epochs done); ``record`` is the epoch record that was logged."""

    def on_checkpoint(self, trainer: Any, path: Path) -> None:
        """After a checkpoint was written atomically at ``path``."""

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        """After the last epoch, with the ``FitResult`` (the model still holds the last weights)."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` (a key of the epoch record) has not improved for ``patience`` epochs.

    ``mode`` is ``"max"`` or ``"min"``; ``"auto"`` maximises keys containing ``elbo`` and
    minimises the rest. ``patience=0`` only keeps count (it never stops).
    """

    def __init__(self, patience: int, monitor: str = "val/elbo", mode: str = "auto") -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if mode not in ("auto", "max", "min"):
            raise ConfigError(f"EarlyStopping: mode must be 'auto', 'max' or 'min', got {mode!r}")
        self.patience = patience
        self.monitor = str(monitor)
        self.mode = ("max" if "elbo" in self.monitor else "min") if mode == "auto" else mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def on_fit_start(self, trainer: Any) -> None:
        if self.patience > 0 and self.monitor.startswith("val/") and trainer.val_iter is None:
            raise ConfigError(
                f"EarlyStopping(patience={self.patience}, monitor={self.monitor!r}) needs validation data: "
                "pass val=... to vaezoo.fit, or patience=0"
            )

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        value = record.get(self.monitor)
        if value is None:
            if self.patience > 0:
                raise ConfigError(
                    f"EarlyStopping: the epoch record has no {self.monitor!r}; monitor one of "
                    + ", ".join(repr(k) for k in record if isinstance(record[k], float))
                )
            return
        value = float(value)
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better and math.isfinite(value):
            self.best, self.best_epoch, self.bad_epochs = value, int(record["epoch"]), 0
            return
        self.bad_epochs += 1
        if self.patience > 0 and self.bad_epochs >= self.patience:
            what = "validation ELBO" if self.monitor == "val/elbo" else self.monitor
            trainer.stop(
                "early_stopping",
                f"early stopping after epoch {trainer.epoch}: {what} has not improved for {self.patience} "
                f"epochs (best {self.best:.3f} at epoch {self.best_epoch})",
            )


class Checkpoint(Callback):
    """Write a resumable checkpoint (atomically) into ``dir`` every ``every`` epochs and at the last one.

    The file is ``dir/name`` (``checkpoint.safetensors``, what ``Trainer.resume`` and
    ``vaezoo train --resume`` read), overwritten each time; ``dir`` is created at
    the start of training if missing. Only the main process writes.
    """

    def __init__(self, dir: str | Path, every: int = 1, name: str = CHECKPOINT_NAME) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"Checkpoint: every must be an integer >= 1, got {every!r}")
        self.dir = Path(dir)
        self.every = every
        self.name = str(name)
        self.path = self.dir / self.name
        self.last: Path | None = None

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.info.is_main and not self.dir.exists():
            self.dir.mkdir(parents=True)

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        last = trainer.should_stop or trainer.epoch >= trainer.end_epoch
        if trainer.info.is_main and (trainer.epoch % self.every == 0 or last):
            self.last = trainer.save_checkpoint(self.path)
