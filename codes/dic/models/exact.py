"""The exact entropy path: every number that decides a symbol's probability — ``h_s``, the
context model, ``entropy_parameters``, the scale → table index and the means — in fixed-point
arithmetic whose result is the same on every IEEE-754 machine, whatever the instruction set,
BLAS or oneDNN kernel, thread count or device (docs/portability.md).

The arithmetic, in one paragraph. Activations are integers *counts* of 2^-12 (:data:`FRAC_BITS`),
saturated at ±2^24 counts (±4096). A layer's weights keep, per output channel, at most 15
significant bits (fewer for very long dot products) under a power-of-two scale, and its bias is
rounded on the same grid, so every product and every partial sum of a dot product is an integer
multiple of that channel's grid and below 2^52 of it. Such sums are exact in float64 whatever
their order — blocked, vectorised, fused or threaded — so the layers run as ordinary float64
matrix products (fast BLAS) and still give one result everywhere. After each layer the
accumulator is rounded to counts (half to even) and saturated; the (Leaky)ReLU slope is a
multiple of 2^-20 and its product is rounded the same way. The means are multiples of 2^-12,
so ``ŷ = symbol + μ`` is exact, and the scales are compared with the stored scale table exactly.

Everything here runs on the CPU in float64; the float weights are quantized when a coder is
built (a pure function of the stored weights: no calibration, nothing machine-dependent).
Only the analysis and synthesis transforms stay in floating point: decoded pixels may differ by
float rounding between machines, the symbols never.
"""
from __future__ import annotations

import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.ans import RansDecoder, RansEncoder
from compressai.layers import CheckerboardMaskedConv2d
from torch import Tensor

from ..errors import DicError
from .checkerboard import anchor_mask
from .fast_coding import decode_position, entropy_layers, fast_coding_supported, masked_weight, rans_tables

__all__ = [
    "ACTIVATION_LIMIT", "FRAC_BITS", "ExactCheckerboardCoder", "ExactContextCoder", "FixedLayer", "SLOPE_BITS",
    "exact_hyper_features", "fixed_network", "quantize_layer", "to_counts",
]

FRAC_BITS = 12  #: activations, means and scales are integer multiples of 2^-FRAC_BITS
COUNT = float(1 << FRAC_BITS)  # one unit, in counts
ACTIVATION_LIMIT = float(1 << 24)  #: saturation of every activation, in counts (±4096)
WEIGHT_BITS = 15  #: significant bits of a weight, at most
SLOPE_BITS = 20  #: a (Leaky)ReLU slope is a multiple of 2^-SLOPE_BITS
_SUM_BITS = 51  # |Σ a·w| < 2^51 grid steps; the bias < 2^50: every partial sum < 2^52
_BIAS_BITS = 50
_MAX_EXPONENT = 60  # grid no finer than 2^-60 of a count: far from float64's subnormals

F64 = dict(device="cpu", dtype=torch.float64)


def to_counts(x: Tensor) -> Tensor:
    """``x`` (float64, in counts) rounded to whole counts, half to even, and saturated: the
    value every exact layer passes on. In place; returns ``x``."""
    return x.round_().clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)


def _powers_of_two(exponents: Tensor) -> Tensor:
    """2^e for integer exponents, built exactly (``math.ldexp``, never a ``pow`` kernel)."""
    return torch.tensor([math.ldexp(1.0, int(e)) for e in exponents.tolist()], **F64)


