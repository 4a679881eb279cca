"""The fast serial coder of ``dic.models.fast_coding`` against CompressAI's own loop on the same
weights: bit-identical strings, decoded latents and images equal to float rounding, exact
round trips with their integer symbols, the one latent-coding hook the models use in both
directions, and the guard against CompressAI's unchecked rANS reads (``dic bench`` is tested
in test_bench.py)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.models import Cheng2020Anchor

from dic.errors import BitstreamError, DicError
from dic.models import create_model
from dic.models.fast_coding import ContextCoder, fast_coding_supported
from dic.models.latent_codec import ReferenceCoder, guard_string, hyper_features

TINY = dict(N=16, num_layers=1, num_heads=2, head_dim=8, token_patch=4, local_blocks=[1, 1], nonlocal_blocks=1)
# Below this the two decoded latents count as equal: the parameters differ by float32 rounding.
ROUNDING = 1e-5


def _cheng(N: int = 32, seed: int = 0) -> Cheng2020Anchor:
    torch.manual_seed(seed)
    model = Cheng2020Anchor(N=N).eval()
    model.update(force=True)
    return model


def _latents(model: nn.Module, h: int, w: int, seed: int = 1):
    """y and hyper features that make the context model predict many different scales, some
    small enough that large symbols take CompressAI's bypass escape."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(1, model.M, h, w, generator=g) * 4
    hyper = torch.randn(1, 2 * model.M, h, w, generator=g) * 3
    return y, hyper


def _compressai_encode(model, y, hyper) -> bytes:
    h, w = y.shape[-2:]
    return Cheng2020Anchor._compress_ar(model, F.pad(y, (2, 2, 2, 2)), hyper, h, w, 5, 2)


def _compressai_decode(model, string, hyper, h, w) -> torch.Tensor:
    y_hat = torch.zeros(1, model.M, h + 4, w + 4)
    Cheng2020Anchor._decompress_ar(model, string, y_hat, hyper, h, w, 5, 2)
    return y_hat[0, :, 2:-2, 2:-2]


def test_strings_match_compressai_and_decode_both_ways():
    model = _cheng()
    y, hyper = _latents(model, 6, 7)
    coder = ContextCoder(model)
    string, y_hat, symbols = coder.compress(y[0], hyper[0])
    reference = _compressai_encode(model, y, hyper)
    assert string == reference  # bit-exact with CompressAI's encoder
    fast, decoded = coder.decompress(string, hyper[0])
    assert torch.equal(fast, y_hat)  # our decoder reproduces our encoder exactly
    assert torch.equal(decoded, symbols) and decoded.dtype == torch.int32 and decoded.abs().max() > 1
    slow = _compressai_decode(model, string, hyper, 6, 7)
    assert (slow - fast).abs().max() < ROUNDING  # CompressAI decodes our string: same symbols
    assert (slow - y_hat).abs().max() < ROUNDING
    assert y_hat.abs().max() > 1  # not a trivial all-zero latent


def test_decoded_latent_is_the_rounded_latent():
    model = _cheng(seed=3)
    y, hyper = _latents(model, 4, 5, seed=4)
    string, y_hat, symbols = ContextCoder(model).compress(y[0], hyper[0])
    # y_hat = round(y − μ) + μ: within half a step of y everywhere; the symbols are round(y − μ).
    assert (y_hat - y[0]).abs().max() <= 0.5 + 1e-5
    means = y_hat - symbols
    assert torch.equal(torch.round(y[0] - means).int(), symbols)
    fast, _ = ContextCoder(model).decompress(string, hyper[0])
    assert torch.equal(fast, y_hat)


def test_many_scales_are_used():
    model = _cheng()
    y, hyper = _latents(model, 6, 7)
    coder = ContextCoder(model)
    ctx = model.context_prediction(y)  # a prediction close to the coder's, for the spread of scales
    params = model.entropy_parameters(torch.cat((hyper, ctx), 1))
    used = coder._indexes(params[0, : model.M].flatten()).unique()
    assert len(used) >= 10


def test_masked_weights_unmasked_in_storage_decode_alike():
    """CompressAI's decoder uses the raw weight, its encoder the masked one; ours always masks.
    With garbage in the masked taps our coder must still agree with CompressAI's encoder."""
    model = _cheng(seed=5)
    with torch.no_grad():
        model.context_prediction.weight.add_(torch.randn_like(model.context_prediction.weight)
                                             * (1 - model.context_prediction.mask))
    y, hyper = _latents(model, 5, 5, seed=6)
    string, y_hat, _ = ContextCoder(model).compress(y[0], hyper[0])
    assert string == _compressai_encode(model, y, hyper)
    assert torch.equal(ContextCoder(model).decompress(string, hyper[0])[0], y_hat)


