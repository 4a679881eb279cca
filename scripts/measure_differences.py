#!/usr/bin/env python
"""Measure the size of each remaining difference between this project's defaults and the
official releases' measurement (docs/reproducing.md §6), on the photographs in data/samples
(``python scripts/prepare_samples.py`` writes them). Prints one block per difference.

    python scripts/measure_differences.py [--root data/samples]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import List

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))

from dic.apps.evaluate.protocol import psnr_uint8, release_blur, truncate_8bit  # noqa: E402
from dic.data.io import list_images, read_image, to_tensor  # noqa: E402
from dic.data.noise import LEVELS, add_noise, linear_to_srgb, srgb_to_linear  # noqa: E402
from dic.metrics import psnr  # noqa: E402
from dic.models import crop_to_multiple  # noqa: E402


def rounded(x: torch.Tensor) -> np.ndarray:
    """A 3×H×W float image rounded to H×W×3 uint8 (our default protocol)."""
    return x.mul(255).round().byte().permute(1, 2, 0).numpy()


def truncation_vs_rounding(photos: List[Path], rng: np.random.Generator) -> None:
    print("PSNR by truncation (releases) minus PSNR by rounding (ours), x_hat = clean + N(0, σ²):")
    for target in (28.0, 38.0):
        sigma = 255 / 10 ** (target / 20)
        diffs = []
        for path in photos:
            clean = read_image(path)
            x = torch.from_numpy(np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255) / 255).float()
            x = x.permute(2, 0, 1)
            gt = to_tensor(clean)
            diffs.append(psnr_uint8(truncate_8bit(x), truncate_8bit(gt)) - psnr_uint8(rounded(x), clean))
        print(f"  at ~{target:.0f} dB: {np.mean(diffs):+.3f} dB (per photo {np.min(diffs):+.3f} .. {np.max(diffs):+.3f})")


def float_vs_rounded_input(images: List[torch.Tensor]) -> None:
    print("PSNR of the noisy input rounded to 8 bits (ours) minus kept float (releases):")
    for level in LEVELS:
        diffs = []
        for gt in images:
            noisy = add_noise(gt, *LEVELS[level], torch.Generator().manual_seed(0))
            as_float = 10 * math.log10(1 / torch.mean((noisy.double() - gt.double()) ** 2).item())
            diffs.append(psnr_uint8(rounded(noisy), truncate_8bit(gt)) - as_float)
        print(f"  level {level}: {np.mean(diffs):+.4f} dB")


def blur_before_vs_after_crop(images: List[torch.Tensor], names: List[str]) -> None:
    print("snr-decomp's blur of the uncropped image (releases) vs of the crop: pixels that differ")
    for name, gt in zip(names, images):
        noisy = add_noise(gt, *LEVELS[2], torch.Generator().manual_seed(0)).unsqueeze(0)
        before = crop_to_multiple(release_blur(noisy))
        after = release_blur(crop_to_multiple(noisy))
        differs = (before - after).abs().amax(dim=1) > 1e-6
        h, w = gt.shape[-2:]
        ch, cw = before.shape[-2:]
        print(f"  {name:22s} {h}×{w} → {ch}×{cw}: {differs.float().mean().item() * 100:.2f} %")


def srgb_curves(images: List[torch.Tensor]) -> None:
    print("the releases' sRGB curves vs the standard ones (same noise seed):")
    shift = [(linear_to_srgb(srgb_to_linear(x, True), True) - x).mean().item() * 255 for x in images]
    print(f"  noise-free round trip through the releases' curves: {np.mean(shift):+.2f} levels on average "
          f"(per photo {np.min(shift):+.2f} .. {np.max(shift):+.2f})")
    for level in LEVELS:
        diff, p_std, p_leg = [], [], []
        for gt in images:
            std = add_noise(gt, *LEVELS[level], torch.Generator().manual_seed(0), False)
            leg = add_noise(gt, *LEVELS[level], torch.Generator().manual_seed(0), True)
            diff.append((leg - std).mean().item() * 255)
            p_std.append(float(psnr(std[None], gt[None])))
            p_leg.append(float(psnr(leg[None], gt[None])))
        print(f"  level {level}: noisy image {np.mean(diff):+.2f} levels brighter; its PSNR "
              f"{np.mean(p_std):.2f} dB (standard) vs {np.mean(p_leg):.2f} dB (releases')")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "data" / "samples",
                        help="folder whose images (and subfolders' images) are measured")
    args = parser.parse_args()
    photos = sorted(p for folder in [args.root, *sorted(args.root.glob("*"))] if folder.is_dir()
                    for p in list_images(folder))
    if not photos:
        print(f"error: no images under {args.root}; run python scripts/prepare_samples.py", file=sys.stderr)
        return 2
    images = [to_tensor(read_image(p)) for p in photos]
    print(f"{len(photos)} photographs under {args.root}\n")
    truncation_vs_rounding(photos, np.random.default_rng(0))
    float_vs_rounded_input(images)
    blur_before_vs_after_crop(images, [p.name for p in photos])
    srgb_curves(images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
