"""The compression-only baseline: CompressAI's Cheng2020-anchor, unchanged, trained on
noisy → clean like the joint models (docs/models.md §1)."""
from __future__ import annotations

from typing import Dict, Optional

from torch import Tensor

from .checkerboard import Context
from .registry import register_model
from .base import CodecBase


@register_model("cheng2020-anchor")
class Cheng2020AnchorCodec(CodecBase):
    """Cheng2020-anchor with the project's interface (padding, ``y``/``y_gt`` outputs). Its
    state dict is CompressAI's, so CompressAI checkpoints load as they are (into the default
    ``context: serial``; ``checkerboard`` is the two-pass variant, docs/models.md §5)."""

    def __init__(self, quality: Optional[int] = None, N: Optional[int] = None, context: Context = "serial"):
        super().__init__(quality, N, context)

    def encode(self, x: Tensor, gt: Optional[Tensor] = None, blur: Optional[Tensor] = None) -> Dict[str, Tensor]:
        # blur: unused, the codec has no SNR map
        out = {"y": self.g_a(x)}
        if gt is not None:
            out["y_gt"] = self.g_a(gt)
        return out