def quantize_layer(weight: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``(weight, bias)`` of a layer on its fixed-point grid (float64 on the CPU, same shapes;
    ``weight`` is C_out × …, a missing bias is zero). Per output channel ``c`` the grid is
    2^-e_c: the weights' largest magnitude keeps ``WEIGHT_BITS`` bits (fewer for a long dot
    product, so that Σ|a·w| stays below 2^51 steps at saturated activations) and the bias, in
    counts, stays below 2^50 steps. A pure function of the stored values (exact float64
    operations only)."""
    w = weight.detach().to(**F64)
    flat = w.reshape(w.shape[0], -1)
    b = torch.zeros(w.shape[0], **F64) if bias is None else bias.detach().to(**F64)
    length = flat.shape[1]
    bits = min(WEIGHT_BITS, _SUM_BITS - int(math.log2(ACTIVATION_LIMIT)) - math.ceil(math.log2(max(length, 2))))
    if bits < 8:
        raise DicError(f"a layer with dot products of {length} terms is too long for the exact entropy path")
    _, weight_exp = torch.frexp(flat.abs().amax(1))  # |w| < 2^weight_exp
    _, bias_exp = torch.frexp(b.abs() * COUNT)
    exponent = torch.minimum(bits - weight_exp, _BIAS_BITS - bias_exp).clamp_(max=_MAX_EXPONENT)
    scale = _powers_of_two(exponent)
    w_q = (flat * scale[:, None]).round_().div_(scale[:, None]).reshape(w.shape)
    b_q = (b * (scale * COUNT)).round_().div_(scale * COUNT) * COUNT  # bias in counts
    return w_q, b_q


def _quantize_slope(slope: Optional[float]) -> Optional[float]:
    if slope is None:
        return None
    if not 0.0 <= slope < 1.0:
        raise DicError(f"the exact entropy path takes (Leaky)ReLU slopes in [0, 1), got {slope}")
    return math.ldexp(round(math.ldexp(slope, SLOPE_BITS)), -SLOPE_BITS)


class FixedLayer:
    """A 1×1 layer (a matrix) in fixed point: ``rows`` of counts (n × K) → n × C_out counts,
    then the activation. ``weight`` is stored K × C_out for ``addmm``."""

    def __init__(self, weight: Tensor, bias: Optional[Tensor], slope: Optional[float]):
        w_q, self.bias = quantize_layer(weight, bias)
        self.weight = w_q.reshape(w_q.shape[0], -1).t().contiguous()
        self.slope = _quantize_slope(slope)

    def accumulate(self, rows: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        """``bias + rows · W`` before rounding (exact)."""
        return torch.addmm(self.bias if bias is None else bias, rows, self.weight)

    def finish(self, acc: Tensor) -> Tensor:
        """Round an accumulator to counts and apply the activation (in place)."""
        return activate(to_counts(acc), self.slope)

    def __call__(self, rows: Tensor) -> Tensor:
        return self.finish(self.accumulate(rows))


def activate(x: Tensor, slope: Optional[float]) -> Tensor:
    """(Leaky)ReLU of whole counts with a slope on the 2^-20 grid: ``max(x, round(x·slope))``
    (the larger of the two is x for x ≥ 0 and the rounded product below zero)."""
    if slope is None:
        return x
    return torch.maximum(x, (x * slope).round_(), out=x)


# ----------------------------------------------------------------------------- h_s


class _FixedConv:
    """A stride-1 'same' convolution as unfold + one float64 matrix product (no Winograd or
    FFT algorithm can be chosen behind our back)."""

    def __init__(self, conv: nn.Conv2d):
        k = conv.kernel_size[0]
        if (conv.kernel_size != (k, k) or conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1
                or conv.padding != (k // 2, k // 2) or k % 2 == 0):
            raise DicError(f"the exact entropy path takes stride-1, 'same', ungrouped odd convolutions, got {conv}")
        self.k = k
        self.layer = FixedLayer(conv.weight, conv.bias, None)

    def __call__(self, x: Tensor) -> Tensor:
        C, H, W = x.shape
        cols = F.unfold(x[None], self.k, padding=self.k // 2)[0].t()  # (H·W) × (C·k·k)
        return self.layer(cols).t().reshape(-1, H, W)


def fixed_network(seq: nn.Module) -> List[object]:
    """``h_s`` as a list of fixed-point steps: convolutions (with the activation that follows
    folded in) and pixel shuffles; a DicError for any other module."""
    steps: List[object] = []
    modules = [m for m in seq.modules() if not isinstance(m, nn.Sequential)]
    for module in modules:
        if isinstance(module, nn.Conv2d):
            steps.append(_FixedConv(module))
        elif isinstance(module, nn.PixelShuffle):
            steps.append(module)
        elif isinstance(module, (nn.LeakyReLU, nn.ReLU)):
            conv = next((s for s in reversed(steps) if isinstance(s, _FixedConv)), None)
            if conv is None or conv.layer.slope is not None:
                raise DicError("the exact entropy path needs each activation of h_s after a convolution")
            conv.layer.slope = _quantize_slope(float(getattr(module, "negative_slope", 0.0)))
        else:
            raise DicError(f"the exact entropy path cannot run {type(module).__name__} in h_s")
    return steps


def exact_hyper_features(model: nn.Module, z_symbols: Tensor) -> Tensor:
    """``h_s(ẑ)`` in counts (B×P×h'×w' float64, CPU) from ``z``'s integer symbols: ẑ = symbol +
    median, rounded to counts, through :func:`fixed_network`."""
    medians = model.entropy_bottleneck._get_medians().detach().to(**F64).reshape(1, -1, 1, 1)
    z_hat = to_counts((z_symbols.to(**F64) + medians) * COUNT)
    steps = fixed_network(model.h_s)
    out = []
    for x in z_hat:
        for step in steps:
            x = step(x)
        out.append(x)
    return torch.stack(out)


# ----------------------------------------------------------------------------- y


class _EntropyParameters:
    """``entropy_parameters`` in fixed point, its first layer split into hyper-prior and
    context columns, plus the Gaussian conditional's scale → index rule and rANS tables."""

    def __init__(self, model: nn.Module, context_channels: int):
        layers = entropy_layers(model)
        if layers is None:
            raise DicError(f"{type(model).__name__}: entropy_parameters must be 1×1 convolutions and (Leaky)ReLUs")
        first = FixedLayer(layers[0][0].weight, layers[0][0].bias, layers[0][1])
        self.P = first.weight.shape[0] - context_channels
        self.first_hyper, self.first_ctx = first.weight[: self.P], first.weight[self.P :].t().contiguous()
        self.first_bias, self.first_slope = first.bias, first.slope
        self.rest = [FixedLayer(conv.weight, conv.bias, slope) for conv, slope in layers[1:]]
        self.M = self.rest[-1].weight.shape[1] // 2 if self.rest else first.weight.shape[1] // 2
        gc = model.gaussian_conditional
        self.cdfs, self.cdf_lengths, self.offsets = rans_tables(gc)
        self.bound = float(gc.lower_bound_scale.bound.detach().double().reshape(-1)[0]) * COUNT
        self.edges = gc.scale_table.detach().to(**F64)[:-1].mul(COUNT).contiguous()

    def hyper_part(self, hyper_rows: Tensor) -> Tensor:
        """First layer's bias + hyper-prior columns for n rows (n × E1, not rounded)."""
        return torch.addmm(self.first_bias, hyper_rows, self.first_hyper)

    def finish(self, first_acc: Tensor) -> Tuple[Tensor, Tensor]:
        """(scales, means) in counts from the first layer's complete accumulator (n × E1 or E1)."""
        a = activate(to_counts(first_acc), self.first_slope)
        for layer in self.rest:
            a = layer(a) if a.dim() == 2 else layer.finish(torch.addmv(layer.bias, layer.weight.t(), a))
        return a[..., : self.M], a[..., self.M :]

    def indexes(self, scales: Tensor) -> Tensor:
        """CompressAI's ``build_indexes`` on exact values: table entries (all but the last)
        below the lower-bounded scale."""
        return torch.searchsorted(self.edges, torch.clamp_min(scales, self.bound)).to(torch.int32)


