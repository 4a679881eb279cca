"""What the evaluator codes images with: a :class:`Coder` turns one noisy image into one
:class:`Coded` result per entry (a checkpoint, or each quality of a classical codec).

:class:`ModelCoder` wraps a loaded model: real coding (``compress`` → ``decompress``, the rate
from the bytes) or estimation (``forward``, the rate from the likelihoods). The classical and
learned sequential baselines are coders too (:mod:`.baselines`). See docs/evaluation.md.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional

import torch

from ...errors import DicError
from ...metrics import bpp_from_likelihoods, bpp_from_strings
from ..runtime import synchronize


@dataclass
class Coded:
    """One image coded by one entry (a checkpoint or a codec quality)."""

    x_hat: torch.Tensor  # 1×3×H×W in [0, 1]
    bpp: float
    num_bytes: Optional[int]  # None when the rate is estimated
    encoding_time: Optional[float]
    decoding_time: Optional[float]


@dataclass
class EntryInfo:
    """What distinguishes one point of a rate–distortion curve."""

    tag: str  # folder / CSV name of the entry, e.g. "q3" or a checkpoint stem
    quality: Optional[int] = None
    checkpoint: Optional[str] = None


@dataclass
class Coder:
    """Something that codes a noisy image at one or several entries: a model checkpoint (one
    entry) or a classical pipeline (one entry per quality)."""

    method: str
    entries: List[EntryInfo]
    description: str = ""
    estimation: bool = False

    def code(self, noisy: torch.Tensor, blur: Optional[torch.Tensor] = None) -> List[Coded]:  # pragma: no cover - interface
        """One :class:`Coded` per entry. ``blur``: the noisy image's 5×5 mean filter computed
        by the test protocol (``official``: on the uncropped photo); None: the coder's own."""
        raise NotImplementedError


class ModelCoder(Coder):
    """A loaded model: real coding (compress → decompress) or estimation (``forward``)."""

    def __init__(self, model: torch.nn.Module, entry: EntryInfo, method: str, estimation: bool,
                 device: torch.device, precision: str = "float32"):
        super().__init__(method=method, entries=[entry], estimation=estimation,
                         description="estimated bpp (forward)" if estimation else "real coding")
        self.model = model
        self.device = device
        self.precision = precision  # of the transforms when coding (docs/precision.md)

    @torch.no_grad()
    def code(self, noisy: torch.Tensor, blur: Optional[torch.Tensor] = None) -> List[Coded]:
        x = noisy.to(self.device)
        blur = None if blur is None else blur.to(self.device)
        h, w = x.shape[-2:]
        if self.estimation:
            synchronize(self.device)
            t0 = time.perf_counter()
            out = self.model(x, blur=blur)
            synchronize(self.device)
            elapsed = time.perf_counter() - t0
            bpp = float(bpp_from_likelihoods(out["likelihoods"], h * w))
            return [Coded(out["x_hat"].clamp(0, 1).cpu(), bpp, None, elapsed, None)]
        synchronize(self.device)
        t0 = time.perf_counter()
        enc = self.model.compress(x, blur=blur, precision=self.precision)
        synchronize(self.device)
        t1 = time.perf_counter()
        dec = self.model.decompress(enc["strings"], enc["shape"], precision=self.precision)
        synchronize(self.device)
        t2 = time.perf_counter()
        num_bytes = int(round(bpp_from_strings(enc["strings"], 1) / 8))
        x_hat = dec["x_hat"].clamp(0, 1).cpu()
        if tuple(x_hat.shape[-2:]) != (h, w):
            raise DicError(f"{self.method}: decoded {tuple(x_hat.shape[-2:])}, expected {(h, w)}")
        return [Coded(x_hat, bpp_from_strings(enc["strings"], h * w), num_bytes, t1 - t0, t2 - t1)]
