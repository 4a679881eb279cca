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

import itertools
import math
import weakref
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.ans import RansDecoder, RansEncoder
from compressai.layers import CheckerboardMaskedConv2d
from torch import Tensor

from ..errors import DicError
from .checkerboard import anchor_positions, gather_taps, planar
from .fast_coding import decode_position, entropy_layers, fast_coding_supported, masked_weight, rans_tables

__all__ = [
    "ACTIVATION_LIMIT", "FRAC_BITS", "ExactCheckerboardCoder", "ExactContextCoder", "FixedLayer", "SLOPE_BITS",
    "cached", "exact_hyper_features", "exact_y_coder", "fixed_network", "fuse_context", "quantize_layer", "to_counts",
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
T = TypeVar("T")
_CACHE: "weakref.WeakKeyDictionary[nn.Module, Dict[str, Tuple[tuple, object]]]" = weakref.WeakKeyDictionary()


def cached(model: nn.Module, name: str, build: Callable[[], T]) -> T:
    """``build()`` once per state of ``model``'s weights: the fixed-point tables are reused
    while no parameter or buffer changed (same storage, same version counter; training steps,
    ``load_state_dict`` and moves all change one), so coding many images quantizes once."""
    key = tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))
    store = _CACHE.setdefault(model, {})
    hit = store.get(name)
    if hit is None or hit[0] != key:
        hit = store[name] = (key, build())
    return hit[1]  # type: ignore[return-value]


def to_counts(x: Tensor) -> Tensor:
    """``x`` (float64, in counts) rounded to whole counts, half to even, and saturated: the
    value every exact layer passes on. In place; returns ``x``."""
    return x.round_().clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)


def _powers_of_two(exponents: Tensor) -> Tensor:
    """2^e for integer exponents, built exactly (``math.ldexp``, never a ``pow`` kernel)."""
    return torch.tensor([math.ldexp(1.0, int(e)) for e in exponents.tolist()], **F64)


