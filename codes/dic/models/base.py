"""Shared codec logic: CompressAI's Cheng2020-anchor entropy model and synthesis fed by a
model-specific analysis (``encode``), padding to a multiple of 64 and cropping back, and the
two-stage joint encoder with its clean-image guidance branch (docs/models.md §1–2).

Only ``encode`` differs between models: the hyperprior, the autoregressive context model, the
rANS coding and ``g_s`` are Cheng2020-anchor's. Both coding directions go through one hook,
:meth:`CodecBase.latent_codec` (:mod:`.latent_codec`), whose serial coding of ``y`` runs in the
fast loop of :mod:`.fast_coding` (the same bitstream as CompressAI's own loop).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import MaskedConv2d
from compressai.models import Cheng2020Anchor
from torch import Tensor

from ..errors import ArgumentError, BitstreamError, DataError
from .checkerboard import CONTEXTS, Context, check_context, checkerboard_entropy_parameters, context_model
from .latent_codec import LatentCodec
from .precision import Precision, resolve_precision, transform_precision

PAD_MULTIPLE = 64
QUALITIES = range(1, 7)
DEFAULT_QUALITY = 6


def default_width(quality: int) -> int:
    """Channel width N of both official releases: 128 for quality 1–3, 192 for 4–6."""
    return 128 if quality <= 3 else 192


def resolve_width(quality: Optional[int], N: Optional[int]) -> Tuple[Optional[int], int]:
    """Checks ``quality`` and ``N`` and fills the defaults: N from the quality; quality 6 when
    neither is given; quality stays None when only N is given (e.g. a converted checkpoint)."""
    if quality is not None and (isinstance(quality, bool) or quality not in QUALITIES):
        raise ArgumentError(f"expected an integer 1–6, got {quality!r}", argument="quality")
    if N is None:
        quality = DEFAULT_QUALITY if quality is None else quality
        N = default_width(quality)
    check_positive_int("N", N)
    return quality, int(N)


def check_positive_int(key: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer; an ArgumentError naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArgumentError(f"expected a positive integer, got {value!r}", argument=key)
    return value


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad a B×C×H×W batch at the bottom and right, repeating the border pixels, so that H and
    W become multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def crop_to_multiple(x: Tensor, multiple: int = PAD_MULTIPLE) -> Tensor:
    """Centre-crop a …×H×W image to the largest multiples of ``multiple`` (the official test
    protocol). The evaluator applies it before coding when asked to; models pad otherwise."""
    h, w = x.shape[-2:]
    ch, cw = h - h % multiple, w - w % multiple
    if ch == 0 or cw == 0:
        raise DataError(f"image of {h}×{w} px is smaller than {multiple} px: cannot crop to a multiple")
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def pad_like(blur: Optional[Tensor], noisy: Tensor, multiple: int) -> Optional[Tensor]:
    """A precomputed blur of ``noisy`` padded as the model pads ``noisy``; None stays None."""
    if blur is None:
        return None
    if tuple(blur.shape) != tuple(noisy.shape):
        raise DataError(f"blur: shape {tuple(blur.shape)} differs from noisy {tuple(noisy.shape)}")
    return pad_to_multiple(blur, multiple)


def check_image(x: Tensor, what: str = "noisy") -> Tuple[int, int]:
    """(H, W) of a B×3×H×W float batch; a DataError describing the tensor otherwise."""
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise DataError(f"{what}: expected a float B×3×H×W image tensor, got {shape}")
    return int(x.shape[-2]), int(x.shape[-1])


def apply_context_masks(model: nn.Module) -> None:
    """Zero the masked taps of every context model (CompressAI's ``MaskedConv2d``) in place.
    CompressAI masks them only when ``forward`` runs, so the stored weights of a model differ
    before and after its first forward pass although it computes the same; this makes them
    canonical. Changes no output."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, MaskedConv2d):
                module.weight.mul_(module.mask)


class CodecBase(Cheng2020Anchor):
    """Cheng2020-anchor whose latent ``y`` comes from :meth:`encode`. Any H×W is accepted:
    inputs are padded to ``pad_multiple`` (replicate border) and outputs cropped back.

    Args:
        quality: quality level 1–6; sets N when N is not given (128 for 1–3, 192 for 4–6;
            6 when neither is given) and, in training, the default λ.
        N: channel width of the transforms and the entropy model.
        context: the entropy model's spatial context: ``serial`` (Cheng2020-anchor's
            raster-order 5×5 masked convolution, the papers') or ``checkerboard`` (two passes,
            He et al., docs/models.md §5).

    Registered subclasses record their constructor arguments in :attr:`hparams`
    (:func:`.registry.register_model`)."""

    name = ""
    pad_multiple = PAD_MULTIPLE
    # Coding of y, both directions: our coders (the fast serial loop of dic.models.fast_coding, the
    # same bitstream as CompressAI's; or the checkerboard coder); set False on an instance for
    # CompressAI's own (_compress_ar/_decompress_ar; CheckerboardLatentCodec).
    fast_coding = True

    def __init__(self, quality: Optional[int] = None, N: Optional[int] = None, context: Context = CONTEXTS[0]):
        quality, N = resolve_width(quality, N)
        context = check_context(context)
        super().__init__(N=N)
        self.quality = quality
        self.context = context
        if context != CONTEXTS[0]:
            self.context_prediction = context_model(N, context)

    # --- analysis: the only part that differs between models -------------------------------
    def encode(self, x: Tensor, gt: Optional[Tensor] = None, blur: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Latent ``y`` of a padded noisy batch, plus the features the guidance loss needs.
        ``blur``: the 5×5 mean filter of ``x`` when it was computed elsewhere (models without an
        SNR map ignore it)."""
        raise NotImplementedError

    # --- training / likelihood path ----------------------------------------------------------
    def forward(self, noisy: Tensor, gt: Optional[Tensor] = None, blur: Optional[Tensor] = None) -> Dict[str, Any]:
        h, w = check_image(noisy)
        if gt is not None and tuple(gt.shape) != tuple(noisy.shape):
            raise DataError(f"gt: shape {tuple(gt.shape)} differs from noisy {tuple(noisy.shape)}")
        x = pad_to_multiple(noisy, self.pad_multiple)
        clean = None if gt is None else pad_to_multiple(gt, self.pad_multiple)
        features = self.encode(x, clean, blur=pad_like(blur, noisy, self.pad_multiple))
        out = self._code_latent(features["y"])
        out["x_hat"] = out["x_hat"][..., :h, :w]
        out.update(features)
        return out

    def _code_latent(self, y: Tensor) -> Dict[str, Any]:
        """Cheng2020-anchor from ``y`` on: noisy (training) or rounded (eval) ``y_hat``, its
        Gaussian likelihoods from hyperprior + context, the factorized prior on ``z``, and
        the synthesis ``g_s(y_hat)``. The checkerboard context computes them as its coder
        does (:func:`.checkerboard.checkerboard_entropy_parameters`)."""
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        hyper = self.h_s(z_hat)
        if self.context == "checkerboard":
            y_hat, scales_hat, means_hat = checkerboard_entropy_parameters(self, y, hyper)
        else:
            y_hat = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
            context = self.context_prediction(y_hat)
            params = self.entropy_parameters(torch.cat((hyper, context), dim=1))
            scales_hat, means_hat = params.chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales_hat, means=means_hat)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # --- real bitstreams ---------------------------------------------------------------------
    def latent_codec(self, exact: bool = True) -> LatentCodec:
        """The one coding hook, used by :meth:`compress` and :meth:`decompress` alike: ``z``,
        the hyper-prior and the ``y`` coder of the model's ``context`` (serial or checkerboard),
        in exact fixed point (``exact``, portable) or in float (ours, or CompressAI's when
        ``fast_coding`` is off)."""
        return LatentCodec(self, fast=self.fast_coding, exact=exact)

    @torch.no_grad()
    def compress(self, noisy: Tensor, blur: Optional[Tensor] = None, exact: bool = True,
                 precision: Precision = "float32") -> Dict[str, Any]:
        """rANS strings of a noisy batch: ``{"strings": [y_strings, z_strings], "shape": (H, W),
        "symbols": [y_symbols, z_symbols]}`` with the original (unpadded) size and each latent's
        integer symbols (B×C×h×w int32, CPU; what :meth:`decompress` returns for intact strings).
        Call :meth:`update` after training first.

        ``blur`` (``forward`` too): the 5×5 mean filter of ``noisy`` computed elsewhere, e.g. on
        the uncropped photo as the official test loader does (docs/reproducing.md); by default
        the SNR-aware model blurs ``noisy`` itself. ``exact``: the portable fixed-point entropy
        path (docs/portability.md); False for the float path of ``.dic`` format version 2.
        ``precision``: the analysis's arithmetic (:mod:`.precision`: ``float32``, ``bfloat16``,
        ``float16`` on CUDA, ``auto``); ``y`` is float32 either way and the entropy path is
        unchanged (docs/precision.md)."""
        h, w = check_image(noisy)
        dtype = resolve_precision(precision, self._device())
        y = self._analyse(pad_to_multiple(noisy, self.pad_multiple), pad_like(blur, noisy, self.pad_multiple), dtype)
        strings, symbols = self.latent_codec(exact).compress(y)
        return {"strings": strings, "shape": (h, w), "symbols": symbols}

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _analyse(self, x: Tensor, blur: Optional[Tensor] = None, precision: Precision = "float32") -> Tensor:
        """``y = encode(x)["y"]`` of a padded batch with the analysis in ``precision``
        (autocast), as float32. A low precision on the CPU is fed channels_last: oneDNN's bfloat16
        convolutions reorder every contiguous input, which doubled the analysis's time
        (docs/precision.md); float32 keeps its layout (no gain measured on every CPU)."""
        dtype = resolve_precision(precision, self._device())
        if dtype != torch.float32 and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with transform_precision(dtype, self._device()):
            y = self.encode(x, blur=blur)["y"]
        return y.float().contiguous()

    def latent_shape(self, shape: Sequence[int]) -> Tuple[int, int]:
        """Size of ``z`` for an H×W image: the padded size over 64."""
        factor = 2 ** 6
        h, w = (math.ceil(s / self.pad_multiple) * self.pad_multiple for s in shape)
        return h // factor, w // factor

    @torch.no_grad()
    def decompress(self, strings: Sequence[Sequence[bytes]], shape: Sequence[int],
                   verify: Optional[Callable[[str, Tensor], None]] = None, exact: bool = True,
                   precision: Precision = "float32") -> Dict[str, Any]:
        """Decode the strings of :meth:`compress` back to a B×3×H×W image; needs nothing else.
        Returns ``{"x_hat", "symbols": [y_symbols, z_symbols]}``. ``verify(name, symbols)`` is
        called with each latent's decoded symbols before the next stage runs (see
        :meth:`.LatentCodec.decompress`); it may raise to stop a decoding that went wrong.
        ``exact`` must be what :meth:`compress` used. ``precision``: the synthesis's arithmetic
        (:mod:`.precision`), the decoder's own choice: the symbols do not depend on it."""
        h, w = _check_shape(shape)
        dtype = resolve_precision(precision, self._device())  # refused before any decoding
        if not isinstance(strings, (list, tuple)) or len(strings) != 2:
            raise BitstreamError("expected two string lists [y_strings, z_strings]")
        y_strings, z_strings = (list(s) for s in strings)
        if len(y_strings) != len(z_strings) or not y_strings:
            raise BitstreamError(
                f"expected as many y strings as z strings (≥ 1), got {len(y_strings)} and {len(z_strings)}"
            )
        if not all(isinstance(s, (bytes, bytearray)) for s in y_strings + z_strings):
            raise BitstreamError("expected the strings to be bytes")
        y_hat, symbols = self.latent_codec(exact).decompress([y_strings, z_strings], self.latent_shape((h, w)), verify)
        return {"x_hat": self._synthesize(y_hat, dtype)[..., :h, :w], "symbols": symbols}

    def _synthesize(self, y_hat: Tensor, precision: Precision = "float32") -> Tensor:
        """``g_s(ŷ)`` clamped to [0, 1], float32; on the CPU fed channels_last (oneDNN's faster
        layout there: 0–20 % off ``g_s`` at N=192, docs/performance.md; the same values up to
        float rounding, whatever the thread count). ``precision``: :mod:`.precision` (autocast)."""
        dtype = resolve_precision(precision, y_hat.device)
        if y_hat.device.type == "cpu":
            y_hat = y_hat.contiguous(memory_format=torch.channels_last)
        with transform_precision(dtype, y_hat.device):
            x_hat = self.g_s(y_hat)
        return x_hat.float().clamp_(0, 1).contiguous()


