"""Where metrics go: ``metrics.jsonl`` (one JSON object per line), TensorBoard when installed,
and the tqdm progress bar. Only the main process writes; other ranks get a silent logger.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

METRICS_NAME = "metrics.jsonl"


class MetricsLog:
    """Append-only JSON-lines log (flushed per record), mirrored to TensorBoard if available.

    Every record is a flat dict with ``kind`` (``step``, ``epoch``, ``eval``) and numbers;
    non-finite numbers are written as ``null``.
    """

    def __init__(self, run_dir: str | Path | None, *, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / METRICS_NAME if run_dir is not None else None
        self._fh = open(self.path, "a", encoding="utf-8") if self.path is not None else None
        self._tb = None
        if self.path is not None and tensorboard:
            try:
                from torch.utils.tensorboard import (
                    SummaryWriter,  # optional: needs the tensorboard package
                )
            except ImportError:
                pass
            else:
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self._fh.write(json.dumps(clean, sort_keys=False) + "\n")
        self._fh.flush()
        if self._tb is not None:
            step = int(record.get("step", 0))
            kind = record.get("kind", "")
            for k, v in clean.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch"):
                    self._tb.add_scalar(k if "/" in k else f"{kind}/{k}", v, step)

    def drop_after(self, epoch: int) -> None:
        """Keep only the records of epochs ``<= epoch`` (before resuming from that epoch's checkpoint)."""
        if self.path is None or self._fh is None:
            return
        from ..serialization import atomic_write

        self._fh.close()
        kept = [json.dumps(r) for r in read_metrics(self.path.parent) if int(r.get("epoch", 0)) <= epoch]
        atomic_write(
            self.path, lambda tmp: Path(tmp).write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        )
        self._fh = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl`` (empty if there is none); a torn last line is skipped."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def progress_bar(total: int, desc: str, show: bool | None = None, *, unit: str = "it", mininterval: float = 0.1) -> Any:
    """A tqdm bar on stderr (done / total, rate, ETA), redrawn at most every ``mininterval`` seconds.
    ``show``: True always, False never, None (auto) when stderr is a terminal and the ``CI``
    environment variable is not set."""
    from tqdm.auto import tqdm

    if show is None:
        show = sys.stderr.isatty() and os.environ.get("CI", "").strip().lower() in ("", "0", "false", "no")
    return tqdm(total=total, desc=desc, disable=not show, leave=False, dynamic_ncols=True, file=sys.stderr, unit=unit,
                mininterval=mininterval, miniters=1)
