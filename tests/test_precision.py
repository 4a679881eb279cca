"""The transforms' precision (dic.models.precision, docs/precision.md): detection of fast low
precision, what ``auto`` resolves to, the refusals, and the bfloat16 transforms on the CPU: the
decoder's symbols never depend on its precision, a bfloat16 encoder's file decodes to its own
symbols, and the images stay close to float32's. Tiny models, 64×64 images."""
from __future__ import annotations

import warnings

import pytest
import torch

from dic.errors import ArgumentError
from dic.models import apply_context_masks, create_model
from dic.models import precision as P

TINY_SNR = dict(N=16, num_layers=1, num_heads=2, head_dim=8, token_patch=4, local_blocks=[1, 1], nonlocal_blocks=1)


def _model(name: str, **hparams):
    torch.manual_seed(0)
    model = create_model(name, **hparams)
    apply_context_masks(model)
    model.update(force=True)
    return model.eval()


@pytest.fixture(scope="module")
def models(one_thread):
    return {"cheng2020-anchor": _model("cheng2020-anchor", N=16), "snr-decomp": _model("snr-decomp", **TINY_SNR)}


@pytest.fixture(scope="module")
def noisy():
    g = torch.Generator().manual_seed(1)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(64, 64), mode="bilinear")
    return (smooth + 0.05 * torch.randn(1, 3, 64, 64, generator=g)).clamp(0, 1)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bfloat16 on a CPU without AMX/AVX512-BF16
        return fn(*args, **kwargs)


def test_auto_follows_detection():
    fast = P.fast_bfloat16("cpu")
    assert isinstance(fast, bool) and fast == P.cpu_fast_bfloat16()
    assert P.resolve_precision("auto", "cpu") == (torch.bfloat16 if fast else torch.float32)
    assert P.describe("cpu") == {"device": "cpu", "fast_bfloat16": fast, "auto": "bfloat16" if fast else "float32"}
    assert P.resolve_precision("float32", "cpu") == torch.float32
    assert P.resolve_precision(torch.bfloat16, "cpu") == torch.bfloat16
    if not torch.cuda.is_available():
        assert P.fast_bfloat16("cuda") is False and P.cuda_bfloat16() is False


def test_cpu_detection_falls_back_to_cpuinfo(tmp_path, monkeypatch):
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    assert P.cpu_fast_bfloat16(str(info)) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 amx_tile amx_bf16 amx_int8\n")
    assert P.cpu_fast_bfloat16(str(info)) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma amx_tile\n")
    assert P.cpu_fast_bfloat16(str(info)) is False
    assert P.cpu_fast_bfloat16(str(tmp_path / "absent")) is False  # neither API nor cpuinfo: safe False

    def broken():
        raise RuntimeError("probe failed")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    info.write_text("flags\t\t: avx512_bf16\n")
    assert P.cpu_fast_bfloat16(str(info)) is True  # a failing probe: the flags decide


def test_refusals(monkeypatch):
    monkeypatch.setattr(P, "_warned_slow", False)
    with pytest.raises(ArgumentError, match="precision: float16 runs on CUDA only; on the CPU use bfloat16"):
        P.resolve_precision("float16", "cpu")
    with pytest.raises(ArgumentError, match="precision: expected one of auto, float32, bfloat16, float16, got 'fp8'"):
        P.resolve_precision("fp8", "cpu")
    with pytest.raises(ArgumentError, match="precision: expected one of"):
        P.check_precision(torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        P.resolve_precision("bfloat16", "cpu")
    slow = [w for w in caught if "many times slower" in str(w.message)]
    assert bool(slow) == (not P.cpu_fast_bfloat16())


def test_model_refuses_float16_on_cpu_before_coding(models, noisy):
    model = models["cheng2020-anchor"]
    with pytest.raises(ArgumentError, match="float16 runs on CUDA only"):
        model.compress(noisy, precision="float16")
    coded = model.compress(noisy)
    with pytest.raises(ArgumentError, match="float16 runs on CUDA only"):
        model.decompress(coded["strings"], coded["shape"], precision="float16")


@pytest.mark.parametrize("name", ["cheng2020-anchor", "snr-decomp"])
def test_bfloat16_decoder_same_symbols_close_image(models, noisy, name):
    model = models[name]
    coded = model.compress(noisy)
    ref = model.decompress(coded["strings"], coded["shape"])
    low = _quiet(model.decompress, coded["strings"], coded["shape"], precision="bfloat16")
    for a, b, c in zip(ref["symbols"], low["symbols"], coded["symbols"]):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert low["x_hat"].dtype == torch.float32 and low["x_hat"].shape == ref["x_hat"].shape
    difference = (low["x_hat"] - ref["x_hat"]).abs()
    assert 0 < difference.max() < 0.05 and difference.mean() < 0.005  # bfloat16 ran, and stays close


@pytest.mark.parametrize("name", ["cheng2020-anchor", "snr-decomp"])
def test_bfloat16_encoder_round_trips(models, noisy, name):
    model = models[name]
    coded = _quiet(model.compress, noisy, precision="bfloat16")
    out = model.decompress(coded["strings"], coded["shape"])
    for a, b in zip(coded["symbols"], out["symbols"]):
        assert torch.equal(a, b)
    x = noisy  # 64×64: already a multiple of the padding
    y32 = model._analyse(x)
    y16 = _quiet(model._analyse, x, precision="bfloat16")
    assert y16.dtype == torch.float32 and not torch.equal(y16, y32)
    assert (y16 - y32).abs().max() < 0.05 * y32.abs().max()


def test_float32_is_the_default_path(models, noisy):
    """precision float32 runs no autocast: the same floats as the transforms called directly."""
    model = models["cheng2020-anchor"]
    with torch.no_grad():
        y = model.g_a(noisy)
        assert torch.equal(model._analyse(noisy), y)
        y_hat = torch.round(y)
        assert torch.equal(model._synthesize(y_hat), model.g_s(y_hat.contiguous(memory_format=torch.channels_last))
                           .clamp(0, 1).contiguous())


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["float16", "bfloat16", "auto"])
def test_cuda_low_precision_decodes_the_same_symbols(noisy, precision):
    if precision == "bfloat16" and not P.cuda_bfloat16(emulated=True):
        pytest.skip("this GPU has no bfloat16")
    model = _model("snr-decomp", **TINY_SNR).cuda()
    dtype = P.resolve_precision(precision, "cuda")
    assert precision != "auto" or dtype == (torch.bfloat16 if P.fast_bfloat16("cuda") else torch.float32)
    coded = model.compress(noisy.cuda(), precision=precision)
    ref = model.decompress(coded["strings"], coded["shape"])
    low = model.decompress(coded["strings"], coded["shape"], precision=precision)
    for a, b, c in zip(coded["symbols"], ref["symbols"], low["symbols"]):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert low["x_hat"].dtype == torch.float32 and (low["x_hat"] - ref["x_hat"]).abs().max() < 0.05
