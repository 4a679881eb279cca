"""Latent coding of the Cheng2020-anchor family, one object for both directions (in the spirit
of CompressAI's ``latent_codecs``): ``z`` with the factorized prior, the hyper-prior features
``h_s(ẑ)``, then ``y`` with the context model, serially or in two checkerboard passes
(docs/architecture.md).

:class:`LatentCodec` is what :meth:`dic.models.base.CodecBase.compress` and
:meth:`~dic.models.base.CodecBase.decompress` call, so encoder and decoder take the same path.
By default (``exact``, ``.dic`` format 3) ``h_s`` and the ``y`` coder run in the fixed point of
:mod:`dic.models.exact` (serial in wavefronts, or checkerboard), whose probabilities are the
same on every machine (docs/portability.md). The float path of format 2 remains: the serial
``y`` coder is the fast :class:`~dic.models.fast_coding.ContextCoder`, or with ``fast=False``
CompressAI's own loop (:class:`ReferenceCoder`, kept for comparison); the strings are the
same. A model with ``context: checkerboard`` uses
:class:`~dic.models.checkerboard.CheckerboardCoder` (or CompressAI's two-pass codec).

Both directions return the integer symbols the rANS coder carries, per latent (``y``:
``round(y − μ)``; ``z``: ``round(z − median)``), B×C×H×W int32 on the CPU: the canonical form of
the latents that ``.dic`` files checksum, identical on both sides exactly when the decoder
reproduced the encoder's latents.

What keeps the two sides in step:

- the exact path computes every probability in fixed point on the CPU, the same on any
  machine; the float path runs ``h_s`` on the CPU in float32 with one thread in both
  directions, like its serial loop, so its probabilities do not depend on the device or on
  ``torch.set_num_threads`` (only on the instruction set and libraries: format 2's limit);
- the decoder pads every string with zeros (:func:`guard_string`) before CompressAI's rANS
  decoder sees it: that decoder reads its input without bounds checks, so a damaged string
  would otherwise make it read past the end of the buffer (and crash the process once the read
  leaves mapped memory); within the padding it reads zeros and returns garbage symbols, which
  the symbols' checksum then rejects.
"""
from __future__ import annotations

import copy
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.models import JointAutoregressiveHierarchicalPriors as CompressAIJoint
from torch import Tensor

from .checkerboard import CheckerboardCoder, CompressAICheckerboardCoder
from .exact import ExactCheckerboardCoder, ExactContextCoder, exact_hyper_features, exact_y_coder
from .fast_coding import ContextCoder, fast_coding_supported, single_thread

__all__ = ["LatentCodec", "ReferenceCoder", "guard_string", "hyper_features", "y_coder"]

Strings = List[List[bytes]]
Verify = Callable[[str, Tensor], None]


def guard_string(string: bytes, n_symbols: int) -> bytes:
    """``string`` followed by enough zero bytes that CompressAI's rANS decoder, which reads its
    input without bounds checks, stays inside the buffer while decoding ``n_symbols`` symbols.

    Per symbol the decoder reads at most one 32-bit word to renormalise (4 bytes per symbol);
    its escape for large values (the "bypass" mode) reads up to 15 nibbles per nibble of 0xF it
    has read, and those come from the string itself (≤ 16 bytes per byte of string). Once past
    the string it reads zeros, which end every escape run. A valid string is read exactly to its
    end, so the padding changes no result."""
    return bytes(string) + bytes(4 * n_symbols + 16 * len(string) + 1024)


