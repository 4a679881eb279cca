"""The two-pass checkerboard context model of He et al. (CVPR 2021), ``context: checkerboard``
(docs/models.md §5): the same networks with the serial 5×5 context model replaced.

The latent positions split by parity: *anchors* ((h + w) even, CompressAI's ``anchor_parity
= "even"``) are coded from the hyper-prior alone (context exactly zero, bias included), then
*non-anchors* from the hyper-prior and a 5×5 checkerboard-masked convolution
(:class:`CheckerboardContext`, CompressAI's ``CheckerboardMaskedConv2d``) of the decoded
anchors. Each pass is fully parallel.

Three pieces, which compute the same thing:

- :func:`checkerboard_entropy_parameters`, the likelihood path of ``forward``: in training,
  ``ŷ = y + u`` (uniform noise, as the serial models train) and one pass of the entropy
  parameters with the context kept at non-anchors only (a non-anchor's taps see anchors only);
  in eval mode the coder's two passes exactly: anchors rounded around their means, then the
  non-anchors' context from those rounded anchors;
- :class:`CheckerboardCoder`, the ``y`` coder :mod:`.latent_codec` plugs into ``compress`` and
  ``decompress``: both passes on the CPU in float32 with one thread (whatever the model's
  device, so encoder and decoder compute bit-identical probabilities, as the serial coder
  does), each pass one batched computation over all positions of its parity, one
  ``encode_with_indexes`` call for the image and one ``decode_stream`` call per pass, into one
  string per image (anchors first);
- :class:`CompressAICheckerboardCoder`, CompressAI's ``CheckerboardLatentCodec`` on the same
  weights behind the same interface, for comparison (``dic bench``); its two strings travel as
  one (:func:`join_strings`).
"""
from __future__ import annotations

import struct
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.ans import RansDecoder, RansEncoder
from compressai.latent_codecs import CheckerboardLatentCodec, GaussianConditionalLatentCodec
from compressai.layers import CheckerboardMaskedConv2d
from torch import Tensor

from ..conventions import CONTEXTS, Context
from ..errors import ArgumentError, BitstreamError, CheckpointError, DicError
from .fast_coding import rans_tables, single_thread

__all__ = [
    "CONTEXTS", "Context", "CheckerboardCoder", "CheckerboardContext", "CompressAICheckerboardCoder", "anchor_mask",
    "anchor_positions", "check_context", "checkerboard_entropy_parameters", "context_model", "gather_taps",
    "join_strings", "planar", "split_strings",
]

# CONTEXTS (the values of the models' ``context`` hyper-parameter, the first the default) and
# its annotation Context live in dic.conventions, importable without torch.


def anchor_mask(height: int, width: int, device: Any = None) -> Tensor:
    """H×W booleans, True at the anchors: the positions with (h + w) even."""
    h = torch.arange(height, device=device)[:, None]
    w = torch.arange(width, device=device)[None, :]
    return (h + w) % 2 == 0


