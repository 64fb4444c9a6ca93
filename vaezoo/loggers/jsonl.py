"""The ``jsonl`` logger: ``metrics.jsonl`` in the run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import Logger

METRICS_NAME = "metrics.jsonl"


class JsonlLogger(Logger):
    """``metrics.jsonl`` in the run folder: one JSON object per record, flushed per record.

    Always on, listed or not: resuming a run, its loss curve and ``vaezoo zoo publish`` read it.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self._fh: Any = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.path = Path(run_dir) / METRICS_NAME
        self._fh = open(self.path, "a", encoding="utf-8")

    def log_metrics(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, sort_keys=False) + "\n")
            self._fh.flush()

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
