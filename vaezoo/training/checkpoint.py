"""Training checkpoints without pickle: one safetensors file, its metadata holding JSON.

``RUN_DIR/checkpoint.safetensors`` holds tensors under group prefixes --

* ``model/<name>``: the model's ``state_dict`` (no DDP ``module.`` prefix);
* ``optimizer/<index>/<name>``: per-parameter optimizer state (Adam's step and moments);
* ``ema/<name>``: EMA weights; ``best/<name>``: the weights of the best validation epoch;

-- and in its metadata ``state``: JSON with the epoch, the global step, the optimizer's
param groups, the early-stopping record, the GradScaler state and anything else the
trainer keeps. The file is written to a temporary name and renamed
(``serialization.write_safetensors``), so a crash during a save leaves the previous one intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..serialization import write_safetensors

CHECKPOINT_NAME = "checkpoint.safetensors"
FORMAT = "vaezoo-checkpoint"
VERSION = 1
_IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable", "params")


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint file that cannot be read at all (damaged, or not a vaezoo checkpoint): no config fixes it."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds: tensors by group, and the JSON ``state``."""

    state: dict[str, Any]
    groups: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def group(self, name: str) -> dict[str, torch.Tensor]:
        return self.groups.get(name, {})


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Flatten ``optimizer.state_dict()`` into ``{"<index>/<name>": tensor}`` and JSON param groups."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, entry in sd["state"].items():
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            tensors[f"{index}/{name}"] = value
    groups = [_jsonable(g) for g in sd["param_groups"]]
    return tensors, groups


def load_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]
) -> None:
    """Inverse of ``optimizer_tensors``; keeps this optimizer's kernel choice (fused/foreach)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition("/")
        state.setdefault(int(index), {})[name] = value
    current = optimizer.state_dict()["param_groups"]
    if len(groups) != len(current):
        raise CheckpointError(
            f"checkpoint has {len(groups)} optimizer parameter groups, the optimizer has {len(current)}"
        )
    merged = []
    for saved, now in zip(groups, current):
        group = {k: v for k, v in saved.items() if k not in _IMPLEMENTATION_KEYS}
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        group.update({k: now[k] for k in _IMPLEMENTATION_KEYS if k in now})
        merged.append(group)
    optimizer.load_state_dict({"state": state, "param_groups": merged})


def save(path: str | Path, state: dict[str, Any], groups: dict[str, dict[str, torch.Tensor]]) -> Path:
    """Write a checkpoint atomically: tensors as ``<group>/<name>``, ``state`` as JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    for group, items in groups.items():
        for name, t in items.items():
            tensors[f"{group}/{name}"] = t.detach().to("cpu").contiguous().clone()
    metadata = {"format": FORMAT, "version": str(VERSION), "state": json.dumps(_jsonable(state), sort_keys=True)}
    path = Path(path)
    write_safetensors(path, tensors, metadata)
    return path


def load(path: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save``; ``CheckpointError`` if missing or not one."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no checkpoint here (a run folder holds {CHECKPOINT_NAME} after its first epoch)"
        )
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            meta = dict(fh.metadata() or {})
            if meta.get("format") != FORMAT:
                raise UnreadableCheckpoint(f"{path}: not a vaezoo training checkpoint (format {meta.get('format')!r})")
            groups: dict[str, dict[str, torch.Tensor]] = {}
            for key in fh.keys():
                group, _, name = key.partition("/")
                groups.setdefault(group, {})[name] = fh.get_tensor(key)
    except CheckpointError:
        raise
    except Exception as exc:
        raise UnreadableCheckpoint(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if int(meta.get("version", "0")) > VERSION:
        raise UnreadableCheckpoint(
            f"{path}: checkpoint format version {meta['version']} is newer than this vaezoo understands ({VERSION}); upgrade vaezoo"
        )
    return Checkpoint(json.loads(meta.get("state", "{}")), groups)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"cannot store {type(value).__name__} {value!r} in a checkpoint's JSON state")
