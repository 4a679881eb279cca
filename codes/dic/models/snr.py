"""ICME 2024 SNR-aware joint denoising + compression network, the seed's system (docs/models.md §3):
the ECCV 2022 network with each denoiser replaced by an SNR-aware block. Both networks of the
release's source trees are this model: the MSE tree's (the defaults) and the MS-SSIM / SIDD
trees' (``branch_width: full``, ``num_heads: 8``)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

from torch import Tensor

from ..errors import ArgumentError
from .checkerboard import Context
from .registry import register_model
from .base import PAD_MULTIPLE, JointCodecBase, check_positive_int
from .layers import BranchWidth, SNRAwareBlock, branch_channels, snr_map


@register_model("snr-decomp")
class SNRDecomp(JointCodecBase):
    """Two-stage joint codec whose stage outputs pass through :class:`SNRAwareBlock` s driven
    by the SNR map of the noisy input, computed here on the input's device (on the padded
    image, so images that are not multiples of 64 see their replicated border in the map).

    Args:
        quality: 1–6; selects N when N is None (128 for 1–3, 192 for 4–6). Default 6.
        N: channel width.
        num_layers, num_heads, head_dim: transformer depth, heads and head width (6, 12, 64;
            the MS-SSIM and SIDD trees' network has 8 heads).
        token_patch: side of the square feature patches that form the tokens (4).
        local_blocks: residual blocks of the local branch at stage 1 and stage 2 ((2, 1)).
        nonlocal_blocks: residual blocks before the transformer at each stage (1).
        context: the entropy model's spatial context: ``serial`` (the paper's) or
            ``checkerboard`` (two parallel passes, docs/models.md §5).
        branch_width: channels of the SNR blocks' local and non-local branches: ``half`` (N/2,
            each branch projected by a 3×3 convolution; the MSE tree's network, default) or
            ``full`` (N, no projection; the MS-SSIM and SIDD trees' network, with
            ``num_heads: 8``). Tokens hold 16·N/2 or 16·N values (docs/models.md §3).
    """

    def __init__(
        self,
        quality: Optional[int] = None,
        N: Optional[int] = None,
        num_layers: int = 6,
        num_heads: int = 12,
        head_dim: int = 64,
        token_patch: int = 4,
        local_blocks: Sequence[int] = (2, 1),
        nonlocal_blocks: int = 1,
        context: Context = "serial",
        branch_width: BranchWidth = "half",
    ):
        super().__init__(quality, N, context)
        if self.N % 2:
            raise ArgumentError(f"snr-decomp needs an even width, got {self.N}", argument="N")
        for key, value in (("num_layers", num_layers), ("num_heads", num_heads),
                           ("head_dim", head_dim), ("token_patch", token_patch),
                           ("nonlocal_blocks", nonlocal_blocks)):
            check_positive_int(key, value)
        local = _two_counts(local_blocks)
        branch_channels(self.N, branch_width)  # checks the value
        # Stage-2 features (1/16 of the image) must split into whole token patches.
        self.pad_multiple = math.lcm(PAD_MULTIPLE, 16 * token_patch)
        self.snr_block_1, self.snr_block_2 = (
            SNRAwareBlock(self.N, blocks, nonlocal_blocks, num_layers, num_heads, head_dim, token_patch,
                          branch_width)
            for blocks in local
        )

    def denoise_context(self, x: Tensor, blur: Optional[Tensor] = None) -> Tensor:
        return snr_map(x, blur=blur)

    def denoise(self, stage: int, f: Tensor, context: Optional[Tensor]) -> Tensor:
        return (self.snr_block_1 if stage == 1 else self.snr_block_2)(f, context)


def _two_counts(value: Sequence[int]) -> Tuple[int, int]:
    """The (stage 1, stage 2) local residual-block counts, checked."""
    try:
        counts = tuple(value)
    except TypeError:
        counts = ()
    if len(counts) != 2 or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise ArgumentError(
            f"expected two non-negative integers [stage 1, stage 2], got {value!r}", argument="local_blocks"
        )
    return counts  # type: ignore[return-value]
