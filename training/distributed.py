"""Distributed data parallel (DDP) set-up for ``dfmvr train`` under ``torchrun``.

``torchrun --nproc_per_node=N -m dfmvr_training.cli.train --config cfg.yaml`` (or ``torchrun ... $(which dfmvr)
train --config cfg.yaml``) starts N processes with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in their environment; :func:`init_distributed` reads them and joins the process group (``nccl`` on
CUDA, ``gloo`` on the CPU). Without those variables (or with ``WORLD_SIZE=1``) training runs in one process and
nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from dfmvr_core.errors import ConfigError

__all__ = ["DistContext", "all_gather_objects", "barrier", "cleanup_distributed", "init_distributed", "resolve_device"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 = the process that logs and writes checkpoints).
        world_size: number of processes.
        local_rank: rank on this machine (selects ``cuda:LOCAL_RANK``).
        device: the torch device this process trains on.
        initialized: whether this module joined a process group (and must leave it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``cpu`` / ``cuda`` / ``cuda:N`` / ``auto`` → a torch device (``cuda`` under DDP → ``cuda:LOCAL_RANK``).

    Raises:
        ConfigError: CUDA asked for but not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} asked for, but torch has no CUDA device here (use device: cpu)")
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}: expected an integer, got {value!r}") from None


def init_distributed(device_name: str) -> DistContext:
    """Join the process group described by torchrun's environment variables, if any.

    Args:
        device_name: the config's ``device`` (see :func:`resolve_device`).

    Returns:
        The :class:`DistContext` (``initialized`` False for a single process).
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = resolve_device(device_name, local_rank)
    if world_size <= 1:
        return DistContext(device=device)
    if not 0 <= rank < world_size:
        raise ConfigError(f"environment variable RANK: expected 0 <= RANK < WORLD_SIZE={world_size}, got {rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    initialized = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
        initialized = True
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=device,
        initialized=initialized,
    )


def cleanup_distributed(context: DistContext) -> None:
    """Leave the process group that :func:`init_distributed` joined."""
    if context.initialized and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if context.distributed:
        dist.barrier()


def all_gather_objects(context: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` for one process."""
    if not context.distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
