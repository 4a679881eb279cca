"""The fast serial coder of ``dic.models.fast_coding`` against CompressAI's own loop on the same
weights: bit-identical strings, decoded latents and images equal to float rounding, exact
round trips, the hook in the models, and a smoke run of ``dic bench``."""
from __future__ import annotations

import json
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.models import Cheng2020Anchor

from dic.apps.bench import runner as bench
from dic.errors import DicError
from dic.models import base, create_model
from dic.models.fast_coding import ContextCoder, compress_ar, decompress_ar, fast_coding_supported

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
    string, y_hat = coder.compress(y[0], hyper[0])
    reference = _compressai_encode(model, y, hyper)
    assert string == reference  # bit-exact with CompressAI's encoder
    fast = coder.decompress(string, hyper[0])
    assert torch.equal(fast, y_hat)  # our decoder reproduces our encoder exactly
    slow = _compressai_decode(model, string, hyper, 6, 7)
    assert (slow - fast).abs().max() < ROUNDING  # CompressAI decodes our string: same symbols
    assert (slow - y_hat).abs().max() < ROUNDING
    assert y_hat.abs().max() > 1  # not a trivial all-zero latent


def test_decoded_latent_is_the_rounded_latent():
    model = _cheng(seed=3)
    y, hyper = _latents(model, 4, 5, seed=4)
    string, y_hat = ContextCoder(model).compress(y[0], hyper[0])
    # y_hat = round(y − μ) + μ: within half a step of y everywhere.
    assert (y_hat - y[0]).abs().max() <= 0.5 + 1e-5
    fast = ContextCoder(model).decompress(string, hyper[0])
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
    string, y_hat = ContextCoder(model).compress(y[0], hyper[0])
    assert string == _compressai_encode(model, y, hyper)
    assert torch.equal(ContextCoder(model).decompress(string, hyper[0]), y_hat)


def test_drop_in_functions_fill_tensors_like_compressai():
    model = _cheng(seed=7)
    y, hyper = _latents(model, 4, 6, seed=8)
    padded = F.pad(y, (2, 2, 2, 2))
    string = compress_ar(model, padded, hyper, 4, 6, 5, 2)
    reference_padded = F.pad(y, (2, 2, 2, 2))
    assert string == Cheng2020Anchor._compress_ar(model, reference_padded, hyper, 4, 6, 5, 2)
    assert (padded - reference_padded).abs().max() < ROUNDING  # both leave y_hat in the interior
    out = torch.zeros(1, model.M, 8, 10)
    decompress_ar(model, string, out, hyper, 4, 6, 5, 2)
    assert torch.equal(out[..., 2:-2, 2:-2], padded[..., 2:-2, 2:-2])
    assert out[..., :2, :].abs().sum() == 0 and out[..., :, :2].abs().sum() == 0  # border untouched


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


def test_model_paths_agree_and_hook_is_used(monkeypatch):
    model = _tiny_snr()
    x = torch.rand(2, 3, 70, 90)  # batch of two, not a multiple of 64
    calls = {"compress": 0, "decompress": 0}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(base, "compress_ar", spy("compress", base.compress_ar))
    monkeypatch.setattr(base, "fast_decompress", spy("decompress", base.fast_decompress))
    with torch.no_grad():
        fast = model.compress(x)
        assert calls["compress"] == 2  # one call per image: the fast path is the default
        model.fast_coding = False
        slow = model.compress(x)
        assert calls["compress"] == 2
        assert slow["strings"] == fast["strings"]
        assert sum(len(s) for s in fast["strings"][0]) > 50  # y really carries information
        x_slow = model.decompress(slow["strings"], slow["shape"])["x_hat"]
        model.fast_coding = True
        x_fast = model.decompress(fast["strings"], fast["shape"])["x_hat"]
        assert calls["decompress"] == 1  # one call per batch
    assert x_fast.shape == (2, 3, 70, 90)
    diff = (x_fast - x_slow).abs().max()
    assert diff < ROUNDING  # the same image up to float rounding of the Gaussian means


def test_fast_decoder_is_much_faster():
    model = _cheng(N=32)
    y, hyper = _latents(model, 6, 6)
    coder = ContextCoder(model)
    string, _ = coder.compress(y[0], hyper[0])
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
        out = model.compress(x)  # CompressAI's loop codes it
        assert model.decompress(out["strings"], out["shape"])["x_hat"].shape == (1, 3, 64, 64)


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


def test_bench_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = [
        "--model", "snr-decomp", "--size", "128x64", "--repeats", "1", "--warmup", "0",
        "--no-train", "--no-memory", "--json", str(out), "--threads", "0",
    ]
    args += [a for k, v in TINY.items() for a in ("--hparam", f"{k}={json.dumps(v)}")]
    assert bench.main(args) == 0
    text = capsys.readouterr().out
    assert "decode time" in text and "CompressAI" in text
    data = json.loads(out.read_text())
    assert data["format"] == "dic-bench" and data["hparams"]["N"] == 16
    assert data["coding"]["strings_identical"] is True
    assert data["ratios"]["decode_time_ours_over_compressai"] > 0


def test_bench_memory_probe(tmp_path):
    """One fresh-process peak-RSS measurement: it runs and reports more than the model."""
    torch.manual_seed(0)
    model = create_model("snr-decomp", **TINY)
    model.update(force=True)
    path = tmp_path / "model.pt"
    from dic.checkpoints import save_checkpoint

    save_checkpoint(path, model)
    spec = {"op": "encode", "variant": "ours", "model": str(path), "device": "cpu", "threads": 1,
            "train_batch": 1, "train_size": 64, "seed": 0,
            "inputs": {"noisy": torch.rand(1, 3, 64, 64), "strings": None, "shape": None}}
    result = bench.probe_memory(spec, str(tmp_path))
    assert "error" not in result, result
    assert result["peak_mib"] >= result["baseline_mib"] > 50


def test_bench_rejects_bad_options():
    from dic.errors import OptionError

    with pytest.raises(OptionError, match="--size"):
        bench.parse_size("768by512")
    with pytest.raises(OptionError, match="--hparam"):
        bench.parse_hparams(["num_layers"])


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