class CheckerboardContext(CheckerboardMaskedConv2d):
    """CompressAI's 5×5 checkerboard-masked convolution (type A: a tap sees only positions of the
    other parity). Its ``mask`` buffer is part of the state dict, as the serial model's is; a
    state dict whose mask differs (a serial model's) is refused instead of silently turning
    this into a serial context model."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        mask = state_dict.get(prefix + "mask")
        if torch.is_tensor(mask) and mask.shape == self.mask.shape and not torch.equal(mask.to(self.mask), self.mask):
            raise CheckpointError(
                f"'{prefix}mask': these weights were trained with another context model (a serial "
                "one); they cannot load into a model with context 'checkerboard'")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def checkerboard_entropy_parameters(model: nn.Module, y: Tensor, hyper: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """``(ŷ, scales, means)`` of the checkerboard model for a B×M×H×W latent and its hyper-prior
    features ``h_s(ẑ)``: see the module docstring (training: noise; eval: the coder's two
    passes with rounding)."""
    anchors = anchor_mask(*y.shape[-2:], device=y.device)
    if model.training:
        y_hat = model.gaussian_conditional.quantize(y, "noise")
        context = model.context_prediction(y_hat).masked_fill(anchors, 0.0)
        scales, means = model.entropy_parameters(torch.cat((hyper, context), dim=1)).chunk(2, 1)
        return y_hat, scales, means
    zero = hyper.new_zeros((hyper.shape[0], model.context_prediction.out_channels) + tuple(hyper.shape[2:]))
    scales_a, means_a = model.entropy_parameters(torch.cat((hyper, zero), dim=1)).chunk(2, 1)
    y_hat_a = (torch.round(y - means_a) + means_a).masked_fill(~anchors, 0.0)
    context = model.context_prediction(y_hat_a).masked_fill(anchors, 0.0)
    scales_n, means_n = model.entropy_parameters(torch.cat((hyper, context), dim=1)).chunk(2, 1)
    scales = torch.where(anchors, scales_a, scales_n)
    means = torch.where(anchors, means_a, means_n)
    y_hat = torch.where(anchors, y_hat_a, torch.round(y - means_n) + means_n)
    return y_hat, scales, means


# --------------------------------------------------------------------------------------------
def _pointwise_layers(model: nn.Module) -> List[Tuple[Tensor, Tensor, Optional[float]]]:
    """``entropy_parameters`` as CPU float32 [(weight E_out×E_in, bias, slope after it)]."""
    layers: List[Tuple[Tensor, Tensor, Optional[float]]] = []
    for module in model.entropy_parameters:
        if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1:
            bias = module.bias if module.bias is not None else torch.zeros(module.out_channels)
            layers.append((module.weight.detach().to("cpu", torch.float32)[:, :, 0, 0].contiguous(),
                           bias.detach().to("cpu", torch.float32), None))
        elif isinstance(module, (nn.LeakyReLU, nn.ReLU)) and layers and layers[-1][2] is None:
            slope = float(module.negative_slope) if isinstance(module, nn.LeakyReLU) else 0.0
            layers[-1] = (layers[-1][0], layers[-1][1], slope)
        else:
            raise DicError(f"{type(model).__name__}: the checkerboard coder needs entropy_parameters made of "
                           f"1×1 convolutions and (Leaky)ReLUs, found {type(module).__name__}")
    return layers


class CheckerboardCoder:
    """Two-pass rANS coding of one image's ``y`` given its hyper-prior features, the
    :class:`~.fast_coding.ContextCoder` interface: ``compress(y, hyper) -> (string, ŷ,
    symbols)``, ``decompress(string, hyper) -> (ŷ, symbols)``, M×H×W tensors on the CPU
    (float32 and int32; the symbols are ``round(y − μ)``, what ``.dic`` files checksum)."""

    def __init__(self, model: nn.Module):
        ctx = model.context_prediction
        if not isinstance(ctx, CheckerboardMaskedConv2d):
            raise DicError(f"{type(model).__name__}: its context model is not a checkerboard one")
        gc = model.gaussian_conditional
        cpu = dict(device="cpu", dtype=torch.float32)
        with torch.no_grad():
            weight = (ctx.weight.detach() * ctx.mask).to(**cpu)  # C2×M×k×k
            self.k, self.p, self.M = ctx.kernel_size[0], ctx.kernel_size[0] // 2, ctx.in_channels
            self.taps = [(int(i), int(j)) for i, j in torch.nonzero(ctx.mask[0, 0].cpu())]
            self.ctx_w = torch.stack([weight[:, :, i, j] for i, j in self.taps], 1).reshape(
                weight.shape[0], -1).t().contiguous()  # (T·M)×C2, rows ordered (tap, channel)
            self.ctx_b = (ctx.bias.detach() if ctx.bias is not None else torch.zeros(ctx.out_channels)).to(**cpu)
            layers = _pointwise_layers(model)
            first_w, self.first_b, self.first_slope = layers[0]
            self.P = first_w.shape[1] - weight.shape[0]  # hyper-prior channels
            self.hyper_w = first_w[:, : self.P].t().contiguous()
            self.ctx_first_w = first_w[:, self.P :].t().contiguous()
            self.rest = [(w.t().contiguous(), b, s) for w, b, s in layers[1:]]
            self.scale_bound = float(gc.lower_bound_scale.bound.detach().float().reshape(-1)[0])
            self.scale_edges = gc.scale_table.detach().to(**cpu)[:-1].contiguous()
            self.cdfs, self.cdf_lengths, self.offsets = rans_tables(gc)

    # --- the two passes ---------------------------------------------------------------------
    def _params(self, hyper_rows: Tensor, context: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """(scales, means), n×M each, from n rows of hyper-prior features and of context
        (None: zero context, the anchors)."""
        a = torch.addmm(self.first_b, hyper_rows, self.hyper_w)
        if context is not None:
            a = torch.addmm(a, context, self.ctx_first_w)
        if self.first_slope is not None:
            a = F.leaky_relu(a, self.first_slope)
        for w, b, slope in self.rest:
            a = torch.addmm(b, a, w)
            if slope is not None:
                a = F.leaky_relu(a, slope)
        return a[:, : self.M], a[:, self.M :]

    def _context(self, anchors_hat: Tensor, positions: Tensor, H: int, W: int) -> Tensor:
        """Context features (n×C2) at ``positions`` from the decoded anchors (H×W×M, zero at the
        non-anchors): the masked taps gathered from a zero-padded copy, one matrix product."""
        return torch.addmm(self.ctx_b, gather_taps(anchors_hat, positions, self.taps, self.p), self.ctx_w)

    def _indexes(self, scales: Tensor) -> Tensor:
        """CompressAI's ``build_indexes`` (table entries, all but the last, below the bounded scale)."""
        return torch.searchsorted(self.scale_edges, torch.clamp_min(scales, self.scale_bound)).to(torch.int32)

    def _hyper_rows(self, hyper: Tensor) -> Tensor:
        P, H, W = hyper.shape
        return hyper.detach().to("cpu", torch.float32).permute(1, 2, 0).reshape(H * W, P).contiguous()

    # --- coding -----------------------------------------------------------------------------
    def compress(self, y: Tensor, hyper: Tensor) -> Tuple[bytes, Tensor, Tensor]:
        """rANS string of ``y`` (M×H×W) given ``hyper`` (P×H×W, the output of ``h_s``), the
        quantised ``ŷ`` and its integer symbols (M×H×W float32 and int32, on the CPU)."""
        M, H, W = y.shape
        with torch.no_grad(), single_thread():
            rows = self._hyper_rows(hyper)
            y_rows = y.detach().to("cpu", torch.float32).permute(1, 2, 0).reshape(H * W, M)
            anchors, others = anchor_positions(H, W)
            y_hat = torch.zeros(H * W, M)
            symbols = torch.zeros(H * W, M, dtype=torch.int32)
            indexes = []
            for positions, first in ((anchors, True), (others, False)):
                context = None if first else self._context(y_hat.view(H, W, M), positions, H, W)
                scales, means = self._params(rows[positions], context)
                q = torch.round(y_rows[positions] - means)
                y_hat[positions] = q + means
                symbols[positions] = q.to(torch.int32)
                indexes.append(self._indexes(scales))
            order = torch.cat((anchors, others))
            string = RansEncoder().encode_with_indexes(
                symbols[order].reshape(-1).tolist(), torch.cat(indexes).reshape(-1).tolist(),
                self.cdfs, self.cdf_lengths, self.offsets)
        return string, planar(y_hat, H, W), planar(symbols, H, W)

    def decompress(self, string: bytes, hyper: Tensor) -> Tuple[Tensor, Tensor]:
        """``ŷ`` and its integer symbols (M×H×W float32 and int32, on the CPU) decoded from
        ``string`` given ``hyper`` (P×H×W). Guard the string with zero padding first
        (:func:`dic.models.latent_codec.guard_string`)."""
        _, H, W = hyper.shape
        M = self.M
        with torch.no_grad(), single_thread():
            rows = self._hyper_rows(hyper)
            anchors, others = anchor_positions(H, W)
            y_hat = torch.zeros(H * W, M)
            symbols = torch.zeros(H * W, M, dtype=torch.int32)
            decoder = RansDecoder()
            decoder.set_stream(string)
            for positions, first in ((anchors, True), (others, False)):
                context = None if first else self._context(y_hat.view(H, W, M), positions, H, W)
                scales, means = self._params(rows[positions], context)
                values = decoder.decode_stream(self._indexes(scales).reshape(-1).tolist(), self.cdfs,
                                               self.cdf_lengths, self.offsets)
                q = torch.tensor(values, dtype=torch.int32).view(len(positions), M)
                symbols[positions] = q
                y_hat[positions] = q.to(torch.float32) + means
        return planar(y_hat, H, W), planar(symbols, H, W)


