"""The coding timing of ``dic bench``: ``model.compress`` / ``model.decompress`` of one noisy image
through our fast serial loop (:mod:`dic.models.fast_coding`) and through CompressAI's own
(``JointAutoregressiveHierarchicalPriors._compress_ar`` / ``decompress``). The two paths share
the analysis, hyper-prior and synthesis; the models' ``fast_coding`` switch selects the loop."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Tuple

import torch
import torch.nn as nn

from .timing import summary, time_interleaved

CODING_PATHS = ("ours", "compressai")


def use_coding_path(model: nn.Module, path: str) -> None:
    """Select the serial coding loop: ``ours`` (the fast loop) or ``compressai``."""
    if path not in CODING_PATHS:
        raise ValueError(f"unknown coding path {path!r}; expected one of {CODING_PATHS}")
    model.fast_coding = path == "ours"


def coding_op(model: nn.Module, op: str, path: str, noisy: torch.Tensor,
              coded: Mapping[str, Any]) -> Callable[[], None]:
    """A call running ``op`` (``encode`` of ``noisy`` or ``decode`` of ``coded``, the
    ``compress`` output) once through coding path ``path``."""
    def fn() -> None:
        use_coding_path(model, path)
        with torch.no_grad():
            if op == "encode":
                model.compress(noisy)
            else:
                model.decompress(coded["strings"], coded["shape"])
    return fn


def coding_paths(no_compressai: bool) -> List[str]:
    """The paths to measure."""
    return ["ours"] if no_compressai else list(CODING_PATHS)


def bench_coding(model: nn.Module, noisy: torch.Tensor, paths: List[str], repeats: int, warmup: int,
                 device: torch.device) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Encode/decode times of each path, their bitstream sizes and, with both paths, whether
    the strings are identical and how far the decoded images differ; and each path's
    ``compress`` output (for the memory probes)."""
    coded: Dict[str, Any] = {}
    decoded: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for path in paths:
            use_coding_path(model, path)
            coded[path] = model.compress(noisy)
            decoded[path] = model.decompress(coded[path]["strings"], coded[path]["shape"])["x_hat"]
    use_coding_path(model, "ours")
    out: Dict[str, Any] = {p: {"bytes": sum(len(s) for group in coded[p]["strings"] for s in group)}
                           for p in paths}
    if "compressai" in coded:
        out["strings_identical"] = coded["ours"]["strings"] == coded["compressai"]["strings"]
        out["max_abs_diff"] = float((decoded["ours"] - decoded["compressai"]).abs().max())
        eight_bit = {p: (decoded[p] * 255).round() for p in paths}
        out["pixels_differing_8bit"] = int((eight_bit["ours"] != eight_bit["compressai"]).sum())
    if repeats > 0:
        for op in ("encode", "decode"):
            fns = {p: coding_op(model, op, p, noisy, coded[p]) for p in paths}
            times = time_interleaved(fns, repeats, warmup, device)
            for p in paths:
                out[p][f"{op}_s"] = summary(times[p])
        use_coding_path(model, "ours")
    return out, coded
