#!/usr/bin/env python
"""Float32 inference layouts of the transforms, timed (docs/performance.md, "Memory layout").

Times the analysis (``encode``: ``g_a`` and, for the joint models, the denoising branches) and
the synthesis ``g_s`` of a model with random weights, each fed a contiguous (NCHW) and a
channels-last (NHWC) tensor, and, with ``--compile``, ``torch.compile``-d (Inductor fuses the
element-wise layers into their neighbours; the compilation itself is not timed). Prints the median of ``--repeats`` runs and
the largest difference of each variant's output from the contiguous one, and the first call's
time (kernel selection; with ``--compile``, the compilation).

    python scripts/measure_layouts.py --model snr-decomp --N 192 --size 768x512 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))

import torch  # noqa: E402

from dic.models import create_model  # noqa: E402

LAYOUTS = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="snr-decomp")
    parser.add_argument("--N", type=int, default=192)
    parser.add_argument("--hparam", action="append", default=[], metavar="KEY=INT",
                        help="another integer hyper-parameter, e.g. num_layers=1")
    parser.add_argument("--size", default="768x512", help="WIDTHxHEIGHT (default 768x512)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile-d transforms (channels-last)")
    return parser


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple:
    """(median seconds of ``repeats`` calls, output, seconds of the first, untimed call)."""
    start = time.perf_counter()
    out = fn()  # warm-up: oneDNN builds its kernels for the shapes (and torch.compile compiles)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out, first


def measure(model: torch.nn.Module, x: torch.Tensor, repeats: int, compiled: bool) -> List[Dict]:
    rows: List[Dict] = []
    y = model.encode(x)["y"].float()
    for part, run, arg in (("analysis", lambda t: model.encode(t)["y"], x), ("synthesis g_s", model.g_s, y)):
        reference = None
        for layout, fmt in LAYOUTS.items():
            t = arg.contiguous(memory_format=fmt)
            seconds, out, first = timed(lambda: run(t), repeats)
            out = out.float().contiguous()
            reference = out if reference is None else reference
            rows.append({"part": part, "variant": layout, "seconds": seconds, "first": first,
                         "max_diff": float((out - reference).abs().max())})
        if compiled:
            t = arg.contiguous(memory_format=torch.channels_last)
            fast = torch.compile(run, dynamic=False)
            seconds, out, first = timed(lambda: fast(t), repeats)
            rows.append({"part": part, "variant": "channels-last, compiled", "seconds": seconds, "first": first,
                         "max_diff": float((out.float().contiguous() - reference).abs().max())})
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    width, height = (int(v) for v in args.size.lower().split("x"))
    hparams = {k: int(v) for k, v in (item.split("=", 1) for item in args.hparam)}
    model = create_model(args.model, N=args.N, **hparams).eval()
    x = torch.rand(1, 3, height, width)
    print(f"{args.model} N={args.N} {hparams or ''} {width}x{height}, {args.threads} thread(s), "
          f"median of {args.repeats}; max |Δ| against the contiguous run")
    with torch.no_grad():
        rows = measure(model, x, args.repeats, args.compile)
    for row in rows:
        print(f"{row['part']:<15} {row['variant']:<28} {row['seconds']:8.3f} s   first call {row['first']:8.3f} s   "
              f"max |Δ| {row['max_diff']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
