#!/usr/bin/env python
"""Peak memory of training steps of a model, measured on the CPU (docs/reproducing.md, "Memory").

Builds the model and both Adams exactly as ``dic train`` does, then runs ``--steps`` full
training steps (:class:`dic.apps.train.step.TrainStep`: forward with the clean-image guidance,
the MSE + L1-guidance loss, backward, clipping, main Adam, auxiliary loss and Adam) on random
``--batch`` × 3 × ``--patch``² crops, and prints the process's peak resident memory
(``ru_maxrss``) after each phase. Run it once per batch size (the peak only grows within a
process) and scale: with two batch sizes, peak(B) ≈ peak(b₁) + (B − b₁)·slope. From the second
step on, Adam's two moment buffers exist, so that step's peak is the steady one.

Example (the second ICME 2024 network at N=192, one 256×256 crop):

    python scripts/measure_train_memory.py --quality 6 --branch-width full --num-heads 8 --batch 1
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))

import torch  # noqa: E402

from dic.apps.train.step import TrainStep, build_optimizers  # noqa: E402
from dic.losses import RateDistortionLoss, default_lambda  # noqa: E402
from dic.models import create_model  # noqa: E402


def peak_gib() -> float:
    """This process's peak resident memory so far, GiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="snr-decomp")
    parser.add_argument("--quality", type=int, default=6, help="1–6: N=128 for 1–3, 192 for 4–6 (default 6)")
    parser.add_argument("--branch-width", choices=("half", "full"), default=None,
                        help="snr-decomp: half (the MSE tree's network) or full (the MS-SSIM / SIDD trees')")
    parser.add_argument("--num-heads", type=int, default=None, help="snr-decomp: attention heads")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hparams = {k: v for k, v in (("branch_width", args.branch_width), ("num_heads", args.num_heads)) if v is not None}
    model = create_model(args.model, args.quality, **hparams).train()
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer, aux_optimizer = build_optimizers(model, 1e-4, 1e-3)
    criterion = RateDistortionLoss("mse", default_lambda("mse", args.quality), "l1", 3.0)
    step = TrainStep(model, criterion, optimizer, aux_optimizer, device=torch.device("cpu"), loss_cap=1e9)
    print(f"{args.model} {hparams} quality {args.quality} (N={model.N}): {params:,} parameters, "
          f"{trainable:,} trained; batch {args.batch} of {args.patch}×{args.patch}")
    print(f"after building model and optimizers: peak RSS {peak_gib():.2f} GiB")
    for i in range(args.steps):
        gt = torch.rand(args.batch, 3, args.patch, args.patch)
        noisy = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1)
        start = time.perf_counter()
        result = step(gt, noisy)
        print(f"step {i + 1}: loss {float(result.terms['loss']):.3f}, {time.perf_counter() - start:.1f} s, "
              f"peak RSS {peak_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
