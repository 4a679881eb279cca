"""Runtime plumbing every application shares, each piece once: running a command with clean
user errors, choosing the device and timing with CUDA synchronisation. (Loading a model ready
for inference is the library's :func:`dic.checkpoints.load_for_inference`.)"""
from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from ..errors import DicError, OptionError
from ..logger import get_logger

if TYPE_CHECKING:  # torch is imported by the functions that need it: ``dic --help`` must not wait for it
    import torch

logger = get_logger()

#: Exit codes: a user error (one ``error:`` line), an interrupt (Ctrl-C).
USER_ERROR, INTERRUPTED = 2, 130


def guarded(func: Callable[..., Any], *args: Any) -> int:
    """Run ``func``; a :class:`DicError` becomes ``error: <message>`` on stderr and exit code 2,
    a file-system error that names its file (an output that cannot be written) one line naming
    it and exit code 2, Ctrl-C one line and exit code 130, and a warning ``warning: <message>``.
    The exit code is ``func``'s result when that is an integer, else 0."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result = func(*args)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except DicError as e:
        print(f"error: {e}", file=sys.stderr)
        return USER_ERROR
    except OSError as e:
        if e.filename is None:
            raise
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        return interrupted()


def os_error_message(error: OSError) -> str:
    """``<file>: <reason>`` (``→ <other file>`` for a rename) for an OSError that names a file."""
    other = f" → {error.filename2}" if error.filename2 is not None else ""
    return f"{error.filename}{other}: {error.strerror or error}"


def interrupted() -> int:
    """Say that Ctrl-C stopped the command (atomic writes leave no half-written file) and
    return exit code 130."""
    try:
        print("interrupted (Ctrl-C); files already written are complete, none is left half-written",
              file=sys.stderr)
    except KeyboardInterrupt:
        pass
    return INTERRUPTED


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def parse_device(name: str, what: str = "--device") -> "torch.device":
    """``cpu``, ``cuda`` or ``cuda:i`` as a device; an OptionError naming ``what`` when the name
    is malformed or CUDA is missing."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise OptionError(f"{what}: expected cpu or cuda[:i], got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise OptionError(f"{what}: expected cpu or cuda[:i], got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"{what} {name}: CUDA is not available on this machine; use cpu")
    return device


def device_from_gpu_ids(gpu_ids: Optional[Sequence[int]], local_rank: Optional[int] = None) -> "torch.device":
    """The device of ``gpu_ids`` (the option files' key): the CPU without ids or without CUDA
    (with a warning); else ``gpu_ids[0]``, or under torchrun ``gpu_ids[local_rank]`` (GPU
    ``local_rank`` when the list is shorter than the processes on this machine)."""
    import torch

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


def synchronize(device: Union["torch.device", str]) -> None:
    """Wait for the device's queued work, so wall-clock times measure it (no-op on the CPU)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
