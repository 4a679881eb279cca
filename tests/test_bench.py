"""``dic bench``: a smoke run of the coding comparison, the training timing through the trainer's
own step, the official-style model (same outputs as ours, computed the official way), the
fresh-process memory probe and the refusal of bad options. Tiny models, 64-pixel images."""
from __future__ import annotations

import argparse
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from compressai.layers import MaskedConv2d

from dic.apps.bench import add_arguments, benchmark
from dic.apps.cli import main as dic_main
from dic.apps.bench.inputs import make_noisy, parse_hparams, parse_size, synthetic_image
from dic.apps.bench.memory import probe_memory
from dic.apps.bench.official import ExplicitAttention, OfficialStyleSNRDecomp, explicit_masked_attention, host_snr_map
from dic.apps.bench.roofline import count_gflop, matmul_peak, roofline, roofline_lines, roofline_ratios
from dic.apps.bench.training import VariantStep, variant_model
from dic.apps.train import step as train_step
from dic.checkpoints import save_checkpoint
from dic.errors import OptionError
from dic.models import apply_context_masks, create_model
from dic.models.precision import fast_bfloat16
from dic.models.layers import MultiHeadSelfAttention, box_blur, masked_attention, snr_map, token_key_mask

TINY = dict(N=16, num_layers=1, num_heads=2, head_dim=8, token_patch=4, local_blocks=[1, 1], nonlocal_blocks=1)
TINY_ARGS = [a for k, v in TINY.items() for a in ("--hparam", f"{k}={json.dumps(v)}")]


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = create_model("snr-decomp", **TINY)
    apply_context_masks(model)
    model.update(force=True)
    return model.eval()


def _bench_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([*argv, *TINY_ARGS])


