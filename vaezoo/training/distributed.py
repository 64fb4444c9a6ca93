"""Process group and device: plain ``torch.distributed``, active only when ``WORLD_SIZE > 1``.

Under ``torchrun --nproc_per_node=N`` the group is initialised from the environment
(gloo on CPU, nccl on CUDA). Without ``WORLD_SIZE`` nothing distributed happens and every
helper here is a no-op, so the single-process path has no overhead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this module initialised the process group (and destroys it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "train.device: 'cuda' was asked for, but CUDA is not available here; use train.device=cpu or auto"
            )
        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def setup(device_name: str) -> DistInfo:
    """Read ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``, pick the device, init the group if needed."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    device = resolve_device(device_name, local_rank)
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    if world_size == 1:
        rank = local_rank = 0
    return DistInfo(rank, world_size, local_rank, device, owns_group)


def teardown(info: DistInfo) -> None:
    """Destroy the process group if ``setup`` created it (no-op in a single process)."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(info: DistInfo, tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (returned for chaining)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.enabled:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index or 0])
        else:
            dist.barrier()


def broadcast_int(info: DistInfo, value: int) -> int:
    """Rank 0's ``value`` on every rank (e.g. the timestamp that names the run folder)."""
    if not info.enabled:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=info.device)
    dist.broadcast(t, src=0)
    return int(t.item())
