"""Fast serial autoregressive coding of ``y`` for CompressAI's joint autoregressive hierarchical
prior (the 5×5 masked context model of Cheng2020-anchor): :class:`ContextCoder`, the ``y`` coder
that :mod:`.latent_codec` plugs into both :meth:`~dic.models.base.CodecBase.compress` and
:meth:`~dic.models.base.CodecBase.decompress` (docs/architecture.md).

The bitstream is CompressAI's: the same symbols, scale indexes and rANS coder in the same
raster order, so CompressAI's decoder reads our strings and ours reads its. What changes is how
each position's Gaussian parameters are computed:

- the hyper-prior half of ``entropy_parameters``' first 1×1 layer (its weight split into the
  hyper and the context columns) is applied to every position at once;
- the masked convolution is split by rows: the taps in the two rows above (already coded) are
  applied to a whole row in one matrix product before the row starts; only the two taps to the
  left remain per position, folded with the context columns of the first layer into one small
  matrix, so a position costs three matrix–vector products on preallocated buffers;
- the scale indexes come from one ``searchsorted`` instead of one comparison per table entry;
- the rANS decoder receives only the CDFs the position uses, cut to their real lengths
  (CompressAI passes all 64 padded CDFs, about 200 000 integers, on every call, which is most
  of its time per position); the encoder codes the whole image in one call.

Our encoder and decoder run exactly the same float operations in the same order, so their
probabilities match bit for bit and every string decodes. Against CompressAI's own loop the
Gaussian parameters agree to float32 rounding only (a different summation order), so decoded
images agree to about 1e-6, not bit for bit; the scale indexes, hence the strings, match unless
a scale lies within rounding of a table boundary (not seen in our tests, but possible).

Both directions also return the integer symbols the rANS coder carries (``round(y − μ)``), the
canonical form of the latent that ``.dic`` files checksum (:mod:`dic.codec.format`).

The loop runs on the CPU in float32 whatever the model's device (it is serial; on a GPU every
position would wait for a host round trip) with one thread: the products are too small to gain
from more, and a fixed thread count keeps the float results independent of the caller's
``torch.set_num_threads`` between encoder and decoder.
"""
from __future__ import annotations

import array
import contextlib
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.ans import RansDecoder, RansEncoder
from torch import Tensor

from ..errors import DicError

__all__ = [
    "ContextCoder", "decode_position", "entropy_layers", "fast_coding_supported", "masked_weight", "rans_tables",
    "single_thread",
]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one intra-op thread, restoring the caller's count after."""
    previous = torch.get_num_threads()
    if previous != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            torch.set_num_threads(previous)


def entropy_layers(model: nn.Module) -> Optional[List[Tuple[nn.Conv2d, float]]]:
    """``entropy_parameters`` as [(1×1 conv, slope of the activation after it)], the last
    slope being None; None when the module is anything else (the fast path then stands aside)."""
    seq = getattr(model, "entropy_parameters", None)
    if not isinstance(seq, nn.Sequential) or len(seq) == 0:
        return None
    layers: List[Tuple[nn.Conv2d, Optional[float]]] = []
    for module in seq:
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != (1, 1) or module.groups != 1 or module.bias is None:
                return None
            layers.append((module, None))
        elif isinstance(module, (nn.LeakyReLU, nn.ReLU)) and layers and layers[-1][1] is None:
            slope = float(module.negative_slope) if isinstance(module, nn.LeakyReLU) else 0.0
            layers[-1] = (layers[-1][0], slope)
        else:
            return None
    if layers[-1][1] is not None:
        return None
    return layers  # type: ignore[return-value]