def hyper_features(model: nn.Module, z_hat: Tensor) -> Tensor:
    """``h_s(ẑ)`` computed on the CPU in float32 with one thread, whatever the model's device
    and the caller's thread count (a copy of ``h_s`` is moved when the model is elsewhere)."""
    h_s = model.h_s
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in h_s.parameters()):
        h_s = copy.deepcopy(h_s).to("cpu", torch.float32)
    with torch.no_grad(), single_thread():
        return h_s(z_hat.detach().to("cpu", torch.float32))


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class ReferenceCoder:
    """CompressAI's own serial loop (``_compress_ar`` / ``_decompress_ar`` of
    ``JointAutoregressiveHierarchicalPriors``) behind :class:`ContextCoder`'s interface, on the
    model's device. That loop does not expose its integer symbols; they are recovered as
    ``round(ŷ − μ)`` with ``μ`` from one parallel pass of the context model over the final
    ``ŷ`` (equal to the loop's symbols: its means and the parallel ones differ by float
    rounding, far below the half step that would change a rounded value)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.k = model.context_prediction.kernel_size[0]
        self.p = self.k // 2

    def compress(self, y: Tensor, hyper: Tensor) -> Tuple[bytes, Tensor, Tensor]:
        device = _model_device(self.model)
        M, H, W = y.shape
        y_padded = F.pad(y[None].to(device), (self.p,) * 4)
        params = hyper[None].to(device)
        string = CompressAIJoint._compress_ar(self.model, y_padded, params, H, W, self.k, self.p)
        y_hat = y_padded[:, :, self.p : self.p + H, self.p : self.p + W]
        return string, y_hat[0].cpu(), self._symbols(y_hat, params)

    def decompress(self, string: bytes, hyper: Tensor) -> Tuple[Tensor, Tensor]:
        device = _model_device(self.model)
        _, H, W = hyper.shape
        y_padded = torch.zeros(1, self.model.M, H + 2 * self.p, W + 2 * self.p, device=device)
        params = hyper[None].to(device)
        CompressAIJoint._decompress_ar(self.model, string, y_padded, params, H, W, self.k, self.p)
        y_hat = y_padded[:, :, self.p : self.p + H, self.p : self.p + W]
        return y_hat[0].cpu(), self._symbols(y_hat, params)

    def _symbols(self, y_hat: Tensor, params: Tensor) -> Tensor:
        """``round(ŷ − μ)`` (M×H×W int32 on the CPU), μ from one parallel pass."""
        ctx = F.conv2d(y_hat, self.model.context_prediction.weight * self.model.context_prediction.mask,
                       self.model.context_prediction.bias, padding=self.p)
        _, means = self.model.entropy_parameters(torch.cat((params, ctx), dim=1)).chunk(2, 1)
        return torch.round(y_hat - means)[0].to("cpu", torch.int32)


YCoder = Union[ContextCoder, ReferenceCoder, CheckerboardCoder, CompressAICheckerboardCoder, ExactContextCoder,
               ExactCheckerboardCoder]


def y_coder(model: nn.Module, fast: bool = True, exact: bool = False) -> YCoder:
    """The ``y`` coder of the model's ``context``. ``exact``: the fixed-point coders of
    :mod:`.exact` (portable: serial or checkerboard). Otherwise the float coders: for
    ``checkerboard`` the two-pass :class:`~.checkerboard.CheckerboardCoder` (CompressAI's
    ``CheckerboardLatentCodec`` when not ``fast``); for ``serial`` the fast loop when asked and
    the model's structure allows it, else CompressAI's loop."""
    if exact:
        return exact_y_coder(model)
    if getattr(model, "context", "serial") == "checkerboard":
        return CheckerboardCoder(model) if fast else CompressAICheckerboardCoder(model)
    return ContextCoder(model) if fast and fast_coding_supported(model) else ReferenceCoder(model)


class LatentCodec:
    """``z`` then ``y`` of one model, coded or decoded the same way in both directions.
    ``exact`` (the default of the ``.dic`` format from version 3): ``h_s`` and the ``y`` coder
    in the fixed point of :mod:`.exact`, so the symbols decode alike on every machine; else the
    float path of format version 2 (``fast``: our loops rather than CompressAI's)."""

    def __init__(self, model: nn.Module, fast: bool = True, exact: bool = True):
        self.model = model
        self.fast = fast
        self.exact = exact

    def _hyper(self, z_hat: Tensor, z_symbols: Tensor) -> Tensor:
        """The ``y`` coder's hyper-prior input: counts of the exact ``h_s`` from the symbols, or
        the float ``h_s`` of ``ẑ``."""
        return exact_hyper_features(self.model, z_symbols) if self.exact else hyper_features(self.model, z_hat)

    def compress(self, y: Tensor) -> Tuple[Strings, List[Tensor]]:
        """``([y_strings, z_strings], [y_symbols, z_symbols])`` of a B×M×H×W latent, one
        string per image; the symbols are what :meth:`decompress` will return."""
        model = self.model
        z = model.h_a(y)
        z_strings = model.entropy_bottleneck.compress(z)
        z_hat = model.entropy_bottleneck.decompress(z_strings, z.shape[-2:])  # the decoder's ẑ
        z_symbols = self._z_symbols(z_hat)
        hyper = self._hyper(z_hat, z_symbols)
        coder = y_coder(model, self.fast, self.exact)
        coded = [coder.compress(y[i], hyper[i]) for i in range(y.shape[0])]
        y_strings = [string for string, _, _ in coded]
        y_symbols = torch.stack([symbols for _, _, symbols in coded])
        return [y_strings, z_strings], [y_symbols, z_symbols]

    def decompress(self, strings: Sequence[Sequence[bytes]], z_shape: Sequence[int],
                   verify: Optional[Verify] = None) -> Tuple[Tensor, List[Tensor]]:
        """``(ŷ, [y_symbols, z_symbols])`` from ``[y_strings, z_strings]`` and the size of ``z``.
        ``verify(name, symbols)``, when given, is called with each latent's decoded symbols as
        soon as they are known (``"z"`` first, then ``"y"``) and may raise to stop decoding
        before work is spent on a latent that is already wrong."""
        model = self.model
        y_strings, z_strings = strings
        eb = model.entropy_bottleneck
        n_z = eb.channels * int(z_shape[0]) * int(z_shape[1])
        z_hat = eb.decompress([guard_string(s, n_z) for s in z_strings], tuple(int(s) for s in z_shape))
        z_symbols = self._z_symbols(z_hat)
        if verify is not None:
            verify("z", z_symbols)
        hyper = self._hyper(z_hat, z_symbols)
        coder = y_coder(model, self.fast, self.exact)
        n_y = model.M * hyper.shape[-2] * hyper.shape[-1]
        decoded = [coder.decompress(guard_string(s, n_y), hyper[i]) for i, s in enumerate(y_strings)]
        y_symbols = torch.stack([symbols for _, symbols in decoded])
        if verify is not None:
            verify("y", y_symbols)
        y_hat = torch.stack([values for values, _ in decoded]).to(z_hat.device, z_hat.dtype)
        return y_hat, [y_symbols, z_symbols]

    def _z_symbols(self, z_hat: Tensor) -> Tensor:
        """``round(ẑ − median)``: the factorized prior's integer symbols (B×C×h×w int32, CPU);
        exact, since ẑ is the symbol plus the median in one float addition."""
        medians = self.model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        return torch.round(z_hat - medians).to("cpu", torch.int32)