def anchor_positions(H: int, W: int) -> Tuple[Tensor, Tensor]:
    """Flat raster indexes of the anchors and of the non-anchors."""
    flat = anchor_mask(H, W).reshape(-1)
    return torch.nonzero(flat).reshape(-1), torch.nonzero(~flat).reshape(-1)


def gather_taps(anchors_hat: Tensor, positions: Tensor, taps: Sequence[Tuple[int, int]], p: int) -> Tensor:
    """The context window of each of ``positions`` (flat raster indexes): the values of the
    H×W×M ``anchors_hat`` (zero at the non-anchors) at ``taps`` (kernel row, column; the kernel
    centred with half width ``p``), zero-padded, as n × (T·M) rows ordered (tap, channel)."""
    H, W, M = anchors_hat.shape
    padded = F.pad(anchors_hat.permute(2, 0, 1), (p, p, p, p)).permute(1, 2, 0).reshape(-1, M)
    h, w = positions // W, positions % W
    offsets = torch.tensor([i * (W + 2 * p) + j for i, j in taps])
    index = (h * (W + 2 * p) + w)[:, None] + offsets[None, :]  # n×T
    return padded[index.reshape(-1)].reshape(len(positions), len(taps) * M)


def planar(rows: Tensor, H: int, W: int) -> Tensor:
    """(H·W)×M rows as an M×H×W tensor."""
    return rows.view(H, W, -1).permute(2, 0, 1).contiguous()


