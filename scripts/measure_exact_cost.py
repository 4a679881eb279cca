#!/usr/bin/env python
"""What the exact entropy path costs (docs/portability.md): the demo's two λ ladders (shipped
weights) code the demo's held-out test photographs at the four noise levels through the exact
path (``.dic`` format 3) and the float path (format 2); prints, per ladder and level, the mean
rate and PSNR of each and the BD-rate / BD-PSNR of exact against float.

    python scripts/measure_exact_cost.py [--levels 1,2,3,4] [--json PATH]

Needs the demo's photographs in data/samples (``make demo`` prepares them).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))  # runs from a checkout without pip install -e .

import torch  # noqa: E402

from dic.apps.evaluate.envelope import upper_envelope  # noqa: E402
from dic.apps.evaluate.rd import bd_psnr, bd_rate  # noqa: E402
from dic.apps.evaluate.runner import build_test_sets  # noqa: E402
from dic.checkpoints import load_for_inference  # noqa: E402
from dic.config import load_options  # noqa: E402
from dic.errors import DicError  # noqa: E402
from dic.metrics import psnr, quantize_8bit  # noqa: E402

LADDERS = {"joint": [REPO / "weights" / "demo" / f"demo_joint_l{k}.pth" for k in (1, 2, 3)],
           "codec": [REPO / "weights" / "demo" / f"demo_codec_l{k}.pth" for k in (1, 2, 3)]}
MODELS = {"joint": "snr-decomp", "codec": "cheng2020-anchor"}
TEST_OPT = REPO / "conf" / "test" / "demo.yml"


def point(model: torch.nn.Module, images: List, exact: bool) -> Dict[str, float]:
    """Mean bpp (real bitstreams) and mean PSNR against the clean images."""
    bpp, quality = [], []
    with torch.no_grad():
        for gt, noisy in images:
            x = quantize_8bit(noisy)[None]
            out = model.compress(x, exact=exact)
            bits = 8 * sum(len(s) for group in out["strings"] for s in group)
            bpp.append(bits / (x.shape[-2] * x.shape[-1]))
            decoded = quantize_8bit(model.decompress(out["strings"], out["shape"], exact=exact)["x_hat"])
            quality.append(psnr(decoded[0], gt))
    return {"bpp": sum(bpp) / len(bpp), "psnr": sum(quality) / len(quality)}


def _bd(delta, *curves) -> Optional[float]:
    """A Bjøntegaard delta, or None when a frontier has a single point (no curve to integrate)."""
    try:
        return delta(*curves)
    except DicError:
        return None


def _fmt(value: Optional[float], digits: int) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,2,3,4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    results: Dict[str, Dict] = {}
    for kind, ladder in LADDERS.items():
        overrides = [f"datasets.samples.root={REPO / 'data' / 'samples' / 'test'}", f"network.model={MODELS[kind]}",
                     "datasets.samples.level=[" + ",".join(map(str, levels)) + "]"]
        opt = load_options(TEST_OPT, overrides, is_train=False)
        test_sets = build_test_sets(opt.datasets, str(TEST_OPT))
        models = [load_for_inference(path) for path in ladder]
        for t in test_sets:
            images = [t.dataset[i] for i in range(len(t.dataset))]
            curves = {path: [point(m, images, exact=path == "exact") for m in models] for path in ("float", "exact")}
            r = {p: [c["bpp"] for c in curves[p]] for p in curves}
            d = {p: [c["psnr"] for c in curves[p]] for p in curves}
            front = {p: upper_envelope(r[p], d[p]) for p in curves}
            a, b = ([r[p][i] for i in front[p]] for p in curves), ([d[p][i] for i in front[p]] for p in curves)
            (ra, rb), (da, db) = a, b
            n = len(models)
            row = {"curves": curves, "bd_rate_percent": _bd(bd_rate, ra, da, rb, db),
                   "bd_psnr_db": _bd(bd_psnr, ra, da, rb, db),
                   "mean_rate_change_percent": 100 * sum(r["exact"][i] / r["float"][i] - 1 for i in range(n)) / n,
                   "mean_psnr_change_db": sum(d["exact"][i] - d["float"][i] for i in range(n)) / n}
            results[f"{kind} {t.label}"] = row
            print(f"{kind:6s} {t.label:24s} BD-rate {_fmt(row['bd_rate_percent'], 3)} %  "
                  f"BD-PSNR {_fmt(row['bd_psnr_db'], 4)} dB  "
                  f"mean Δrate {row['mean_rate_change_percent']:+.3f} %  mean ΔPSNR {row['mean_psnr_change_db']:+.4f} dB  "
                  + "  ".join(f"{curves['float'][i]['bpp']:.4f}→{curves['exact'][i]['bpp']:.4f} bpp "
                              f"{curves['float'][i]['psnr']:.3f}→{curves['exact'][i]['psnr']:.3f} dB" for i in range(n)),
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