def fast_coding_supported(model: nn.Module) -> bool:
    """Whether ``model`` has the structure the fast loop implements: a square, odd, stride-1,
    ungrouped ``context_prediction`` conv whose (masked) taps are causal in raster order, and an
    ``entropy_parameters`` made of 1×1 convs with (Leaky)ReLUs between them."""
    ctx = getattr(model, "context_prediction", None)
    if not isinstance(ctx, nn.Conv2d) or ctx.bias is None or entropy_layers(model) is None:
        return False
    k = ctx.kernel_size[0]
    if (ctx.kernel_size != (k, k) or k % 2 == 0 or ctx.stride != (1, 1) or ctx.dilation != (1, 1)
            or ctx.groups != 1 or ctx.padding != (k // 2, k // 2)):
        return False
    first = entropy_layers(model)[0][0]  # type: ignore[index]
    if first.in_channels <= ctx.out_channels:
        return False
    weight = masked_weight(ctx)
    p = k // 2
    return bool((weight[:, :, p, p:] == 0).all() and (weight[:, :, p + 1:] == 0).all())


def masked_weight(ctx: nn.Conv2d) -> Tensor:
    """The context convolution's weight with its mask applied (what CompressAI's encoder uses)."""
    weight = ctx.weight.detach()
    mask = getattr(ctx, "mask", None)
    return weight * mask if mask is not None else weight


@dataclass
class _Tables:
    """CPU float32 matrices of the context model, laid out for the row-wise loop."""

    M: int  # latent channels
    k: int  # context kernel size
    p: int  # its half width
    above: Tensor  # (p·k·M, C2): taps of the p rows above, windows flattened as (row, col, channel)
    ctx_bias: Tensor  # (C2,)
    hyper_w: Tensor  # (P, E1): hyper columns of the first entropy layer, transposed
    first_bias: Tensor  # (E1,)
    ctx_w: Tensor  # (C2, E1): context columns of the first entropy layer, transposed
    left: Tensor  # (E1, p·M): context columns · taps to the left, folded
    first_slope: Optional[float]
    rest: List[Tuple[Tensor, Tensor, Optional[float]]]  # (weight, bias, slope) of the other layers
    scale_bound: float  # the Gaussian conditional's lower bound on scales (a float32 value)
    scale_edges: Tensor  # (L-1,) scale table without its last entry: searchsorted → index
    cdfs: List[List[int]]  # per index: the quantized CDF cut to its length
    cdf_lengths: List[int]
    offsets: List[int]


def _build_tables(model: nn.Module) -> _Tables:
    ctx: nn.Conv2d = model.context_prediction
    layers = entropy_layers(model)
    assert layers is not None
    k, M, C2 = ctx.kernel_size[0], ctx.in_channels, ctx.out_channels
    p = k // 2
    cpu = dict(device="cpu", dtype=torch.float32)
    weight = masked_weight(ctx).to(**cpu)  # (C2, M, k, k)
    above = weight[:, :, :p, :].permute(2, 3, 1, 0).reshape(p * k * M, C2).contiguous()
    left = weight[:, :, p, :p].permute(0, 2, 1).reshape(C2, p * M)  # window order (col, channel)
    first, first_slope = layers[0]
    w1 = first.weight.detach().to(**cpu)[:, :, 0, 0]  # (E1, P + C2)
    P = w1.shape[1] - C2
    w1_hyper, w1_ctx = w1[:, :P], w1[:, P:]
    # Fold in float64, then round once: one product per position instead of two.
    left_folded = (w1_ctx.double() @ left.double()).float().contiguous()
    rest = [(conv.weight.detach().to(**cpu)[:, :, 0, 0].contiguous(), conv.bias.detach().to(**cpu), slope)
            for conv, slope in layers[1:]]
    gc = model.gaussian_conditional
    cdfs, lengths, offsets = rans_tables(gc)
    return _Tables(
        M=M, k=k, p=p, above=above, ctx_bias=ctx.bias.detach().to(**cpu),
        hyper_w=w1_hyper.t().contiguous(), first_bias=first.bias.detach().to(**cpu),
        ctx_w=w1_ctx.t().contiguous(), left=left_folded, first_slope=first_slope, rest=rest,
        scale_bound=float(gc.lower_bound_scale.bound.detach().float().reshape(-1)[0]),
        scale_edges=gc.scale_table.detach().to(**cpu)[:-1].contiguous(),
        cdfs=cdfs, cdf_lengths=lengths, offsets=offsets,
    )


def rans_tables(gc: nn.Module) -> Tuple[List[List[int]], List[int], List[int]]:
    """The Gaussian conditional's rANS tables as the coder takes them: each quantized CDF cut
    to its length, the lengths and the offsets; a DicError when they were never built."""
    if gc.quantized_cdf.numel() == 0 or gc.scale_table.numel() == 0:
        raise DicError("the model's entropy coder tables are empty: call model.update() before coding")
    lengths = [int(n) for n in gc.cdf_length.tolist()]
    cdfs = [row[:n] for row, n in zip(gc.quantized_cdf.tolist(), lengths)]
    return cdfs, lengths, [int(o) for o in gc.offset.tolist()]


def decode_position(decoder: RansDecoder, indexes: List[int], cdfs: List[List[int]], lengths: List[int],
                    offsets: List[int]) -> Tensor:
    """One position's symbols (int32) from ``decoder``: only the tables the position uses cross
    into C++ (CompressAI would pass all of them, most of its time per position)."""
    used = sorted(set(indexes))
    local = {index: i for i, index in enumerate(used)}
    values = decoder.decode_stream([local[i] for i in indexes], [cdfs[i] for i in used],
                                   [lengths[i] for i in used], [offsets[i] for i in used])
    return torch.frombuffer(array.array("i", values), dtype=torch.int32)


class ContextCoder:
    """Serial rANS coding of one image's ``y`` given its hyper-prior features, with the model's
    context model and Gaussian conditional. ``compress`` and ``decompress`` share every float
    operation, so the decoder reproduces the encoder's probabilities exactly."""

    def __init__(self, model: nn.Module):
        if not fast_coding_supported(model):
            raise DicError(f"{type(model).__name__}: its context model is not one the fast coder supports")
        with torch.no_grad():
            self.t = _build_tables(model)

    # --- shared pieces --------------------------------------------------------------------
    def _hyper_part(self, hyper: Tensor) -> Tensor:
        """First entropy layer's hyper half plus its bias for every position: H×W×E1."""
        P, H, W = hyper.shape
        flat = hyper.permute(1, 2, 0).reshape(H * W, P)
        return torch.addmm(self.t.first_bias, flat, self.t.hyper_w).view(H, W, -1)

    def _row_part(self, y_hat: Tensor, h: int, hyper_row: Tensor) -> Tensor:
        """First entropy layer's input for row ``h`` from everything but the same-row taps:
        hyper half + context columns · (bias + taps of the rows above). W×E1."""
        t = self.t
        _, width_padded, M = y_hat.shape
        W = width_padded - 2 * t.p
        windows = y_hat.as_strided(
            (W, t.p, t.k, M), (M, width_padded * M, M, 1), h * width_padded * M
        ).reshape(W, t.p * t.k * M)
        context = torch.addmm(t.ctx_bias, windows, t.above)
        return torch.addmm(hyper_row, context, t.ctx_w)

    def _walk(self, hyper: Tensor, y_hat: Tensor) -> Iterator[Tuple[int, int, Tensor, Tensor, Tensor]]:
        """Visit the positions in raster order, yielding ``(h, w, scales, means, slot)``. The
        caller writes the position's quantized value into ``slot`` (its place in the zero-padded
        H+p × W+2p × M buffer ``y_hat``) before asking for the next position. Encoder and decoder
        both walk here, so they compute the same probabilities with the same float operations."""
        t = self.t
        M, p = t.M, t.p
        H, W = hyper.shape[-2:]
        hyper_part = self._hyper_part(hyper.detach().to("cpu", torch.float32))
        outs = [torch.empty(t.left.shape[0])] + [torch.empty(w.shape[0]) for w, _, _ in t.rest]
        for h in range(H):
            base = self._row_part(y_hat, h, hyper_part[h])
            row = y_hat[h + p].view(-1)
            for w in range(W):
                params = self._params(base[w], row[w * M : (w + p) * M], outs)
                yield h, w, params[:M], params[M:], y_hat[h + p, w + p]

    def _params(self, base: Tensor, left: Tensor, outs: List[Tensor]) -> Tensor:
        """Gaussian parameters (scales then means) of one position from its row part and the
        flattened left taps, computed into ``outs``."""
        t = self.t
        a = torch.addmv(base, t.left, left, out=outs[0])
        if t.first_slope is not None:
            F.leaky_relu_(a, t.first_slope)
        for (w, b, slope), out in zip(t.rest, outs[1:]):
            a = torch.addmv(b, w, a, out=out)
            if slope is not None:
                F.leaky_relu_(a, slope)
        return a

    def _indexes(self, scales: Tensor) -> Tensor:
        """CompressAI's ``build_indexes``: the number of table entries (all but the last)
        below the lower-bounded scale."""
        return torch.searchsorted(self.t.scale_edges, torch.clamp_min(scales, self.t.scale_bound))

    # --- coding -----------------------------------------------------------------------------
    def compress(self, y: Tensor, hyper: Tensor) -> Tuple[bytes, Tensor, Tensor]:
        """rANS string of ``y`` (M×H×W) given ``hyper`` (P×H×W, the output of ``h_s``), the
        quantized ``y_hat`` and its integer symbols (M×H×W float32 and int32, on the CPU)."""
        t = self.t
        M, H, W = y.shape
        with torch.no_grad(), single_thread():
            y_cpu = y.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous()  # H×W×M
            y_hat = torch.zeros(H + t.p, W + 2 * t.p, M)
            symbols = torch.empty(H, W, M, dtype=torch.int32)
            indexes = torch.empty(H, W, M, dtype=torch.int32)
            for h, w, scales, means, slot in self._walk(hyper, y_hat):
                indexes[h, w] = self._indexes(scales)
                q = torch.round(y_cpu[h, w] - means)
                symbols[h, w] = q
                torch.add(q, means, out=slot)
            string = RansEncoder().encode_with_indexes(
                symbols.view(-1).tolist(), indexes.view(-1).tolist(), t.cdfs, t.cdf_lengths, t.offsets
            )
        return string, self._interior(y_hat, W), symbols.permute(2, 0, 1).contiguous()

    def decompress(self, string: bytes, hyper: Tensor) -> Tuple[Tensor, Tensor]:
        """``y_hat`` and its integer symbols (M×H×W float32 and int32, on the CPU) decoded from
        ``string`` given ``hyper`` (P×H×W). The string should be guarded with zero padding
        (:func:`dic.models.latent_codec.guard_string`): CompressAI's rANS decoder reads
        without bounds checks."""
        t = self.t
        _, H, W = hyper.shape
        cdfs, lengths, offsets = t.cdfs, t.cdf_lengths, t.offsets
        with torch.no_grad(), single_thread():
            y_hat = torch.zeros(H + t.p, W + 2 * t.p, t.M)
            decoded = torch.empty(H, W, t.M, dtype=torch.int32)
            decoder = RansDecoder()
            decoder.set_stream(string)
            for h, w, scales, means, slot in self._walk(hyper, y_hat):
                symbols = decode_position(decoder, self._indexes(scales).tolist(), cdfs, lengths, offsets)
                decoded[h, w] = symbols
                torch.add(symbols, means, out=slot)
        return self._interior(y_hat, W), decoded.permute(2, 0, 1).contiguous()

    def _interior(self, y_hat: Tensor, W: int) -> Tensor:
        """The H×W×M buffer's values without its padding, as M×H×W."""
        p = self.t.p
        return y_hat[p:, p : p + W].permute(2, 0, 1).contiguous()