def test_reference_coder_is_compressais_loop_with_the_same_symbols():
    """fast_coding=False runs CompressAI's own _compress_ar/_decompress_ar; its recovered
    symbols are the fast coder's, and each decodes the other's string."""
    model = _cheng(seed=7)
    y, hyper = _latents(model, 4, 6, seed=8)
    fast, slow = ContextCoder(model), ReferenceCoder(model)
    string, y_hat, symbols = fast.compress(y[0], hyper[0])
    ref_string, ref_y_hat, ref_symbols = slow.compress(y[0], hyper[0])
    assert ref_string == string == _compressai_encode(model, y, hyper)
    assert torch.equal(ref_symbols, symbols) and (ref_y_hat - y_hat).abs().max() < ROUNDING
    decoded, decoded_symbols = slow.decompress(string, hyper[0])
    assert torch.equal(decoded_symbols, symbols) and (decoded - y_hat).abs().max() < ROUNDING


def _tiny_snr(seed: int = 0) -> nn.Module:
    """A tiny snr-decomp whose latent is not all zeros (y scaled up) and whose predicted scales
    spread over the table (entropy parameters perturbed)."""
    torch.manual_seed(seed)
    model = create_model("snr-decomp", **TINY)
    last = model.g_a_block2[-1]  # CompressAI's final stride-2 conv3x3 of g_a
    assert isinstance(last, nn.Conv2d)
    with torch.no_grad():
        last.weight.mul_(30)
        last.bias.add_(torch.randn_like(last.bias) * 3)
        model.entropy_parameters[-1].bias.add_(torch.randn_like(model.entropy_parameters[-1].bias))
    model.update(force=True)
    return model.eval()


def _count_calls(monkeypatch, cls, calls):
    for name in ("compress", "decompress"):
        original = getattr(cls, name)

        def wrapped(self, *args, _original=original, _key=f"{cls.__name__}.{name}", **kwargs):
            calls[_key] = calls.get(_key, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapped)


def test_both_directions_use_the_one_hook(monkeypatch):
    """On the float path (format 2), model.compress and model.decompress code y with the same
    coder: the fast one by default, CompressAI's loop with fast_coding=False; strings and symbols
    agree between the two."""
    model = _tiny_snr()
    x = torch.rand(2, 3, 70, 90)  # batch of two, not a multiple of 64
    calls = {}
    _count_calls(monkeypatch, ContextCoder, calls)
    _count_calls(monkeypatch, ReferenceCoder, calls)
    with torch.no_grad():
        fast = model.compress(x, exact=False)
        x_fast = model.decompress(fast["strings"], fast["shape"], exact=False)
        assert calls == {"ContextCoder.compress": 2, "ContextCoder.decompress": 2}  # one per image
        model.fast_coding = False
        slow = model.compress(x, exact=False)
        x_slow = model.decompress(slow["strings"], slow["shape"], exact=False)
    assert calls == {"ContextCoder.compress": 2, "ContextCoder.decompress": 2,
                     "ReferenceCoder.compress": 2, "ReferenceCoder.decompress": 2}
    assert slow["strings"] == fast["strings"]
    assert sum(len(s) for s in fast["strings"][0]) > 50  # y really carries information
    for coded in (fast, slow):  # compress and decompress return the same integer symbols
        assert [tuple(s.shape) for s in coded["symbols"]] == [(2, 16, 8, 8), (2, 16, 2, 2)]
    for a, b, c, d in zip(fast["symbols"], slow["symbols"], x_fast["symbols"], x_slow["symbols"]):
        assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)
    assert x_fast["x_hat"].shape == (2, 3, 70, 90)
    assert (x_fast["x_hat"] - x_slow["x_hat"]).abs().max() < ROUNDING  # the same image up to float rounding


def test_verify_sees_each_latent_before_the_next_stage():
    model = _tiny_snr()
    with torch.no_grad():
        out = model.compress(torch.rand(1, 3, 64, 64))
        seen = []
        model.decompress(out["strings"], out["shape"], verify=lambda name, s: seen.append((name, s)))
        assert [name for name, _ in seen] == ["z", "y"]
        assert all(torch.equal(s, ref) for (_, s), ref in zip(seen, out["symbols"][::-1]))

        def stop(name, symbols):
            raise BitstreamError(f"stop at {name}")

        with pytest.raises(BitstreamError, match="stop at z"):
            model.decompress(out["strings"], out["shape"], verify=stop)


def test_hyper_features_do_not_depend_on_the_thread_count():
    model = _tiny_snr()
    z_hat = torch.round(torch.randn(1, 16, 3, 5) * 3)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            results.append(hyper_features(model, z_hat))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(results[0], r) for r in results[1:])


