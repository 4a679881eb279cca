"""Wall-clock timing for ``dic bench``: the compared functions run in turn, one of each per round,
so that every side of a comparison sees the same machine load; medians summarise the runs."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from ..runtime import synchronize


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int,
                     device: torch.device) -> Dict[str, List[float]]:
    """Wall times in seconds of each function, run in turn ``warmup`` + ``repeats`` times
    (one of each per round); the ``warmup`` rounds are not recorded. The device is synchronised
    around every run so that queued CUDA work is counted."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def summary(runs: List[float]) -> Dict[str, Any]:
    """``{"median", "min", "max", "runs"}`` of a list of times; empty when nothing ran."""
    if not runs:
        return {}
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "runs": runs}


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """``a / b``, or None when either is missing (or ``b`` is zero)."""
    return a / b if a is not None and b else None


def median_of(block: Mapping[str, Any], key: str) -> Optional[float]:
    """The median of the summary stored under ``key`` in a result block, if any."""
    return (block.get(key) or {}).get("median")