def quantize_layer(weight: Tensor, bias: Optional[Tensor], other_bias: Optional[Tensor] = None
                   ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """``(weight, bias, other_bias)`` of a layer on its fixed-point grid (float64 on the CPU,
    same shapes; ``weight`` is C_out × …, a missing bias is zero, the biases in counts). Per
    output channel ``c`` the grid is 2^-e_c: the weights' largest magnitude keeps
    ``WEIGHT_BITS`` bits (fewer for a long dot product, so that Σ|a·w| stays below 2^51 steps at
    saturated activations) and each bias stays below 2^50 steps. ``other_bias``: a second bias
    on the same grid (the checkerboard anchors'). A pure function of the stored values (exact
    float64 operations only)."""
    w = weight.detach().to(**F64)
    flat = w.reshape(w.shape[0], -1)
    biases = [torch.zeros(w.shape[0], **F64) if b is None else b.detach().to(**F64) for b in (bias, other_bias)]
    length = flat.shape[1]
    bits = min(WEIGHT_BITS, _SUM_BITS - int(math.log2(ACTIVATION_LIMIT)) - math.ceil(math.log2(max(length, 2))))
    if bits < 8:
        raise DicError(f"a layer with dot products of {length} terms is too long for the exact entropy path")
    _, weight_exp = torch.frexp(flat.abs().amax(1))  # |w| < 2^weight_exp
    _, bias_exp = torch.frexp(torch.maximum(biases[0].abs(), biases[1].abs()) * COUNT)
    exponent = torch.minimum(bits - weight_exp, _BIAS_BITS - bias_exp).clamp_(max=_MAX_EXPONENT)
    scale = _powers_of_two(exponent)
    w_q = (flat * scale[:, None]).round_().div_(scale[:, None]).reshape(w.shape)
    b_q = [(b * (scale * COUNT)).round_().div_(scale) for b in biases]  # in counts, on the grid
    return w_q, b_q[0], (b_q[1] if other_bias is not None else None)


def _integers(x: Tensor) -> Tuple[Tensor, int]:
    """``x`` (float64) as integers of at most 15 bits under one power-of-two scale for the
    whole tensor: ``(q, s)`` with x ≈ q · 2^-s."""
    _, top = torch.frexp(x.abs().max())
    shift = WEIGHT_BITS - int(top)
    return (x * math.ldexp(1.0, shift)).round_(), shift


def fuse_context(first_context: Tensor, context_weight: Tensor, context_bias: Optional[Tensor]
                 ) -> Tuple[Tensor, Tensor]:
    """The context model folded into the first entropy layer: ``(W₁c · Wc, W₁c · bc)`` for the
    first layer's context columns ``W₁c`` (E1 × C2) and the (masked) context convolution
    ``Wc`` (C2 × M × k × k). No activation lies between them, so the network is the same; both
    products are taken of 15-bit integer versions of the factors (one scale per tensor), whose
    float64 sums are exact: the result does not depend on the machine."""
    q1, s1 = _integers(first_context.detach().to(**F64))
    flat = context_weight.detach().to(**F64).reshape(context_weight.shape[0], -1)
    used = flat.abs().amax(0) > 0  # the taps the mask keeps: the others stay exactly zero
    qc, sc = _integers(flat[:, used])
    bias = torch.zeros(context_weight.shape[0], **F64) if context_bias is None else context_bias.detach().to(**F64)
    qb, sb = _integers(bias)
    if context_weight.shape[0] > 1 << 20:
        raise DicError("the context model is too wide for the exact entropy path")
    weight = torch.zeros(first_context.shape[0], flat.shape[1], **F64)
    weight[:, used] = (q1 @ qc).mul_(math.ldexp(1.0, -(s1 + sc)))
    return weight.reshape(first_context.shape[0], *context_weight.shape[1:]), (q1 @ qb).mul_(math.ldexp(1.0, -(s1 + sb)))


def _quantize_slope(slope: Optional[float]) -> Optional[float]:
    if slope is None:
        return None
    if not 0.0 <= slope < 1.0:
        raise DicError(f"the exact entropy path takes (Leaky)ReLU slopes in [0, 1), got {slope}")
    return math.ldexp(round(math.ldexp(slope, SLOPE_BITS)), -SLOPE_BITS)


class FixedLayer:
    """A 1×1 layer (a matrix) in fixed point: n × K counts → n × C_out counts, then the
    activation. ``weight`` is C_out × K."""

    def __init__(self, weight: Tensor, bias: Optional[Tensor], slope: Optional[float]):
        w_q, self.bias, _ = quantize_layer(weight, bias)
        self.weight = w_q.reshape(w_q.shape[0], -1).contiguous()
        self.slope = _quantize_slope(slope)

    def finish(self, acc: Tensor) -> Tensor:
        """Round an accumulator to counts and apply the activation (in place)."""
        return activate(to_counts(acc), self.slope)

    def __call__(self, rows: Tensor) -> Tensor:
        return self.finish(torch.addmm(self.bias, rows, self.weight.t()))


def activate(x: Tensor, slope: Optional[float]) -> Tensor:
    """(Leaky)ReLU of whole counts with a slope on the 2^-20 grid, rounded back to counts, in
    place: x for x ≥ 0, round(x · slope) below (the product of a count and such a slope is
    exact in float64, so any kernel gives the same)."""
    if slope is None:
        return x
    return F.leaky_relu_(x, slope).round_()


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
    steps = cached(model, "h_s", lambda: fixed_network(model.h_s))
    out = []
    for x in z_hat:
        for step in steps:
            x = step(x)
        out.append(x)
    return torch.stack(out)


# ----------------------------------------------------------------------------- y


class _EntropyParameters:
    """``entropy_parameters`` in fixed point with the context model folded into its first
    layer (:func:`fuse_context`): ``first_hyper`` (P × E1) acts on the hyper-prior,
    ``context_taps`` (E1 × M × k × k) on the window of decoded ``ŷ`` around a position; the
    bias is ``bias`` with a context and ``anchor_bias`` without one (checkerboard anchors, whose
    context is zero, bias included). Plus the Gaussian conditional's scale → index rule and
    rANS tables."""

    def __init__(self, model: nn.Module, context: nn.Conv2d):
        layers = entropy_layers(model)
        if layers is None:
            raise DicError(f"{type(model).__name__}: entropy_parameters must be 1×1 convolutions and (Leaky)ReLUs")
        first, slope = layers[0]
        w1 = first.weight.detach().to(**F64)[:, :, 0, 0]
        b1 = torch.zeros(w1.shape[0], **F64) if first.bias is None else first.bias.detach().to(**F64)
        self.P = w1.shape[1] - context.out_channels
        taps, context_bias = fuse_context(w1[:, self.P :], masked_weight(context), context.bias)
        weight = torch.cat((w1[:, : self.P], taps.reshape(len(taps), -1)), 1)
        w_q, self.bias, self.anchor_bias = quantize_layer(weight, b1 + context_bias, b1)
        self.first_hyper = w_q[:, : self.P].t().contiguous()
        self.context_taps = w_q[:, self.P :].reshape(taps.shape)
        self.first_slope = _quantize_slope(slope)
        self.rest = [FixedLayer(conv.weight, conv.bias, s) for conv, s in layers[1:]]
        self.M = self.rest[-1].weight.shape[0] // 2 if self.rest else w_q.shape[0] // 2
        gc = model.gaussian_conditional
        self.cdfs, self.cdf_lengths, self.offsets = rans_tables(gc)
        bound = float(gc.lower_bound_scale.bound.detach().double().reshape(-1)[0]) * COUNT
        edges = gc.scale_table.detach().to(**F64)[:-1].mul(COUNT)
        # entries below the scales' lower bound count for every scale: as -inf, one search does
        self.edges = edges.masked_fill(edges < bound, -math.inf).contiguous()

    def tap_matrix(self, taps: Sequence[Tuple[int, int]]) -> Tensor:
        """The context columns of the first layer for the window ``taps`` (kernel row, column):
        (T·M) × E1, rows ordered (tap, channel) as :func:`~.checkerboard.gather_taps` gives them."""
        weight = self.context_taps
        return torch.stack([weight[:, :, i, j] for i, j in taps], 1).reshape(len(weight), -1).t().contiguous()

    def hyper_part(self, hyper_rows: Tensor, anchors: bool = False) -> Tensor:
        """The first layer's bias and hyper-prior columns for n rows of counts (n × E1, not
        rounded: the context's share is still to be added, except for ``anchors``)."""
        return torch.addmm(self.anchor_bias if anchors else self.bias, hyper_rows, self.first_hyper)

    def finish(self, first_acc: Tensor) -> Tuple[Tensor, Tensor]:
        """(scales, means) in counts (n × M each) from the first layer's complete accumulator (n × E1)."""
        a = activate(to_counts(first_acc), self.first_slope)
        for layer in self.rest:
            a = layer(a)
        return a[..., : self.M], a[..., self.M :]

    def indexes(self, scales: Tensor) -> Tensor:
        """CompressAI's ``build_indexes`` on exact values: table entries (all but the last)
        below the lower-bounded scale."""
        return torch.searchsorted(self.edges, scales.contiguous(), out_int32=True)


def _quantize_symbols(y: Tensor, means: Tensor) -> Tensor:
    """The encoder's symbols ``round(y − μ)`` (μ in counts; float64)."""
    return torch.round(y - means / COUNT)


class ExactContextCoder:
    """Serial-context rANS coding of one image's ``y`` with every probability computed in fixed
    point; the :class:`~.fast_coding.ContextCoder` interface. The positions are coded in
    *wavefronts*: a position's causal window reaches ``p`` columns to its left on its own row
    and ``p`` to its right on the rows above, so every position with the same ``t = (p+1)·h +
    w`` depends only on earlier wavefronts. Each wavefront is one batch of matrix products and
    one call into the rANS coder, and the string holds the symbols wavefront by wavefront (by
    rising ``h`` within one). The probabilities, hence the symbols and ``ŷ``, are those of the
    raster-order model; only the order in the string differs from CompressAI's."""

    def __init__(self, model: nn.Module):
        if not fast_coding_supported(model):
            raise DicError(f"{type(model).__name__}: its context model is not one the exact coder supports")
        ctx: nn.Conv2d = model.context_prediction
        self.k, self.M = ctx.kernel_size[0], ctx.in_channels
        self.p = self.k // 2
        with torch.no_grad():
            self.ep = _EntropyParameters(model, ctx)
            # the causal window: the p rows above, and the p positions to the left on the row
            self.taps = [(i, j) for i in range(self.p) for j in range(self.k)] + [(self.p, j) for j in range(self.p)]
            self.tap_w = self.ep.tap_matrix(self.taps)

    def _wavefronts(self, H: int, W: int) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
        """Per wavefront: the flat raster indexes of its positions, the flat buffer rows of
        their causal windows (n × taps) and of the positions themselves, in a zero-padded
        (H+p) × (W+2p) buffer."""
        p, Wp = self.p, W + 2 * self.p
        offsets = torch.tensor([i * Wp + j for i, j in self.taps])
        for t in range((p + 1) * (H - 1) + W):
            h = torch.arange(max(0, -(-(t - W + 1) // (p + 1))), min(H - 1, t // (p + 1)) + 1)
            w = t - (p + 1) * h
            corner = h * Wp + w  # the window's top-left corner in the buffer
            yield h * W + w, corner[:, None] + offsets[None, :], corner + p * Wp + p

    def _params(self, hyper_part: Tensor, y_hat: Tensor, flat: Tensor, windows: Tensor) -> Tuple[Tensor, Tensor]:
        """(scales, means) in counts (n × M) of one wavefront."""
        context = y_hat[windows.reshape(-1)].reshape(len(flat), -1)
        return self.ep.finish(torch.addmm(hyper_part[flat], context, self.tap_w))

    def _buffers(self, hyper: Tensor) -> Tuple[Tensor, Tensor, int, int]:
        _, H, W = hyper.shape
        hyper_part = self.ep.hyper_part(_rows(hyper))
        return hyper_part, torch.zeros((H + self.p) * (W + 2 * self.p), self.M, **F64), H, W

    def compress(self, y: Tensor, hyper: Tensor) -> Tuple[bytes, Tensor, Tensor]:
        """rANS string of ``y`` (M×H×W) given ``hyper`` (P×H×W counts from
        :func:`exact_hyper_features`), ``ŷ`` and its integer symbols (M×H×W float32 and int32)."""
        M = y.shape[0]
        with torch.no_grad():
            hyper_part, y_hat, H, W = self._buffers(hyper)
            y_rows = y.detach().to(**F64).permute(1, 2, 0).reshape(H * W, M)
            symbols = torch.empty(H * W, M, dtype=torch.int32)
            indexes, order = [], []
            for flat, windows, slots in self._wavefronts(H, W):
                scales, means = self._params(hyper_part, y_hat, flat, windows)
                q = _quantize_symbols(y_rows[flat], means)
                y_hat[slots] = _placed(q, means)
                symbols[flat] = q.to(torch.int32)
                indexes.append(self.ep.indexes(scales))
                order.append(flat)
            string = RansEncoder().encode_with_indexes(
                symbols[torch.cat(order)].reshape(-1).tolist(), torch.cat(indexes).reshape(-1).tolist(),
                self.ep.cdfs, self.ep.cdf_lengths, self.ep.offsets)
        return string, self._values(y_hat, H, W), planar(symbols, H, W)

    def decompress(self, string: bytes, hyper: Tensor) -> Tuple[Tensor, Tensor]:
        """``ŷ`` and its symbols (M×H×W float32 and int32) decoded from a guarded ``string``
        (:func:`dic.models.latent_codec.guard_string`) given ``hyper`` in counts."""
        ep = self.ep
        with torch.no_grad():
            hyper_part, y_hat, H, W = self._buffers(hyper)
            symbols = torch.empty(H * W, self.M, dtype=torch.int32)
            decoder = RansDecoder()
            decoder.set_stream(string)
            for flat, windows, slots in self._wavefronts(H, W):
                scales, means = self._params(hyper_part, y_hat, flat, windows)
                q = decode_position(decoder, ep.indexes(scales).reshape(-1).tolist(), ep.cdfs, ep.cdf_lengths,
                                    ep.offsets).view(len(flat), self.M)
                y_hat[slots] = _placed(q, means)
                symbols[flat] = q
        return self._values(y_hat, H, W), planar(symbols, H, W)

    def _values(self, y_hat: Tensor, H: int, W: int) -> Tensor:
        """The buffer's interior (counts) as ``ŷ``: M×H×W float32."""
        p = self.p
        interior = y_hat.view(H + p, W + 2 * p, self.M)[p:, p : p + W]
        return (interior / COUNT).permute(2, 0, 1).to(torch.float32).contiguous()


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
            self.ep = _EntropyParameters(model, ctx)
            self.k, self.M = ctx.kernel_size[0], ctx.in_channels
            self.p = self.k // 2
            self.taps = [(int(i), int(j)) for i, j in torch.nonzero(ctx.mask[0, 0].cpu())]
            self.tap_w = self.ep.tap_matrix(self.taps)

    def _passes(self, H: int, W: int) -> Iterator[Tuple[Tensor, bool]]:
        """``(positions, is_anchor_pass)``: the anchors' flat raster indexes, then the others'."""
        anchors, others = anchor_positions(H, W)
        yield anchors, True
        yield others, False

    def _params(self, rows: Tensor, y_hat: Tensor, positions: Tensor, anchors: bool, H: int, W: int
                ) -> Tuple[Tensor, Tensor]:
        """(scales, means) in counts at ``positions``: the hyper-prior alone for the anchors,
        plus the context of the decoded anchors in ``y_hat`` for the others."""
        acc = self.ep.hyper_part(rows[positions], anchors)
        if not anchors:
            acc += gather_taps(y_hat.view(H, W, -1), positions, self.taps, self.p) @ self.tap_w
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
        return string, planar(y_hat / COUNT, H, W).float(), planar(symbols, H, W)

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
        return planar(y_hat / COUNT, H, W).float(), planar(symbols, H, W)


def _placed(symbols: Tensor, means: Tensor) -> Tensor:
    """``ŷ`` in counts (symbol · 2^12 + μ, exact), saturated like any activation before the
    context model reads it."""
    return torch.add(means, symbols.to(torch.float64), alpha=COUNT).clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)


def _rows(hyper: Tensor) -> Tensor:
    P, H, W = hyper.shape
    return hyper.permute(1, 2, 0).reshape(H * W, P).contiguous()


def exact_y_coder(model: nn.Module):
    """The exact ``y`` coder of the model's ``context`` (built once per state of the weights)."""
    if getattr(model, "context", "serial") == "checkerboard":
        return cached(model, "checkerboard", lambda: ExactCheckerboardCoder(model))
    return cached(model, "serial", lambda: ExactContextCoder(model))
