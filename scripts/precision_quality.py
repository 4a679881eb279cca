#!/usr/bin/env python
"""What a lower precision of the transforms costs in quality, on the demo's ladders (docs/precision.md).

Each checkpoint codes the demo's test photographs (``data/samples/test``, the noisy images of
``conf/test/demo.yml``: the same noise, seed 0 per image, 8-bit as the evaluator feeds them) at
each noise level, for real, four ways: encoder and decoder in float32 (the reference), only the
decoder in ``--precision``, only the encoder, and both. Per level and ladder it prints the mean
change of PSNR and MS-SSIM of each way against the reference, and the Bjøntegaard deltas of
each way's ladder against the float32 ladder (rate from the strings' bytes, the file header
left out: it is the same in every way). A ladder whose PSNR does not rise with rate takes its
monotone frontier, as ``dic bdrate --frontier`` does; with fewer than two frontier points there
is no delta.

Bfloat16 runs everywhere but is fast only with AMX / AVX512-BF16 (``dic.models.precision``):
on other CPUs the encoder in bfloat16 takes tens of seconds per photograph. Results are kept in
``--out`` (JSON) as they come, one entry per checkpoint, level and photograph, and a rerun skips
the entries it has (``--fresh`` starts over), so a long run can be split.

    python scripts/precision_quality.py                          # the six demo files, levels 1–4
    python scripts/precision_quality.py --levels 3 --weights weights/demo/demo_joint_l2.pth
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "codes"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dic.apps.evaluate.protocol import measure, prepare_sample  # noqa: E402
from dic.apps.evaluate.rd import bd_psnr, bd_rate, upper_envelope  # noqa: E402
from dic.checkpoints import load_for_inference  # noqa: E402
from dic.data.synthetic import SyntheticTestDataset  # noqa: E402
from dic.fileio import atomic_write_text  # noqa: E402
from dic.metrics import bpp_from_strings  # noqa: E402

#: (encoder precision, decoder precision) of each way; the first is the reference.
WAYS = {"reference": ("float32", "float32"), "decoder": ("float32", "low"), "encoder": ("low", "float32"),
        "both": ("low", "low")}
LADDERS = {"joint": "demo_joint_l", "codec-only": "demo_codec_l"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", default=sorted(str(p) for p in (ROOT / "weights/demo").glob("*.pth")),
                        help="checkpoints (default: the six of weights/demo)")
    parser.add_argument("--images", default=str(ROOT / "data/samples/test"), help="clean photographs")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    parser.add_argument("--precision", default="bfloat16", choices=("bfloat16", "float16"),
                        help="the low precision (float16: CUDA only)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results/precision/demo_bfloat16.json"))
    parser.add_argument("--fresh", action="store_true", help="ignore the entries --out already has")
    return parser


def code_image(model: torch.nn.Module, noisy: torch.Tensor, gt: torch.Tensor, low: str) -> Dict[str, Any]:
    """The four ways for one photograph: bpp, PSNR, MS-SSIM, seconds, and whether each decoder
    returned the symbols its encoder wrote."""
    out: Dict[str, Any] = {}
    coded: Dict[str, Dict[str, Any]] = {}
    pixels = noisy.shape[-2] * noisy.shape[-1]
    for way, (enc, dec) in WAYS.items():
        enc, dec = (low if p == "low" else p for p in (enc, dec))
        if enc not in coded:
            start = time.perf_counter()
            coded[enc] = model.compress(noisy, precision=enc)
            coded[enc]["seconds"] = time.perf_counter() - start
        c = coded[enc]
        start = time.perf_counter()
        d = model.decompress(c["strings"], c["shape"], precision=dec)
        seconds = time.perf_counter() - start
        same = all(torch.equal(a, b) for a, b in zip(d["symbols"], c["symbols"]))
        out[way] = {"bpp": bpp_from_strings(c["strings"], pixels), **measure(d["x_hat"].float().cpu(), gt, "pad"),
                    "encode_s": c["seconds"], "decode_s": seconds, "same_symbols": same}
    return out


def run_all(args: argparse.Namespace, results: Dict[str, Any]) -> None:
    device = torch.device(args.device)
    for path in args.weights:
        model = load_for_inference(path, device=device)
        for level in args.levels:
            data = SyntheticTestDataset(args.images, "test", level=level)
            for index, image in enumerate(data.paths):
                key = f"{Path(path).stem}|{level}|{Path(image).stem}"
                if key in results:
                    continue
                sample = prepare_sample(data[index], True, "pad", str(image))
                with torch.no_grad():
                    results[key] = code_image(model, sample.noisy.to(device), sample.gt, args.precision)
                atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
                print(f"{key}: " + ", ".join(f"{w} {r['bpp']:.4f} bpp {r['psnr']:.3f} dB" for w, r in results[key].items()),
                      flush=True)


def mean_of(results: Dict[str, Any], stem: str, level: int, way: str, metric: str) -> Optional[float]:
    values = [r[way][metric] for k, r in results.items() if k.split("|")[:2] == [stem, str(level)]]
    return float(np.mean(values)) if values else None


def frontier(rates: List[float], quality: List[float]):
    kept = upper_envelope(rates, quality)
    return [rates[i] for i in kept], [quality[i] for i in kept]


def summary(results: Dict[str, Any], levels: Sequence[int], low: str) -> str:
    """Per level and ladder: mean ΔPSNR / ΔMS-SSIM of each way, and its BD-rate / BD-PSNR."""
    lines = [f"{low} against float32; mean over the points of the ladder (each the mean over the photographs)",
             f"{'level':>5} {'ladder':<10} {'way':<8} {'Δrate %':>8} {'ΔPSNR dB':>9} {'ΔMS-SSIM':>10} {'BD-rate %':>10} "
             f"{'BD-PSNR dB':>10} {'symbols':>8}"]
    stems = sorted({k.split("|")[0] for k in results})
    for level in levels:
        for ladder, prefix in LADDERS.items():
            points = [s for s in stems if s.startswith(prefix)]
            if not points or mean_of(results, points[0], level, "reference", "bpp") is None:
                continue
            ref = {m: [mean_of(results, s, level, "reference", m) for s in points] for m in ("bpp", "psnr", "ms_ssim")}
            for way in ("decoder", "encoder", "both"):
                cur = {m: [mean_of(results, s, level, way, m) for s in points] for m in ("bpp", "psnr", "ms_ssim")}
                d_rate = np.mean(np.divide(cur["bpp"], ref["bpp"]) - 1) * 100
                d_psnr = np.mean(np.subtract(cur["psnr"], ref["psnr"]))
                d_ssim = np.mean(np.subtract(cur["ms_ssim"], ref["ms_ssim"]))
                same = all(r[way]["same_symbols"] for k, r in results.items()
                           if k.split("|")[0] in points and k.split("|")[1] == str(level))
                try:
                    r1, q1 = frontier(ref["bpp"], ref["psnr"])
                    r2, q2 = frontier(cur["bpp"], cur["psnr"])
                    rate, gain = f"{bd_rate(r1, q1, r2, q2):+10.3f}", f"{bd_psnr(r1, q1, r2, q2):+10.4f}"
                    if len(r1) < len(points):
                        rate += "*"
                except Exception as e:  # fewer than two frontier points, or no overlap
                    rate, gain = f"{'–':>10}", f"{'–':>10}"
                    if "at least 2" not in str(e) and "overlap" not in str(e):
                        raise
                lines.append(f"{level:>5} {ladder:<10} {way:<8} {d_rate:+8.3f} {d_psnr:+9.4f} {d_ssim:+10.5f} {rate} {gain} "
                             f"{'same' if same else 'DIFFER':>8}")
    lines.append("* on the ladder's monotone frontier (a point is beaten by a lower-rate one); "
                 "– fewer than two frontier points: no Bjøntegaard delta")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results: Dict[str, Any] = {} if args.fresh or not out.exists() else json.loads(out.read_text())
    run_all(args, results)
    print(summary(results, args.levels, args.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