# --------------------------------------------------------------------------------------------
def join_strings(strings: Sequence[bytes]) -> bytes:
    """Several strings as one: each preceded by its length (4 bytes, big-endian)."""
    return b"".join(struct.pack(">I", len(s)) + bytes(s) for s in strings)


def split_strings(data: bytes, count: int) -> List[bytes]:
    """The ``count`` strings :func:`join_strings` joined (trailing bytes, e.g. a guard's zero
    padding, are ignored); a BitstreamError when ``data`` is too short for them."""
    out, at = [], 0
    for _ in range(count):
        if at + 4 > len(data):
            raise BitstreamError("joined strings: truncated length prefix")
        (n,) = struct.unpack_from(">I", data, at)
        if at + 4 + n > len(data):
            raise BitstreamError("joined strings: a string runs past the end")
        out.append(bytes(data[at + 4 : at + 4 + n]))
        at += 4 + n
    return out


class _HyperFirst(CheckerboardLatentCodec):
    """CompressAI's checkerboard codec feeding ``entropy_parameters`` (hyper-prior, context) in
    that order, as Cheng2020-anchor does; CompressAI's own checkerboard model puts the context
    first."""

    def merge(self, context: Tensor, hyper: Tensor) -> Tensor:  # type: ignore[override]
        return torch.cat((hyper, context), dim=1)


class CompressAICheckerboardCoder:
    """CompressAI's own two-pass coder (``compressai.latent_codecs.CheckerboardLatentCodec``,
    ``anchor_parity="even"``, fed hyper-prior first) over the model's modules, on the model's
    device, for latents of even width (ours always are: a multiple of 4), behind
    :class:`CheckerboardCoder`'s interface. Its two strings (anchors, non-anchors) travel as
    one (:func:`join_strings`); the symbols are recovered as ``round(ŷ − μ)`` with ``μ`` from
    :class:`CheckerboardCoder`'s passes over the decoded ``ŷ`` (equal to CompressAI's means to
    float rounding, far below the half step that would change a rounded value)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.codec = _HyperFirst(
            latent_codec={"y": GaussianConditionalLatentCodec(gaussian_conditional=model.gaussian_conditional)},
            entropy_parameters=model.entropy_parameters, context_prediction=model.context_prediction,
            anchor_parity="even")
        self.ours = CheckerboardCoder(model)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def compress(self, y: Tensor, hyper: Tensor) -> Tuple[bytes, Tensor, Tensor]:
        device = self._device()
        with torch.no_grad():
            out = self.codec.compress(y[None].to(device), hyper[None].to(device))
        string = join_strings([s[0] for s in out["strings"]])
        y_hat = out["y_hat"][0].to("cpu", torch.float32)
        return string, y_hat, self._symbols(y_hat, hyper)

    def decompress(self, string: bytes, hyper: Tensor) -> Tuple[Tensor, Tensor]:
        device = self._device()
        _, H, W = hyper.shape
        strings = [[s] for s in split_strings(string, 2)]
        with torch.no_grad():
            out = self.codec.decompress(strings, (self.model.M, H, W), hyper[None].to(device))
        y_hat = out["y_hat"][0].to("cpu", torch.float32)
        return y_hat, self._symbols(y_hat, hyper)

    def _symbols(self, y_hat: Tensor, hyper: Tensor) -> Tensor:
        """``round(ŷ − μ)`` (M×H×W int32), μ from the two passes over ``ŷ``'s anchors."""
        ours = self.ours
        M, H, W = y_hat.shape
        with torch.no_grad(), single_thread():
            rows = ours._hyper_rows(hyper)
            anchors, others = anchor_positions(H, W)
            y_rows = y_hat.permute(1, 2, 0).reshape(H * W, M)
            anchors_only = torch.zeros(H * W, M)
            anchors_only[anchors] = y_rows[anchors]
            means = torch.zeros(H * W, M)
            means[anchors] = ours._params(rows[anchors], None)[1]
            means[others] = ours._params(rows[others], ours._context(anchors_only.view(H, W, M), others, H, W))[1]
        return planar(torch.round(y_rows - means).to(torch.int32), H, W)


def check_context(value: Any) -> str:
    """``value`` checked as the models' ``context`` hyper-parameter (one of :data:`CONTEXTS`)."""
    if not isinstance(value, str) or value not in CONTEXTS:
        raise ArgumentError(f"expected one of {', '.join(CONTEXTS)}, got {value!r}", argument="context")
    return value


def context_model(N: int, context: str) -> Optional[nn.Conv2d]:
    """A fresh context model for width ``N``: the checkerboard one (:class:`CheckerboardContext`,
    5×5, N → 2N, as CompressAI's ``cheng2020-anchor-checkerboard``); None for ``serial``, which
    keeps Cheng2020-anchor's own masked convolution."""
    return CheckerboardContext(N, 2 * N, kernel_size=5, stride=1, padding=2) if context == "checkerboard" else None