def _quantize_symbols(y: Tensor, means: Tensor) -> Tensor:
    """The encoder's symbols ``round(y − μ)`` (μ in counts; float64)."""
    return torch.round(y - means / COUNT)


class ExactContextCoder:
    """Serial (raster-order) rANS coding of one image's ``y`` with every probability computed
    in fixed point; the :class:`~.fast_coding.ContextCoder` interface and the same row-wise
    schedule: the context taps of the rows above for a whole row in one product, per position
    the left taps, the rounding of the context and the remaining layers."""

    def __init__(self, model: nn.Module):
        if not fast_coding_supported(model):
            raise DicError(f"{type(model).__name__}: its context model is not one the exact coder supports")
        ctx: nn.Conv2d = model.context_prediction
        self.k, self.M = ctx.kernel_size[0], ctx.in_channels
        self.p = self.k // 2
        with torch.no_grad():
            weight, self.ctx_bias = quantize_layer(masked_weight(ctx), ctx.bias)
            C2, M, k, p = weight.shape[0], self.M, self.k, self.p
            self.above = weight[:, :, :p, :].permute(2, 3, 1, 0).reshape(p * k * M, C2).contiguous()
            self.left = weight[:, :, p, :p].permute(0, 2, 1).reshape(C2, p * M).contiguous()
            self.ep = _EntropyParameters(model, C2)

    def _walk(self, hyper: Tensor, y_hat: Tensor) -> Iterator[Tuple[int, int, Tensor, Tensor, Tensor]]:
        """Raster order, yielding ``(h, w, scales, means, slot)`` in counts; the caller writes the
        position's ``ŷ`` in counts into ``slot`` before asking for the next."""
        M, p, k, ep = self.M, self.p, self.k, self.ep
        P, H, W = hyper.shape
        hyper_part = ep.hyper_part(hyper.permute(1, 2, 0).reshape(H * W, P)).view(H, W, -1)
        Wp = W + 2 * p
        for h in range(H):
            windows = y_hat.as_strided((W, p, k, M), (M, Wp * M, M, 1), h * Wp * M).reshape(W, p * k * M)
            above = torch.addmm(self.ctx_bias, windows, self.above)  # W × C2, not rounded
            row = y_hat[h + p].view(-1)
            for w in range(W):
                context = to_counts(torch.addmv(above[w], self.left, row[w * M : (w + p) * M]))
                scales, means = ep.finish(torch.addmv(hyper_part[h, w], ep.first_ctx, context))
                yield h, w, scales, means, y_hat[h + p, w + p]

    def compress(self, y: Tensor, hyper: Tensor) -> Tuple[bytes, Tensor, Tensor]:
        """rANS string of ``y`` (M×H×W) given ``hyper`` (P×H×W counts from
        :func:`exact_hyper_features`), ``ŷ`` and its integer symbols (M×H×W float32 and int32)."""
        M, H, W = y.shape
        with torch.no_grad():
            y_rows = y.detach().to(**F64).permute(1, 2, 0).contiguous()
            y_hat = torch.zeros(H + self.p, W + 2 * self.p, M, **F64)
            symbols = torch.empty(H, W, M, dtype=torch.int32)
            indexes = torch.empty(H, W, M, dtype=torch.int32)
            for h, w, scales, means, slot in self._walk(hyper, y_hat):
                indexes[h, w] = self.ep.indexes(scales)
                q = _quantize_symbols(y_rows[h, w], means)
                symbols[h, w] = q
                _place(slot, q, means)
            string = RansEncoder().encode_with_indexes(symbols.view(-1).tolist(), indexes.view(-1).tolist(),
                                                       self.ep.cdfs, self.ep.cdf_lengths, self.ep.offsets)
        return string, self._values(y_hat, W), symbols.permute(2, 0, 1).contiguous()

    def decompress(self, string: bytes, hyper: Tensor) -> Tuple[Tensor, Tensor]:
        """``ŷ`` and its symbols (M×H×W float32 and int32) decoded from a guarded ``string``
        (:func:`dic.models.latent_codec.guard_string`) given ``hyper`` in counts."""
        _, H, W = hyper.shape
        ep = self.ep
        with torch.no_grad():
            y_hat = torch.zeros(H + self.p, W + 2 * self.p, self.M, **F64)
            decoded = torch.empty(H, W, self.M, dtype=torch.int32)
            decoder = RansDecoder()
            decoder.set_stream(string)
            for h, w, scales, means, slot in self._walk(hyper, y_hat):
                q = decode_position(decoder, ep.indexes(scales).tolist(), ep.cdfs, ep.cdf_lengths, ep.offsets)
                decoded[h, w] = q
                _place(slot, q, means)
        return self._values(y_hat, W), decoded.permute(2, 0, 1).contiguous()

    def _values(self, y_hat: Tensor, W: int) -> Tensor:
        """The buffer's interior (counts) as ``ŷ``: M×H×W float32."""
        p = self.p
        return (y_hat[p:, p : p + W] / COUNT).permute(2, 0, 1).to(torch.float32).contiguous()


