"""Distributed data parallel through ``torchrun``: process-group set-up (nccl on GPUs, gloo on
the CPU), rank helpers, barriers, object broadcast and per-rank seeding.

Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) every helper works as for a
single process of rank 0, so the trainer has one code path.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, List

import numpy as np
import torch
import torch.distributed as dist

from ...errors import OptionError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: global rank, number of processes, rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment variables (single process
    when they are absent)."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise OptionError(f"torchrun environment: RANK / WORLD_SIZE / LOCAL_RANK must be integers ({e})") from None


def init_distributed(device: torch.device, timeout_s: int = 1800) -> DistInfo:
    """Join the process group torchrun describes (``env://``): nccl when this process drives a
    GPU, gloo on the CPU. A no-op for a single process."""
    info = env_info()
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s),
                                rank=info.rank, world_size=info.world_size, **kwargs)
    return info


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def barrier() -> None:
    """Wait for every process (no-op when alone)."""
    if is_initialized() and get_world_size() > 1:
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as rank ``src`` has it, on every rank (picklable Python objects)."""
    if not is_initialized() or get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not is_initialized() or get_world_size() == 1:
        return [obj]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: Any, device: torch.device) -> Any:
    """True on every rank when ``flag`` is true on at least one, so that all ranks take the
    same branch (e.g. capping a bad step together, which DDP requires). A bool flag gives a
    bool; a device bool tensor (``train.sync_free_cap``) gives a device bool tensor, reduced
    without the host reading it."""
    if torch.is_tensor(flag):
        if not is_initialized() or get_world_size() == 1:
            return flag
        t = flag.to(torch.int32).reshape(1)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t[0].bool()
    if not is_initialized() or get_world_size() == 1:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest of every rank's ``value``, on every rank (one small all-reduce; none when
    alone): e.g. the number of a stop signal that reached only some of the processes."""
    if not is_initialized() or get_world_size() == 1:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) with ``seed + rank``: ranks draw
    different quantisation noise, and a run is reproducible for a given seed and world size."""
    s = (int(seed) + int(rank)) % 2**32
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(s)


def cleanup() -> None:
    """Leave the process group (after training, or on an error)."""
    if is_initialized():
        dist.destroy_process_group()