def _check_shape(shape: Sequence[int]) -> Tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise BitstreamError(f"shape: expected (H, W), got {shape!r}") from None
    if h <= 0 or w <= 0:
        raise BitstreamError(f"shape: expected positive (H, W), got {(h, w)}")
    return h, w


class JointCodecBase(CodecBase):
    """Cheng2020-anchor with ``g_a`` split after layer 2 into ``g_a_block1`` (1/4 resolution)
    and ``g_a_block2`` (1/16), a feature denoiser after each on the noisy path, and a guidance
    path pushing the clean image through the same two stages without denoisers (docs/models.md §2)."""

    def __init__(self, quality: Optional[int] = None, N: Optional[int] = None, context: Context = CONTEXTS[0]):
        super().__init__(quality, N, context)
        layers = list(self.g_a)  # CompressAI's seven layers, split as the official release does
        self.g_a_block1 = nn.Sequential(*layers[:3])
        self.g_a_block2 = nn.Sequential(*layers[3:])
        del self.g_a

    def denoise_context(self, x: Tensor, blur: Optional[Tensor] = None) -> Optional[Tensor]:
        """Whatever the denoisers need from the padded noisy input (and its precomputed
        ``blur``, when given) besides the features."""
        return None

    def denoise(self, stage: int, f: Tensor, context: Optional[Tensor]) -> Tensor:
        """Denoised features after stage 1 or 2."""
        raise NotImplementedError

    def encode(self, x: Tensor, gt: Optional[Tensor] = None, blur: Optional[Tensor] = None) -> Dict[str, Tensor]:
        context = self.denoise_context(x) if blur is None else self.denoise_context(x, blur)
        y_inter = self.denoise(1, self.g_a_block1(x), context)
        y = self.denoise(2, self.g_a_block2(y_inter), context)
        out = {"y": y, "y_inter": y_inter}
        if gt is not None:
            out["y_inter_gt"] = self.g_a_block1(gt)
            out["y_gt"] = self.g_a_block2(out["y_inter_gt"])
        return out
