"""Where metrics go: the run's loggers (``log.loggers``: ``metrics.jsonl`` always, trackers as
configured; see ``vaezoo.loggers``) and the tqdm progress bar. Only the main process writes;
other ranks get a silent log.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from ..loggers.jsonl import METRICS_NAME, read_metrics  # noqa: F401  (re-exported)


class MetricsLog:
    """The run's loggers as one: records, figures and the final model go to each of them.

    ``loggers``: built by ``vaezoo.loggers.config.build_loggers`` (``jsonl`` is added when
    missing); each is started here with ``config`` (the plain run config). ``tensorboard=True``
    also adds the ``tensorboard`` logger when its package is installed (for callers of the
    earlier signature). With ``run_dir=None`` (other ranks) nothing is written.

    Every record is a flat dict with ``kind`` (``step``, ``epoch``, ``eval``) and numbers;
    non-finite numbers are passed on (and written) as ``None``.
    """

    def __init__(
        self, run_dir: str | Path | None, *, loggers: Sequence[Any] = (), config: dict[str, Any] | None = None,
        tensorboard: bool = False,
    ) -> None:
        from ..loggers.base import missing_library
        from ..loggers.jsonl import JsonlLogger

        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.loggers: list[Any] = []
        self.jsonl: JsonlLogger | None = None
        self.path = self.run_dir / METRICS_NAME if self.run_dir is not None else None
        if self.run_dir is None:
            return
        chosen = list(loggers)
        if not any(isinstance(lg, JsonlLogger) for lg in chosen):
            chosen.insert(0, JsonlLogger())
        if tensorboard:
            from ..loggers.tensorboard import TensorBoardLogger

            if not any(isinstance(lg, TensorBoardLogger) for lg in chosen) and missing_library(TensorBoardLogger()) is None:
                chosen.append(TensorBoardLogger())
        try:
            for logger in chosen:
                logger.start(self.run_dir, dict(config or {}))
                self.loggers.append(logger)
        except BaseException:
            self.close()
            raise
        self.jsonl = next(lg for lg in self.loggers if isinstance(lg, JsonlLogger))

    def write(self, record: dict[str, Any]) -> None:
        """Pass one record to every logger; an ``epoch`` record brings that epoch's grids with it."""
        if not self.loggers:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        for logger in list(self.loggers):
            self._call(logger, "log_metrics", clean)
        if clean.get("kind") == "epoch" and self.run_dir is not None:
            # the grids the trainer drew for this epoch just before (Trainer._images names them)
            epoch, step = int(clean.get("epoch", 0)), int(clean.get("step", 0))
            for name in ("samples", "reconstructions"):
                path = self.run_dir / "images" / f"{name}_e{epoch:03d}.png"
                if path.is_file():
                    self.log_images(name, path, step)

    def log_images(self, name: str, path: str | Path, step: int) -> None:
        """Pass one PNG figure to every logger."""
        for logger in list(self.loggers):
            self._call(logger, "log_images", name, Path(path), int(step))

    def log_model(self, folder: str | Path) -> None:
        """Pass the final model folder to every logger."""
        for logger in list(self.loggers):
            self._call(logger, "log_model", Path(folder))

    def _call(self, logger: Any, method: str, *args: Any) -> None:
        """``logger.method(*args)``. A tracker that fails is switched off for the rest of the run
        with one warning, and the run goes on; ``metrics.jsonl`` failing (a full disk) stops it."""
        try:
            getattr(logger, method)(*args)
        except Exception as exc:
            if logger is self.jsonl:
                raise
            self.loggers = [lg for lg in self.loggers if lg is not logger]
            closed = ""
            try:
                logger.close()
            except Exception as close_exc:  # already failed: its close may fail too
                closed = f"; its close failed too ({type(close_exc).__name__})"
            _warn(logger, f"{method} failed ({_describe(exc)}){closed}; it is switched off for the rest of this run, "
                          f"which goes on ({METRICS_NAME} keeps every record)")

    def drop_after(self, epoch: int) -> None:
        """Keep only the records of epochs ``<= epoch`` in metrics.jsonl (before resuming from that
        epoch's checkpoint); trackers keep theirs, and a resumed run logs those steps again."""
        if self.jsonl is not None:
            self.jsonl.drop_after(epoch)

    def close(self) -> None:
        """Close every logger, each even if another fails. A tracker whose close fails gets one
        warning (the run's results are already in ``metrics.jsonl`` and the run folder); a failing
        ``metrics.jsonl`` is raised, unless another exception is already on its way out (the
        ``finally`` of a failed run), which it must not hide: then it is a warning too."""
        failure: BaseException | None = None
        in_flight = sys.exc_info()[1]
        loggers, self.loggers = self.loggers, []
        for logger in loggers:
            try:
                logger.close()
            except Exception as exc:  # noqa: PERF203
                if logger is self.jsonl and in_flight is None:
                    failure = exc
                else:
                    _warn(logger, f"close failed ({_describe(exc)})")
        if failure is not None:
            raise failure


def _describe(exc: BaseException) -> str:
    detail = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {detail[:300]}"


def _warn(logger: Any, what: str) -> None:
    import warnings

    warnings.warn(f"logger {type(logger).__name__}: {what}", UserWarning, stacklevel=3)


def progress_bar(total: int, desc: str, show: bool | None = None, *, unit: str = "it", mininterval: float = 0.1) -> Any:
    """A tqdm bar on stderr (done / total, rate, ETA), redrawn at most every ``mininterval`` seconds.
    ``show``: True always, False never, None (auto) when stderr is a terminal and the ``CI``
    environment variable is not set."""
    from tqdm.auto import tqdm

    if show is None:
        show = sys.stderr.isatty() and os.environ.get("CI", "").strip().lower() in ("", "0", "false", "no")
    return tqdm(total=total, desc=desc, disable=not show, leave=False, dynamic_ncols=True, file=sys.stderr, unit=unit,
                mininterval=mininterval, miniters=1)
