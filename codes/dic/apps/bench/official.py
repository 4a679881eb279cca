"""The "official-style" snr-decomp that ``dic bench`` times beside ours: the same network and
weights, computed as the official release computes it (docs/models.md §3):

- attention as the explicit L×L matrix softmax(q·kᵀ/√E) (masked keys at −1e9) times v, instead
  of ``F.scaled_dot_product_attention``;
- the SNR map per image on the host with ``cv2.blur`` and NumPy, then copied to the device,
  instead of one batched box blur on the device.

Both are small overrides of the models' own hooks (:meth:`MultiHeadSelfAttention.attend`,
:meth:`SNRDecomp.denoise_context`); the outputs equal ours to float rounding."""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ...models.layers import LUMA_WEIGHTS, MASKED_LOGIT, SNR_EPS, MultiHeadSelfAttention, TransformerLayer
from ...models.snr import SNRDecomp


def explicit_masked_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Optional[Tensor]) -> Tensor:
    """The official release's attention of B×heads×L×E tensors: the full L×L matrix
    softmax(q·kᵀ/√E), logits of keys with ``key_mask`` False (B×L) set to −1e9, materialised,
    then multiplied by v."""
    logits = torch.matmul(q / math.sqrt(q.shape[-1]), k.transpose(-2, -1))
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, None, :], MASKED_LOGIT)
    return torch.matmul(torch.softmax(logits, dim=-1), v)


def host_snr_map(noisy: Tensor, kernel_size: int = 5, blur: Optional[Tensor] = None) -> Tensor:
    """The SNR map as the official data loader makes it: per image on the host, ``cv2.blur``
    on 0–255 floats (or the precomputed ``blur`` of ``noisy``), NumPy arithmetic, then copied
    to ``noisy``'s device. B×1×H×W in [0, 1]."""
    weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    blurs = None if blur is None else blur.detach().float().cpu().numpy()
    maps = []
    for i, image in enumerate(noisy.detach().float().cpu().numpy()):
        hwc = np.ascontiguousarray(image.transpose(1, 2, 0)) * 255.0
        if blurs is None:
            blurred = cv2.blur(hwc, (kernel_size, kernel_size)) / 255.0
        else:
            blurred = np.ascontiguousarray(blurs[i].transpose(1, 2, 0))
        grey, grey_blurred = (hwc / 255.0) @ weights, blurred @ weights
        snr = grey_blurred / (np.abs(grey - grey_blurred) + SNR_EPS)
        maps.append(np.clip(snr / (snr.max() + SNR_EPS), 0.0, 1.0)[None])
    return torch.from_numpy(np.stack(maps).astype(np.float32)).to(noisy.device)


class ExplicitAttention(MultiHeadSelfAttention):
    """:class:`MultiHeadSelfAttention` (same parameters and names) attending through
    :func:`explicit_masked_attention`."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Optional[Tensor]) -> Tensor:
        return explicit_masked_attention(q, k, v, key_mask)


class OfficialStyleSNRDecomp(SNRDecomp):
    """snr-decomp with explicit attention in every transformer layer and the SNR map made on
    the host; same constructor, parameters and state-dict keys as :class:`SNRDecomp`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for layer in self.modules():
            if isinstance(layer, TransformerLayer):
                attn = layer.slf_attn
                layer.slf_attn = ExplicitAttention(attn.w_qs.in_features, attn.num_heads, attn.head_dim)

    @classmethod
    def from_model(cls, model: SNRDecomp) -> "OfficialStyleSNRDecomp":
        """A copy of ``model`` (same hyper-parameters, weights, entropy-coder tables, device,
        train/eval mode), computed the official way."""
        device = next(model.parameters()).device
        out = cls(**model.hparams)
        out.load_state_dict(model.state_dict())
        return out.to(device).train(model.training)

    def denoise_context(self, x: Tensor, blur: Optional[Tensor] = None) -> Tensor:
        return host_snr_map(x, blur=blur)


def has_official_style(model: nn.Module) -> bool:
    """Whether ``model`` has an official-style counterpart (snr-decomp only)."""
    return isinstance(model, SNRDecomp)
