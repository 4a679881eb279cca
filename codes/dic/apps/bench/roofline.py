"""The roofline of ``dic bench``: how far each transform runs from what this machine can do.

- **Work**: the floating-point operations of the analysis (the encoder's network: ``g_a`` and,
  for the joint models, its denoising branches) and of the synthesis ``g_s``, counted from the
  shapes of their convolutions, transposed convolutions, linear layers and matrix products by
  :class:`torch.utils.flop_counter.FlopCounterMode` during one float32 run (one multiply-add
  is 2 FLOP). Element-wise work (activations, GDN, softmax) is not counted: these transforms
  are bounded by their convolutions.
- **Peak**: the best rate of a plain large square matrix product in each precision on the
  same device and threads (:func:`matmul_peak`), what the BLAS / oneDNN / cuBLAS kernels reach
  at their best. bfloat16 is measured where it is fast (AMX, AVX512-BF16, a GPU with it) or
  where a bfloat16 path ran; float16 on CUDA.
- **Distance**: ``time_over_peak`` = the transform's median time / the time its FLOPs would take
  at the peak (peak GFLOP/s ÷ achieved GFLOP/s): 1 is the limit, 1.3 is 30 % above it.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch

from ...models.precision import DTYPES, cuda_bfloat16, fast_bfloat16
from ..runtime import synchronize
from .timing import median_of

try:  # torch ≥ 2.1
    from torch.utils.flop_counter import FlopCounterMode
except ImportError:  # pragma: no cover - an older torch: no FLOP counts, the rest still runs
    FlopCounterMode = None

COMPONENTS = ("analysis", "synthesis")
TITLES = {"analysis": "analysis (encoder)", "synthesis": "synthesis g_s"}
NOT_FAST_CPU = "not fast on this CPU (no AMX / AVX512-BF16: oneDNN emulates it)"


def count_gflop(fn: Callable[[], Any]) -> Optional[float]:
    """GFLOP of one call of ``fn`` (convolutions, linear layers, matrix products), or None
    where this torch has no FLOP counter."""
    if FlopCounterMode is None:
        return None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def matmul_peak(dtype: torch.dtype, device: torch.device, n: Optional[int] = None,
                budget_s: float = 1.0) -> Dict[str, Any]:
    """The best rate of ``n×n @ n×n`` in ``dtype`` on ``device`` (GFLOP/s), over at least 2
    and at most 10 timed runs within about ``budget_s`` seconds after one warm-up. ``n``: 8192 on
    CUDA (each run 10 products), 2048 on the CPU, 512 for a CPU precision that is emulated."""
    cuda = device.type == "cuda"
    if n is None:
        n = 8192 if cuda else (2048 if dtype == torch.float32 or fast_bfloat16(device) else 512)
    inner = 10 if cuda else 1
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))

    def run() -> None:
        for _ in range(inner):
            torch.mm(a, b)

    run()
    synchronize(device)
    runs: List[float] = []
    start = time.perf_counter()
    while len(runs) < 2 or (len(runs) < 10 and time.perf_counter() - start < budget_s):
        synchronize(device)
        t0 = time.perf_counter()
        run()
        synchronize(device)
        runs.append(time.perf_counter() - t0)
    best = min(runs)
    return {"gflops": 2 * n ** 3 * inner / best / 1e9, "n": n, "best_s": best / inner, "runs": len(runs)}


def measure_peaks(device: torch.device, precisions: Sequence[str], n: Optional[int] = None
                  ) -> Dict[str, Dict[str, Any]]:
    """The matrix-product peak of float32 and of each low precision that applies on ``device``
    (``{"skipped": why}`` for one that does not); ``precisions``: those the transforms ran in;
    ``n``: the products' size (:func:`matmul_peak`'s default when None)."""
    peaks: Dict[str, Dict[str, Any]] = {"float32": matmul_peak(torch.float32, device, n)}
    fast = fast_bfloat16(device)
    if device.type == "cuda" and not cuda_bfloat16(device, emulated=True):
        peaks["bfloat16"] = {"skipped": "this GPU has no bfloat16"}
    elif fast or "bfloat16" in precisions:
        peaks["bfloat16"] = {**matmul_peak(torch.bfloat16, device, n), "fast": fast}
        if not fast:
            peaks["bfloat16"]["note"] = NOT_FAST_CPU if device.type == "cpu" else "emulated on this GPU"
    else:
        peaks["bfloat16"] = {"skipped": f"{NOT_FAST_CPU}: not measured (--paths exact-bf16 measures it)"}
    if device.type == "cuda":
        peaks["float16"] = {**matmul_peak(torch.float16, device, n), "fast": True}
    else:
        peaks["float16"] = {"skipped": "CUDA only"}
    return peaks


def roofline(components: Mapping[str, Any], peaks: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """Per transform: its GFLOP, and for each precision it was timed in (``components``: the
    coding results' ``components`` block, with ``analysis_gflop`` / ``synthesis_gflop``), its
    median time, the achieved GFLOP/s, the peak and ``time_over_peak``."""
    transforms: Dict[str, Any] = {}
    for component in COMPONENTS:
        gflop = components.get(f"{component}_gflop")
        entry: Dict[str, Any] = {"gflop": gflop}
        for precision in DTYPES:
            name = component if precision == "float32" else f"{component}_{precision}"
            seconds = median_of(components, f"{name}_s")
            if seconds is None:
                continue
            rate = gflop / seconds if gflop and seconds else None
            peak = (peaks.get(precision) or {}).get("gflops")
            entry[precision] = {"time_s": seconds, "gflops": rate, "peak_gflops": peak,
                                "time_over_peak": peak / rate if peak and rate else None}
        transforms[component] = entry
    return {"peak": dict(peaks), "transforms": transforms,
            "method": "GFLOP: FlopCounterMode (convolutions, linear, matmul; 2 per multiply-add), one float32 run; "
                      "peak: best of a plain n×n matrix product on the same device and threads"}


def roofline_ratios(roof: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    """``<transform>_<precision>_time_over_peak`` for each measured pair."""
    out: Dict[str, Optional[float]] = {}
    for component, entry in (roof.get("transforms") or {}).items():
        for precision in DTYPES:
            if isinstance(entry.get(precision), dict):
                out[f"{component}_{precision}_time_over_peak"] = entry[precision]["time_over_peak"]
    return out


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def roofline_lines(roof: Mapping[str, Any]) -> List[str]:
    """The roofline table of ``dic bench``."""
    lines = ["", f"{'roofline':22s}{'GFLOP':>9s}{'precision':>11s}{'time (s)':>10s}{'GFLOP/s':>10s}"
                 f"{'peak GFLOP/s':>14s}{'time / peak':>13s}"]
    for component, entry in roof["transforms"].items():
        for precision in DTYPES:
            row = entry.get(precision)
            if not isinstance(row, dict):
                continue
            lines.append(f"{TITLES[component]:22s}{_fmt(entry['gflop'], 1):>9s}{precision:>11s}"
                         f"{_fmt(row['time_s'], 3):>10s}{_fmt(row['gflops'], 1):>10s}{_fmt(row['peak_gflops'], 1):>14s}"
                         f"{_fmt(row['time_over_peak']):>13s}")
    peaks = []
    for precision, peak in roof["peak"].items():
        if "skipped" in peak:
            peaks.append(f"{precision}: {peak['skipped']}")
        else:
            peaks.append(f"{precision} {peak['gflops']:.1f} GFLOP/s ({peak['n']}² matmul"
                         + (f"; {peak['note']}" if peak.get("note") else "") + ")")
    lines.append("peak: " + "; ".join(peaks))
    return lines