def test_guard_keeps_valid_strings_and_contains_damaged_ones():
    """A valid string decodes the same with the guard; a damaged one yields garbage symbols
    instead of reading past the buffer."""
    model = _cheng(N=16)
    y, hyper = _latents(model, 5, 6)
    coder = ContextCoder(model)
    string, y_hat, symbols = coder.compress(y[0], hyper[0])
    n = model.M * 5 * 6
    guarded = guard_string(string, n)
    assert guarded.startswith(string) and len(guarded) == len(string) + 4 * n + 16 * len(string) + 1024
    assert torch.equal(coder.decompress(guarded, hyper[0])[1], symbols)
    _, garbage = coder.decompress(guard_string(bytes(b ^ 0x55 for b in string), n), hyper[0])
    assert not torch.equal(garbage, symbols)


_ALL_ONES = """
import torch
from compressai.models import Cheng2020Anchor
from dic.models.fast_coding import ContextCoder
from dic.models.latent_codec import guard_string
torch.manual_seed(0)
model = Cheng2020Anchor(N=16).eval()
model.update(force=True)
hyper = torch.randn(32, 16, 16)
string = bytes([255]) * (1 << 20)  # every nibble 0xF: CompressAI's escape reads ~15 bytes per byte
ContextCoder(model).decompress(guard_string(string, 16 * 16 * 16), hyper)
print("decoded")
"""


def test_guarded_decoder_survives_an_adversarial_string():
    """A 1 MiB string of 0xFF makes CompressAI's rANS decoder read about 15 MiB past its end
    (without the guard this process dies with SIGSEGV); guarded, it returns. Run in a child
    process so a regression is a failed test, not a crashed suite."""
    result = subprocess.run([sys.executable, "-c", _ALL_ONES], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "decoded" in result.stdout, (result.returncode, result.stderr[-2000:])


def test_fast_decoder_is_much_faster():
    model = _cheng(N=32)
    y, hyper = _latents(model, 6, 6)
    coder = ContextCoder(model)
    string, _, _ = coder.compress(y[0], hyper[0])
    start = time.perf_counter()
    coder.decompress(string, hyper[0])
    fast = time.perf_counter() - start
    start = time.perf_counter()
    _compressai_decode(model, string, hyper, 6, 6)
    slow = time.perf_counter() - start
    assert fast < slow / 2, (fast, slow)


def test_unsupported_structures_fall_back():
    model = _cheng(N=16)
    assert fast_coding_supported(model)
    other = _cheng(N=16)
    other.entropy_parameters[1] = nn.GELU()
    assert not fast_coding_supported(other)
    with pytest.raises(DicError, match="not one the fast coder supports"):
        ContextCoder(other)
    mask_b = _cheng(N=16)
    with torch.no_grad():  # a type-B mask sees the current position: not causal for coding
        mask_b.context_prediction.mask[:, :, 2, 2] = 1
        mask_b.context_prediction.weight.fill_(0.1)
    assert not fast_coding_supported(mask_b)


def test_snr_model_falls_back_when_structure_differs():
    model = _tiny_snr()
    model.entropy_parameters[1] = nn.GELU()
    model.update(force=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model.compress(x, exact=False)  # CompressAI's loop codes it
        decoded = model.decompress(out["strings"], out["shape"], exact=False)
        with pytest.raises(DicError, match="exact coder supports"):  # the exact path refuses, clearly
            model.compress(x)
    assert decoded["x_hat"].shape == (1, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(out["symbols"], decoded["symbols"]))


def test_tables_need_update():
    torch.manual_seed(0)
    model = Cheng2020Anchor(N=16).eval()
    with pytest.raises(DicError, match="update"):
        ContextCoder(model)


def test_thread_count_is_restored():
    model = _cheng(N=16)
    y, hyper = _latents(model, 2, 2)
    before = torch.get_num_threads()
    ContextCoder(model).compress(y[0], hyper[0])
    assert torch.get_num_threads() == before


def test_indexes_equal_compressai_build_indexes():
    model = _cheng(N=16)
    coder = ContextCoder(model)
    table = model.gaussian_conditional.scale_table
    scales = torch.cat([
        table, torch.nextafter(table, torch.full_like(table, 1e9)), torch.nextafter(table, torch.zeros_like(table)),
        torch.tensor([-5.0, 0.0, 1e-3, 0.1, 0.11, 300.0, 1e6]), torch.rand(1000) * 300, torch.rand(1000),
    ])
    expected = model.gaussian_conditional.build_indexes(scales)
    assert torch.equal(coder._indexes(scales).int(), expected)
