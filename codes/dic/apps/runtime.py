"""Runtime plumbing every application shares, each piece once: choosing the device and timing
with CUDA synchronisation (running a command with clean user errors is :mod:`.guard`, which
imports no torch). (Loading a model ready for inference is the library's
:func:`dic.checkpoints.load_for_inference`.)"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from ..errors import OptionError
from ..logger import get_logger

logger = get_logger()


def parse_device(name: str, what: str = "--device") -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:i`` as a device; an OptionError naming ``what`` when the name
    is malformed or CUDA is missing."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise OptionError(f"{what}: expected cpu or cuda[:i], got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise OptionError(f"{what}: expected cpu or cuda[:i], got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"{what} {name}: CUDA is not available on this machine; use cpu")
    return device


def device_from_gpu_ids(gpu_ids: Optional[Sequence[int]], local_rank: Optional[int] = None) -> torch.device:
    """The device of ``gpu_ids`` (the option files' key): the CPU without ids or without CUDA
    (with a warning); else ``gpu_ids[0]``, or under torchrun ``gpu_ids[local_rank]`` (GPU
    ``local_rank`` when the list is shorter than the processes on this machine)."""
    if not gpu_ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        logger.warning(f"gpu_ids {list(gpu_ids)}: CUDA is not available; running on the CPU")
        return torch.device("cpu")
    if local_rank is None:
        index = gpu_ids[0]
        if len(gpu_ids) > 1:
            logger.warning(f"gpu_ids {list(gpu_ids)}: one process uses one GPU (cuda:{index}); for several "
                           f"GPUs launch with torchrun --nproc_per_node={len(gpu_ids)}")
    else:
        index = gpu_ids[local_rank] if local_rank < len(gpu_ids) else local_rank
    if index >= torch.cuda.device_count():
        raise OptionError(f"gpu_ids: GPU {index} requested but only {torch.cuda.device_count()} visible")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def synchronize(device: Union[torch.device, str]) -> None:
    """Wait for the device's queued work, so wall-clock times measure it (no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
