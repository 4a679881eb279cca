"""The arithmetic precision of the transforms (docs/precision.md): ``float32``, ``bfloat16``,
``float16`` or ``auto``, and whether this machine runs the low precisions fast.

Only the networks that draw or analyse pixels use it: the analysis (``encode``: ``g_a`` and the
joint models' encoder branches) and the synthesis ``g_s``, each run under :func:`torch.autocast`
with the chosen type and its output cast back to float32. The entropy path (``h_a``, ``h_s``,
the context model, the coders, the exact fixed point of :mod:`.exact`) never sees it: the
decoder's symbols are the same whatever precision either side chose, and the encoder's choice
only changes which ``y`` it codes.

- ``float32``: the default; every device.
- ``bfloat16``: CUDA where the GPU supports it; on the CPU everywhere, but fast only with AMX or
  AVX512-BF16 (:func:`cpu_fast_bfloat16`). Elsewhere oneDNN emulates it, many times slower than
  float32 (docs/precision.md has the figure measured on an AVX2 machine).
- ``float16``: CUDA only.
- ``auto``: ``bfloat16`` where it is fast (:func:`fast_bfloat16`), else ``float32``.
"""
from __future__ import annotations

import contextlib
import inspect
import warnings
from typing import Any, Iterator, Optional, Union

import torch

from ..errors import ArgumentError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
#: /proc/cpuinfo flags of a CPU whose bfloat16 matrix products are fast (AMX: both tile flags).
_FAST_BF16_FLAGS = ({"avx512_bf16"}, {"amx_bf16", "amx_tile"})

_warned_slow = False  # the slow-bfloat16 warning, given once per process

Precision = Union[str, torch.dtype]
Device = Union[str, torch.device]


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> Optional[set]:
    """The CPU flags of the first processor in ``path``; None where it cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def cpu_fast_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AMX or AVX512-BF16, the units that make bfloat16 faster than
    float32: torch's own probes where this torch has them, else the flags of ``cpuinfo``, else
    False (never guessed True)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    probes = [p for p in probes if callable(p)]
    if probes:
        try:
            return any(bool(p()) for p in probes)
        except Exception:  # a private API: any failure means "not known to be fast"
            pass
    flags = _cpuinfo_flags(cpuinfo)
    return bool(flags) and any(needed <= flags for needed in _FAST_BF16_FLAGS)


def cuda_bfloat16(device: Device = "cuda", emulated: bool = False) -> bool:
    """Whether the CUDA ``device`` supports bfloat16 natively (compute capability 8.0 or newer);
    with ``emulated``, also where torch emulates it."""
    if not torch.cuda.is_available():
        return False
    try:
        fn = torch.cuda.is_bf16_supported
        if "including_emulation" in inspect.signature(fn).parameters:
            supported = fn(including_emulation=emulated)
        else:  # an older torch: no emulation switch
            supported = fn()
        return bool(supported) and (emulated or torch.cuda.get_device_capability(torch.device(device))[0] >= 8)
    except Exception:
        return False


def fast_bfloat16(device: Device = "cpu") -> bool:
    """Whether bfloat16 transforms should be faster than float32 on ``device``: a CPU with AMX
    or AVX512-BF16, or a GPU with native bfloat16."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_fast_bfloat16()
    if device.type == "cuda":
        return cuda_bfloat16(device)
    return False


def check_precision(precision: Any) -> str:
    """The canonical name of ``precision`` (one of :data:`PRECISIONS` or a torch dtype among
    :data:`DTYPES`); an ArgumentError naming ``precision`` otherwise."""
    if isinstance(precision, torch.dtype) and precision in NAMES:
        return NAMES[precision]
    if isinstance(precision, str) and precision in PRECISIONS:
        return precision
    raise ArgumentError(f"expected one of {', '.join(PRECISIONS)}, got {precision!r}", argument="precision")


def resolve_precision(precision: Precision, device: Device = "cpu") -> torch.dtype:
    """The dtype the transforms run in on ``device`` for ``precision``: ``auto`` is bfloat16
    where :func:`fast_bfloat16`, else float32. Refused (ArgumentError): float16 off CUDA,
    bfloat16 on a GPU without it, a low precision on a device other than the CPU and CUDA.
    bfloat16 asked for by name on a CPU without fast units is honoured with a warning (once per
    process): it is correct, only slow (a dtype is taken as already resolved)."""
    name = check_precision(precision)
    device = torch.device(device)
    if name == "auto":
        return torch.bfloat16 if fast_bfloat16(device) else torch.float32
    dtype = DTYPES[name]
    if dtype == torch.float32:
        return dtype
    if device.type not in ("cpu", "cuda"):
        raise ArgumentError(f"{name} runs on the CPU or CUDA only, not on {device.type}; use float32",
                            argument="precision")
    if dtype == torch.float16 and device.type != "cuda":
        raise ArgumentError("float16 runs on CUDA only; on the CPU use bfloat16 (fast with AMX or AVX512-BF16) "
                            "or float32", argument="precision")
    if dtype == torch.bfloat16 and device.type == "cuda" and not cuda_bfloat16(device, emulated=True):
        raise ArgumentError(f"bfloat16 is not supported by {torch.cuda.get_device_name(device)}; use float16 "
                            "or float32", argument="precision")
    global _warned_slow
    if (dtype == torch.bfloat16 and device.type == "cpu" and isinstance(precision, str) and not _warned_slow
            and not cpu_fast_bfloat16()):
        _warned_slow = True  # once per process
        warnings.warn("bfloat16 on a CPU without AMX or AVX512-BF16 is emulated and many times slower than "
                      "float32 (precision 'auto' picks float32 here)", RuntimeWarning, stacklevel=2)
    return dtype


@contextlib.contextmanager
def transform_precision(dtype: torch.dtype, device: Device) -> Iterator[None]:
    """Run the block's convolutions and matrix products in ``dtype`` on ``device`` (autocast);
    nothing changes for float32. Cast the block's outputs back with ``.float()``."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


def describe(device: Device = "cpu") -> dict:
    """What :func:`resolve_precision` would choose on ``device`` and why (for reports)."""
    device = torch.device(device)
    return {"device": str(device), "fast_bfloat16": fast_bfloat16(device),
            "auto": NAMES[resolve_precision("auto", device)]}
