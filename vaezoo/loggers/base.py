"""``Logger``: where a run's metrics, figures and final model are reported (a tracker).

vaezoo calls, on the main process only and in this order::

    logger.start(run_dir, config)          once, after the run folder is written
    logger.log_metrics(record)             every step / epoch / eval record
    logger.log_images(name, path, step)    every PNG figure the run draws
    logger.log_model(folder)               the final model folder (config.json + model.safetensors)
    logger.close()                         once, also when the run fails or is interrupted

A tracker whose ``log_metrics``, ``log_images`` or ``log_model`` raises is closed and
switched off for the rest of the run, with one warning; the run goes on (``metrics.jsonl``
keeps every record); one whose ``close`` raises gets a warning. One whose ``start`` raises
stops the run before it trains.

The constructor takes the logger's config parameters and must do no I/O and import no
tracking library (``vaezoo train`` builds every logger while it checks the config).
``library`` names the module the logger imports in ``start``; when it is not installed,
``vaezoo train`` refuses to start with ``install`` as the fix.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar


class Logger:
    """A tracker that receives a run's records, figures and final model (see the module doc)."""

    #: the module ``start`` imports (None: nothing optional), e.g. ``"mlflow"``
    library: ClassVar[str | None] = None
    #: how to install ``library``, e.g. ``"pip install 'vaezoo[mlflow]'"``
    install: ClassVar[str] = ""

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        """Begin (or, for a resumed run, continue) tracking the run in ``run_dir``; ``config``
        is the run's resolved config as plain dicts and lists."""

    def log_metrics(self, record: dict[str, Any]) -> None:
        """One record: ``kind`` (``step``, ``epoch`` or ``eval``), ``step``, ``epoch`` and named
        numbers (``train/loss``, ``val/elbo``, ...); a non-finite number arrives as None."""

    def log_images(self, name: str, path: Path, step: int) -> None:
        """A PNG figure of the run: ``name`` (``samples``, ``reconstructions``, ``loss_curve``, ...)
        drawn at training step ``step``, stored at ``path``."""

    def log_model(self, folder: Path) -> None:
        """The final model folder (loadable with ``vaezoo.from_pretrained``)."""

    def close(self) -> None:
        """Flush and release everything; called once."""


def missing_library(logger: Logger) -> str | None:
    """The module ``logger`` needs but cannot import (None when it is installed or needs none)."""
    module = type(logger).library
    if not module:
        return None
    try:
        return None if importlib.util.find_spec(module) is not None else module
    except (ImportError, ValueError):  # a parent package missing, or sys.modules[module] is None
        return module