def _noisy_batch(n: int = 2, size: int = 64):
    """Noisy synthetic pictures whose left half is flat, so the SNR map is high there: half the
    stage-1 tokens of image 0 may serve as keys (and its one stage-2 token), a quarter of
    image 1's (and no stage-2 token: attention over no key)."""
    gt = torch.cat([synthetic_image(size, size, i) for i in range(n)])
    noisy = make_noisy(gt, 3, 0)
    noisy[:, :, :, : size // 2] = 0.5
    noisy[1:, :, : size // 2, :] = 0.25
    return gt, noisy


def test_bench_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--model", "snr-decomp", "--size", "128x64", "--repeats", "1", "--warmup", "0",
            "--no-train", "--no-memory", "--json", str(out), "--threads", "0", "--peak-size", "128", *TINY_ARGS]
    assert dic_main(["bench", *args]) == 0
    text = capsys.readouterr().out
    assert "decode time" in text and "CompressAI" in text
    data = json.loads(out.read_text())
    assert data["format"] == "dic-bench" and data["version"] == 1 and data["hparams"]["N"] == 16
    assert data["coding"]["strings_identical"] is True
    assert data["ratios"]["decode_time_ours_over_compressai"] > 0
    # serial and checkerboard twins, each through the exact coder, our float one and CompressAI's
    coding = data["coding"]
    assert {coding[p]["context"] for p in ("exact", "ours", "compressai", "exact-checkerboard", "checkerboard",
                                           "compressai-checkerboard")} == {"serial", "checkerboard"}
    assert all(coding["round_trip_exact"].values())
    assert len(coding["round_trip_exact"]) == 6 + fast_bfloat16("cpu")  # exact-bf16 where bfloat16 is fast
    assert data["ratios"]["decode_time_exact_over_float"] > 0 and data["ratios"]["encode_time_exact_checkerboard_over_float"] > 0
    assert coding["checkerboard_symbols_identical"] is True
    assert coding["components"]["synthesis_s"]["median"] > 0 and coding["checkerboard"]["decode_s"]["median"] > 0
    assert data["ratios"]["decode_time_checkerboard_over_serial"] > 0
    assert "checkerboard" in text and "synthesis g_s" in text
    # the default paths: every float32 one, and the bfloat16 one only where it is fast
    assert ("exact-bf16" in coding) == fast_bfloat16("cpu") and "exact-fp16" not in coding
    # the roofline: FLOP counts, the float32 peak, the distance; bfloat16 flagged or measured
    roof = data["roofline"]
    assert roof["peak"]["float32"]["gflops"] > 0 and roof["peak"]["float32"]["n"] == 128
    assert roof["peak"]["float16"] == {"skipped": "CUDA only"}
    assert ("skipped" in roof["peak"]["bfloat16"]) != fast_bfloat16("cpu")
    for component in ("analysis", "synthesis"):
        entry = roof["transforms"][component]
        assert entry["gflop"] > 0 and coding["components"][f"{component}_gflop"] == entry["gflop"]
        row = entry["float32"]
        assert row["gflops"] == pytest.approx(entry["gflop"] / row["time_s"])
        assert row["time_over_peak"] == pytest.approx(roof["peak"]["float32"]["gflops"] / row["gflops"])
        assert data["ratios"][f"{component}_float32_time_over_peak"] == row["time_over_peak"]
    assert "roofline" in text and "time / peak" in text and "peak: float32" in text
    assert data["machine"]["precision"]["auto"] == ("bfloat16" if fast_bfloat16("cpu") else "float32")


def test_bench_bfloat16_path(tmp_path, capsys):
    """``--paths exact-bf16`` runs the transforms in bfloat16 (slow but correct on a CPU
    without AMX / AVX512-BF16, flagged so): same symbols round trip, the ratios against
    CompressAI and float32, the transforms timed in both precisions and the bfloat16 peak."""
    out = tmp_path / "bench.json"
    args = ["--size", "64x64", "--repeats", "1", "--warmup", "0", "--no-train", "--no-memory", "--threads", "0",
            "--contexts", "serial", "--paths", "exact,compressai,exact-bf16", "--peak-size", "64",
            "--json", str(out), *TINY_ARGS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert dic_main(["bench", *args]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    coding = data["coding"]
    assert list(coding["round_trip_exact"]) == ["exact", "compressai", "exact-bf16"]
    assert all(coding["round_trip_exact"].values())
    assert coding["exact-bf16"]["precision"] == "bfloat16" and coding["exact"]["precision"] == "float32"
    for op in ("encode", "decode"):
        assert data["ratios"][f"{op}_time_bf16_over_compressai"] > 0 and data["ratios"][f"{op}_time_bf16_over_float32"] > 0
    assert coding["components"]["synthesis_bfloat16_s"]["median"] > 0
    peak = data["roofline"]["peak"]["bfloat16"]
    assert peak["gflops"] > 0 and peak["fast"] == fast_bfloat16("cpu") and ("note" in peak) != peak["fast"]
    assert data["roofline"]["transforms"]["synthesis"]["bfloat16"]["time_over_peak"] > 0
    assert "exact bf16" in text and "in bfloat16: analysis" in text


def test_roofline_arithmetic():
    components = {"analysis_gflop": 10.0, "synthesis_gflop": 40.0, "analysis_s": {"median": 2.0},
                  "synthesis_s": {"median": 1.0}, "synthesis_bfloat16_s": {"median": 0.2}}
    peaks = {"float32": {"gflops": 50.0, "n": 2048}, "bfloat16": {"gflops": 200.0, "n": 2048, "fast": True},
             "float16": {"skipped": "CUDA only"}}
    roof = roofline(components, peaks)
    assert roof["transforms"]["analysis"]["float32"] == {"time_s": 2.0, "gflops": 5.0, "peak_gflops": 50.0,
                                                         "time_over_peak": 10.0}
    assert roof["transforms"]["synthesis"]["bfloat16"]["time_over_peak"] == 1.0
    assert "bfloat16" not in roof["transforms"]["analysis"]
    assert roofline_ratios(roof) == {"analysis_float32_time_over_peak": 10.0, "synthesis_float32_time_over_peak": 1.25,
                                     "synthesis_bfloat16_time_over_peak": 1.0}
    lines = "\n".join(roofline_lines(roof))
    assert "float16: CUDA only" in lines and "synthesis g_s" in lines
    peak = matmul_peak(torch.float32, torch.device("cpu"), n=64, budget_s=0.01)
    assert peak["n"] == 64 and peak["runs"] >= 2 and peak["gflops"] > 0
    assert count_gflop(lambda: torch.nn.functional.conv2d(torch.ones(1, 2, 8, 8), torch.ones(4, 2, 3, 3))) == \
        pytest.approx(2 * 4 * 2 * 9 * 6 * 6 / 1e9)


def test_bench_training_runs_the_trainers_step(monkeypatch):
    """--no-coding on a tiny model: every timed step of every CPU variant goes through
    TrainStep, and the training block and its ratio are reported."""
    calls = []
    original = train_step.TrainStep.__call__

    def counting(self, gt, noisy):
        calls.append(type(self.model).__name__)
        return original(self, gt, noisy)

    monkeypatch.setattr(train_step.TrainStep, "__call__", counting)
    args = _bench_args("--no-coding", "--no-memory", "--repeats", "2", "--warmup", "1",
                       "--train-batch", "1", "--train-size", "64", "--threads", "0")
    results = benchmark(args)
    train = results["train"]
    assert train["batch"] == 1 and train["size"] == 64
    for variant in ("ours", "official-style"):
        assert len(train[variant]["step_s"]["runs"]) == 2 and train[variant]["step_s"]["median"] > 0
        assert "capped_steps" not in train[variant]
    assert all("skipped" in train[v] for v in ("bf16", "channels-last", "compile", "fast"))  # CUDA only
    assert sorted(calls) == ["OfficialStyleSNRDecomp"] * 3 + ["SNRDecomp"] * 3
    assert results["ratios"]["train_step_ours_over_official_style"] > 0
    assert "coding" not in results


def test_variant_step_trains_a_copy():
    """One step updates the variant's own weights, keeps the context taps masked and leaves the
    benchmarked model alone."""
    model = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = VariantStep(model, "official-style", batch=1, size=64, seed=0, device=torch.device("cpu"))
    step()
    assert step.capped == 0
    after = step.model.state_dict()
    assert not torch.equal(after["g_s.0.conv1.weight"], before["g_s.0.conv1.weight"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    context = step.model.context_prediction
    assert isinstance(context, MaskedConv2d) and torch.all(context.weight[context.mask == 0] == 0)


def test_channels_last_variant_is_an_explicit_copy():
    model = _tiny_model()
    variant = variant_model(model, "channels-last")
    assert variant is not model and variant.training
    assert variant.g_s[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.g_s[0].conv1.weight.is_contiguous()
    with pytest.raises(ValueError, match="unknown training variant"):
        variant_model(model, "fastest")


def test_explicit_attention_equals_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 16, 8, generator=g) for _ in range(3))
    key_mask = torch.rand(3, 16, generator=g) > 0.5
    key_mask[1] = True
    key_mask[2] = False  # no key kept: both weigh every key the same
    for mask in (key_mask, None):
        assert torch.allclose(explicit_masked_attention(q, k, v, mask), masked_attention(q, k, v, mask), atol=1e-5)


def test_host_blur_equals_device_blur():
    _, noisy = _noisy_batch(3)
    device = snr_map(noisy)
    for host in (host_snr_map(noisy), host_snr_map(noisy, blur=box_blur(noisy))):
        assert host.shape == (3, 1, 64, 64) and host.amax() == 1
        # equal but where a near-zero noise estimate amplifies rounding (a few 1e-4 at most)
        difference = (host - device).abs()
        assert difference.max() < 1e-3 and difference.mean() < 1e-6
    assert (host_snr_map(noisy, kernel_size=3) - device).abs().max() > 0.1  # the check can fail


def test_official_style_model_computes_the_same():
    """Same state-dict keys and outputs as the default model to float rounding, and the default
    model keeps its own attention (nothing patched)."""
    model = _tiny_model()
    official = OfficialStyleSNRDecomp.from_model(model).eval()
    assert official.state_dict().keys() == model.state_dict().keys()
    attentions = [m for m in official.modules() if isinstance(m, MultiHeadSelfAttention)]
    assert attentions and all(isinstance(m, ExplicitAttention) for m in attentions)
    assert not any(isinstance(m, ExplicitAttention) for m in model.modules())
    gt, noisy = _noisy_batch(2)
    keys = token_key_mask(F.interpolate(snr_map(noisy), size=(16, 16)), TINY["token_patch"])
    assert keys.float().mean(1).tolist() == [0.5, 0.25]  # the attention masks some keys
    with torch.no_grad():
        ours, theirs = model(noisy, gt), official(noisy, gt)
    for key in ("x_hat", "y", "y_inter", "y_gt"):
        assert torch.allclose(ours[key], theirs[key], atol=1e-4), key
    for key in ("y", "z"):
        assert torch.allclose(ours["likelihoods"][key], theirs["likelihoods"][key], atol=1e-4), key
    assert torch.equal(official.denoise_context(noisy), host_snr_map(noisy))
    assert F.l1_loss(ours["x_hat"], theirs["x_hat"]) < 1e-5


@pytest.mark.parametrize("op, variant", [("encode", "ours"), ("train", "official-style")])
def test_bench_memory_probe(tmp_path, op, variant):
    """One fresh-process peak-RSS measurement: it runs and reports more than the model."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, _tiny_model())
    spec = {"op": op, "variant": variant, "model": str(path), "device": "cpu", "threads": 1,
            "train_batch": 1, "train_size": 64, "seed": 0,
            "inputs": {"noisy": torch.rand(1, 3, 64, 64), "strings": None, "shape": None}}
    result = probe_memory(spec, str(tmp_path))
    assert "error" not in result, result
    assert result["peak_mib"] >= result["baseline_mib"] > 50


def test_bench_rejects_bad_options(capsys):
    with pytest.raises(OptionError, match="--size"):
        parse_size("768by512")
    with pytest.raises(OptionError, match="--hparam"):
        parse_hparams(["num_layers"])
    with pytest.raises(OptionError, match="--repeats"):
        benchmark(_bench_args("--repeats", "-1"))
    with pytest.raises(OptionError, match="--contexts: expected serial and/or checkerboard, got 'raster'"):
        benchmark(_bench_args("--contexts", "serial,raster"))
    with pytest.raises(OptionError, match="--train-variants: unknown variant 'turbo'"):
        benchmark(_bench_args("--train-variants", "ours,turbo"))
    with pytest.raises(OptionError, match="--paths exact-fp16: float16 runs on CUDA only"):
        benchmark(_bench_args("--paths", "exact,exact-fp16", "--no-train", "--no-memory", "--size", "64x64"))
    with pytest.raises(OptionError, match="--peak-size must be positive"):
        benchmark(_bench_args("--peak-size", "0"))
    assert dic_main(["bench", "--noise-level", "7", "--no-train", "--no-memory", "--repeats", "0", "--size", "64x64",
                 *TINY_ARGS]) == 2
    assert "--noise-level: noise level must be one of 1, 2, 3, 4, got 7" in capsys.readouterr().err


def test_bench_puts_the_callers_thread_count_back():
    """--threads holds for the measurements only (in-process callers, such as the suite, keep theirs)."""
    before = torch.get_num_threads()
    benchmark(_bench_args("--threads", str(before + 1), "--paths", "exact", "--contexts", "serial",
                          "--no-train", "--no-memory", "--no-roofline"))
    assert torch.get_num_threads() == before
