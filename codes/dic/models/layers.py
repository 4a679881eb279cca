"""Building blocks of the SNR-aware joint network (ICME 2024): the SNR map of a noisy image, the
ReLU residual block, the masked-attention transformer over 4×4 feature patches and the
SNR-aware block that mixes a local and a non-local branch per pixel (docs/models.md §3).

Module and parameter names inside the transformer and the fusion follow the official release
(``layer_stack.{i}.slf_attn.w_qs`` …) so that converting its checkpoints is a short rename table.

The block comes in the two widths of the release's source trees (:data:`BranchWidth`,
docs/models.md §3): the MSE tree projects both branches to N/2 channels, the MS-SSIM and SIDD
trees keep all N and leave their projections unused.
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence, Tuple, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import conv3x3
from torch import Tensor

from ..errors import ArgumentError

# ITU-R BT.601 luma weights, used for the SNR map's grey image.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
SNR_EPS = 1e-4
MASK_THRESHOLD = 0.5
MASKED_LOGIT = -1e9

#: Channels of the SNR block's two branches: ``half`` (N/2, projected by ``conv3x3(N→N/2)``: the
#: MSE tree's network) or ``full`` (N, unprojected: the MS-SSIM and SIDD trees' network).
BranchWidth = Literal["half", "full"]
BRANCH_WIDTHS: Tuple[str, ...] = get_args(BranchWidth)


def box_blur(x: Tensor, kernel_size: int = 5) -> Tensor:
    """Per-channel ``kernel_size``² mean filter with OpenCV's default border (reflect without
    repeating the edge pixel), i.e. ``cv2.blur(x, (k, k))`` on every channel of a B×C×H×W batch."""
    pad = kernel_size // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    return F.avg_pool2d(padded, kernel_size, stride=1)


def luma(x: Tensor) -> Tensor:
    """Grey image ``0.299·R + 0.587·G + 0.114·B`` of a B×3×H×W batch, kept as B×1×H×W."""
    r, g, b = x.unbind(1)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(1)


def snr_map(noisy: Tensor, kernel_size: int = 5, blur: Optional[Tensor] = None) -> Tensor:
    """Signal-to-noise map in [0, 1] of a noisy B×3×H×W batch (docs/models.md §3): the blurred luma over
    the luma's distance to its blur, divided by each image's maximum. Returns B×1×H×W.
    ``blur``: the ``kernel_size``² mean filter of ``noisy`` when computed elsewhere (the official
    test loader blurs the uncropped photo, then crops); by default it is computed here."""
    blurred = luma(box_blur(noisy, kernel_size) if blur is None else blur)
    noise = (luma(noisy) - blurred).abs()
    snr = blurred / (noise + SNR_EPS)
    peak = snr.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return (snr / (peak + SNR_EPS)).clamp(0, 1)


class ResBlock(nn.Module):
    """``x + conv3x3(relu(conv3x3(x)))`` with N→N channels, no normalisation (official names
    ``conv1``, ``conv2``). Unlike CompressAI's ResidualBlock it uses a plain ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def masked_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Optional[Tensor]) -> Tensor:
    """Scaled dot-product attention of B×heads×L×E tensors where keys with ``key_mask`` False
    (B×L) take no part: their logits are −1e9, so they get exactly zero weight once any key is
    kept. When an image keeps no key at all every key weighs the same (uniform softmax), as in
    the official release where every logit is then −1e9."""
    if key_mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    keep = key_mask[:, None, None, :]
    # −1e9 overflows float16, and −65504 plus a negative logit would become −inf (NaN rows):
    # −1e4 still gives excluded keys exactly zero weight there.
    masked_logit = MASKED_LOGIT if torch.finfo(q.dtype).max > 1e10 else -1e4
    bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill(~keep, masked_logit)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    # −1e9 + logit rounds to −1e9 in float32 only for small logits: make "no key kept" exact.
    none_kept = ~key_mask.any(dim=1)[:, None, None, None]
    return torch.where(none_kept, v.mean(dim=-2, keepdim=True).expand_as(out), out)


class MultiHeadSelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with key masking and a residual connection: one
    LayerNorm feeds q, k and v (bias-free linears), output projection ``fc`` (official names)."""

    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.w_qs = nn.Linear(dim, inner, bias=False)
        self.w_ks = nn.Linear(dim, inner, bias=False)
        self.w_vs = nn.Linear(dim, inner, bias=False)
        self.fc = nn.Linear(inner, dim, bias=False)
        self.layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Optional[Tensor]) -> Tensor:
        """The attention proper, :func:`masked_attention`; a subclass may compute the same
        another way (``dic bench`` times the official release's explicit softmax(q·kᵀ)·v)."""
        return masked_attention(q, k, v, key_mask)

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        normed = self.layer_norm(x)
        q, k, v = (self._heads(w(normed)) for w in (self.w_qs, self.w_ks, self.w_vs))
        out = self.attend(q, k, v, key_mask)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return x + self.fc(out)


class PositionwiseFeedForward(nn.Module):
    """Pre-norm two-layer MLP (D → 2D → D, ReLU) with a residual connection (official names)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)
        self.layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.w_2(F.relu(self.w_1(self.layer_norm(x))))


class TransformerLayer(nn.Module):
    """Masked self-attention followed by the feed-forward network; no dropout."""

    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.slf_attn = MultiHeadSelfAttention(dim, num_heads, head_dim)
        self.pos_ffn = PositionwiseFeedForward(dim, 2 * dim)

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        return self.pos_ffn(self.slf_attn(x, key_mask))


class MaskedTransformer(nn.Module):
    """A stack of transformer layers over B×L×D tokens, no positional encoding."""

    def __init__(self, dim: int, num_layers: int, num_heads: int, head_dim: int):
        super().__init__()
        self.layer_stack = nn.ModuleList(
            TransformerLayer(dim, num_heads, head_dim) for _ in range(num_layers)
        )

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        for layer in self.layer_stack:
            x = layer(x, key_mask)
        return x


def to_tokens(x: Tensor, patch: int) -> Tensor:
    """Cut B×C×h×w into non-overlapping patch×patch tokens, ordered as ``F.unfold`` does
    (channel-major, then the patch positions): B×L×(C·patch²)."""
    return F.unfold(x, patch, stride=patch).transpose(1, 2)


def from_tokens(tokens: Tensor, size: Sequence[int], patch: int) -> Tensor:
    """Inverse of :func:`to_tokens`: B×L×(C·patch²) back to B×C×h×w."""
    return F.fold(tokens.transpose(1, 2), tuple(size), patch, stride=patch)


def token_key_mask(snr: Tensor, patch: int, threshold: float = MASK_THRESHOLD) -> Tensor:
    """Boolean B×L mask of the tokens that may serve as keys: those whose patch has a mean SNR
    above ``threshold``. ``snr`` is the B×1×h×w map at the features' size."""
    return to_tokens(snr, patch).mean(dim=2) > threshold


class FeatureFusion(nn.Module):
    """Condition fusion ``f + mlp_beta(LeakyReLU(mlp_shared(F)))`` (official names)."""

    def __init__(self, cond_channels: int, channels: int):
        super().__init__()
        self.mlp_shared = nn.Sequential(conv3x3(cond_channels, 2 * channels), nn.LeakyReLU(0.01))
        self.mlp_beta = conv3x3(2 * channels, channels)

    def forward(self, f: Tensor, cond: Tensor) -> Tensor:
        return f + self.mlp_beta(self.mlp_shared(cond))


class SNRAwareBlock(nn.Module):
    """SNR-aware feature denoiser at one encoder stage (docs/models.md §3): a local branch of ReLU
    residual blocks and a non-local branch (residual blocks, then a masked-attention transformer
    over ``patch``×``patch`` tokens) mixed per pixel by the SNR map, then fused into ``f``.

    ``branch_width`` ``half``: each branch ends in a ``conv3x3(N→N/2)`` projection (``local_proj``,
    ``nonlocal_proj``; the official ``*_CC``) and tokens hold ``N/2·patch²`` values. ``full``: the
    branches keep N channels; the projections exist as ``conv3x3(N→N)`` only so that the official
    files, which hold them, load. They are never applied and are frozen (``requires_grad``
    False): the releases never produce a gradient for them either, and a frozen parameter keeps
    DDP and the optimisers from waiting for one."""

    def __init__(
        self,
        N: int,
        local_blocks: int,
        nonlocal_blocks: int = 1,
        num_layers: int = 6,
        num_heads: int = 12,
        head_dim: int = 64,
        patch: int = 4,
        branch_width: BranchWidth = "half",
    ):
        super().__init__()
        width = branch_channels(N, branch_width)
        self.patch = patch
        self.project = branch_width == "half"
        self.local_branch = nn.Sequential(*(ResBlock(N) for _ in range(local_blocks)))
        self.local_proj = conv3x3(N, width)
        self.nonlocal_branch = nn.Sequential(*(ResBlock(N) for _ in range(nonlocal_blocks)))
        self.nonlocal_proj = conv3x3(N, width)
        if not self.project:
            for p in (*self.local_proj.parameters(), *self.nonlocal_proj.parameters()):
                p.requires_grad_(False)
        self.transformer = MaskedTransformer(width * patch * patch, num_layers, num_heads, head_dim)
        self.fusion = FeatureFusion(width, N)

    def branches(self, f: Tensor) -> Tuple[Tensor, Tensor]:
        """The local branch ``L`` and the transformer's input ``G``, projected when the width is
        ``half``."""
        local, g = self.local_branch(f), self.nonlocal_branch(f)
        if self.project:
            local, g = self.local_proj(local), self.nonlocal_proj(g)
        return local, g

    def forward(self, f: Tensor, snr: Tensor) -> Tensor:
        """``f``: B×N×h×w features (h, w multiples of the patch); ``snr``: the B×1×H×W SNR map
        at any resolution, resized here by nearest neighbour."""
        size = f.shape[-2:]
        m = F.interpolate(snr, size=size, mode="nearest")
        local, g = self.branches(f)
        tokens = self.transformer(to_tokens(g, self.patch), token_key_mask(m, self.patch))
        t = from_tokens(tokens, size, self.patch)
        mixed = t * (1 - m) + local * m
        return self.fusion(f, mixed)


def branch_channels(N: int, branch_width: str) -> int:
    """Channels ``d`` of the two branches of an SNR block of width ``N``: N/2 or N."""
    if branch_width not in BRANCH_WIDTHS:
        raise ArgumentError(f"expected one of {', '.join(BRANCH_WIDTHS)}, got {branch_width!r}",
                            argument="branch_width")
    return N // 2 if branch_width == "half" else N