def _place(slot: Tensor, symbols: Tensor, means: Tensor) -> None:
    """``ŷ`` in counts (symbol · 2^12 + μ, exact) into the buffer, saturated like any activation
    before the context model reads it."""
    torch.add(means, symbols.to(torch.float64), alpha=COUNT, out=slot)
    slot.clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)


class ExactCheckerboardCoder:
    """Two-pass checkerboard coding (anchors from the hyper-prior alone, then the others with
    the context of the decoded anchors; :mod:`.checkerboard`) with every probability computed
    in fixed point; the :class:`~.checkerboard.CheckerboardCoder` interface and bitstream layout
    (one string, anchors first)."""

    def __init__(self, model: nn.Module):
        ctx = model.context_prediction
        if not isinstance(ctx, CheckerboardMaskedConv2d):
            raise DicError(f"{type(model).__name__}: its context model is not a checkerboard one")
        with torch.no_grad():
            weight, self.ctx_bias = quantize_layer(masked_weight(ctx), ctx.bias)
            self.k, self.M = ctx.kernel_size[0], ctx.in_channels
            self.p = self.k // 2
            self.taps = [(int(i), int(j)) for i, j in torch.nonzero(ctx.mask[0, 0].cpu())]
            self.ctx_w = torch.stack([weight[:, :, i, j] for i, j in self.taps], 1).reshape(
                weight.shape[0], -1).t().contiguous()  # (T·M) × C2, rows (tap, channel)
            self.ep = _EntropyParameters(model, weight.shape[0])

    def _context(self, anchors_hat: Tensor, positions: Tensor, H: int, W: int) -> Tensor:
        """Context (n × C2, counts) at ``positions`` from the decoded anchors (H×W×M counts)."""
        p = self.p
        padded = F.pad(anchors_hat.permute(2, 0, 1), (p, p, p, p)).permute(1, 2, 0).reshape(-1, self.M)
        h, w = positions // W, positions % W
        offsets = torch.tensor([i * (W + 2 * p) + j for i, j in self.taps])
        index = (h * (W + 2 * p) + w)[:, None] + offsets[None, :]
        windows = padded[index.reshape(-1)].reshape(len(positions), len(self.taps) * self.M)
        return to_counts(torch.addmm(self.ctx_bias, windows, self.ctx_w))

    def _passes(self, H: int, W: int) -> Iterator[Tuple[Tensor, bool]]:
        """``(positions, is_anchor_pass)``: the anchors' flat raster indexes, then the others'."""
        flat = anchor_mask(H, W).reshape(-1)
        yield torch.nonzero(flat).reshape(-1), True
        yield torch.nonzero(~flat).reshape(-1), False

    def _params(self, rows: Tensor, y_hat: Tensor, positions: Tensor, anchors: bool, H: int, W: int
                ) -> Tuple[Tensor, Tensor]:
        """(scales, means) in counts at ``positions``: the hyper-prior alone for the anchors,
        plus the context of the decoded anchors in ``y_hat`` for the others."""
        acc = self.ep.hyper_part(rows[positions])
        if not anchors:
            acc = torch.addmm(acc, self._context(y_hat.view(H, W, -1), positions, H, W), self.ep.first_ctx.t())
        return self.ep.finish(acc)

    def compress(self, y: Tensor, hyper: Tensor) -> Tuple[bytes, Tensor, Tensor]:
        """rANS string of ``y`` (M×H×W) given ``hyper`` in counts; ``ŷ`` and its symbols."""
        M, H, W = y.shape
        with torch.no_grad():
            rows = _rows(hyper)
            y_rows = y.detach().to(**F64).permute(1, 2, 0).reshape(H * W, M)
            y_hat = torch.zeros(H * W, M, **F64)
            symbols = torch.zeros(H * W, M, dtype=torch.int32)
            order, indexes = [], []
            for positions, anchors in self._passes(H, W):
                scales, means = self._params(rows, y_hat, positions, anchors, H, W)
                q = _quantize_symbols(y_rows[positions], means)
                y_hat[positions] = _placed(q, means)
                symbols[positions] = q.to(torch.int32)
                order.append(positions)
                indexes.append(self.ep.indexes(scales))
            string = RansEncoder().encode_with_indexes(
                symbols[torch.cat(order)].reshape(-1).tolist(), torch.cat(indexes).reshape(-1).tolist(),
                self.ep.cdfs, self.ep.cdf_lengths, self.ep.offsets)
        return string, _planar(y_hat / COUNT, H, W).float(), _planar(symbols, H, W)

    def decompress(self, string: bytes, hyper: Tensor) -> Tuple[Tensor, Tensor]:
        """``ŷ`` and its symbols decoded from a guarded ``string`` given ``hyper`` in counts."""
        _, H, W = hyper.shape
        M, ep = self.M, self.ep
        with torch.no_grad():
            rows = _rows(hyper)
            y_hat = torch.zeros(H * W, M, **F64)
            symbols = torch.zeros(H * W, M, dtype=torch.int32)
            decoder = RansDecoder()
            decoder.set_stream(string)
            for positions, anchors in self._passes(H, W):
                scales, means = self._params(rows, y_hat, positions, anchors, H, W)
                values = decoder.decode_stream(ep.indexes(scales).reshape(-1).tolist(), ep.cdfs, ep.cdf_lengths,
                                               ep.offsets)
                q = torch.tensor(values, dtype=torch.int32).view(len(positions), M)
                symbols[positions] = q
                y_hat[positions] = _placed(q, means)
        return _planar(y_hat / COUNT, H, W).float(), _planar(symbols, H, W)


def _placed(symbols: Tensor, means: Tensor) -> Tensor:
    """``ŷ`` in counts, saturated (see :func:`_place`)."""
    return torch.add(means, symbols.to(torch.float64), alpha=COUNT).clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)


def _rows(hyper: Tensor) -> Tensor:
    P, H, W = hyper.shape
    return hyper.permute(1, 2, 0).reshape(H * W, P).contiguous()


def _planar(rows: Tensor, H: int, W: int) -> Tensor:
    return rows.view(H, W, -1).permute(2, 0, 1).contiguous()
