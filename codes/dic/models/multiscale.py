"""ECCV 2022 joint denoising + compression network (docs/models.md §2): Cheng2020-anchor's encoder
in two stages, each followed by CompressAI's AttentionBlock as a feature denoiser."""
from __future__ import annotations

from typing import Optional

from compressai.layers import AttentionBlock
from torch import Tensor

from .checkerboard import Context
from .registry import register_model
from .base import JointCodecBase


@register_model("multiscale-decomp")
class MultiscaleDecomp(JointCodecBase):
    """``y_inter = denoise_module_1(g_a_block1(x))``, ``y = denoise_module_2(g_a_block2(y_inter))``;
    module names are the official release's. ``context``: ``serial`` (the paper's) or
    ``checkerboard`` (docs/models.md §5)."""

    def __init__(self, quality: Optional[int] = None, N: Optional[int] = None, context: Context = "serial"):
        super().__init__(quality, N, context)
        self.denoise_module_1 = AttentionBlock(self.N)
        self.denoise_module_2 = AttentionBlock(self.N)

    def denoise(self, stage: int, f: Tensor, context: Optional[Tensor]) -> Tensor:
        return (self.denoise_module_1 if stage == 1 else self.denoise_module_2)(f)
