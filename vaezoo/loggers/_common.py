"""Helpers the built-in trackers share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.001}}`` -> ``{"train.lr": 0.001}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a record to plot, tagged ``<kind>/<name>`` unless the name has a ``/``."""
    kind = record.get("kind", "")
    return {
        (k if "/" in k else f"{kind}/{k}"): v
        for k, v in record.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch")
    }


def read_state(path: Path) -> dict[str, Any]:
    """A tracker's small state file in the run folder (the id of its run, to continue on resume)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.write_text(json.dumps(state, sort_keys=True) + "\n")
