#!/usr/bin/env python
"""Does each rate point of a λ ladder spend fewer bits than the next one up, photograph by
photograph? Checked on the demo's training and validation photographs only (docs/demo.md,
"The ladders"), so a ladder can be fixed without looking at the test photographs.

For each ladder (checkpoints by rising λ), each photograph of ``--splits`` and each noise level,
the estimated rate (the model's likelihoods in eval mode: what the coder writes, to within a
few bytes) of every point must be below that of the point above it. Prints each violation and
a count; exits 1 when there is one.

    python scripts/check_ladder.py                                   # both demo ladders
    python scripts/check_ladder.py --ladder weights/demo/demo_joint_l1.pth weights/demo/demo_joint_l2.pth
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "codes"))

import torch  # noqa: E402

from dic.checkpoints import load_for_inference  # noqa: E402
from dic.data.synthetic import SyntheticTestDataset  # noqa: E402
from dic.metrics import bpp_from_likelihoods, quantize_8bit  # noqa: E402

DEMO_LADDERS = [[str(ROOT / f"weights/demo/demo_{kind}_l{i}.pth") for i in (1, 2, 3)] for kind in ("joint", "codec")]

Key = Tuple[str, int, str]  # (split, level, photograph)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", nargs="+", action="append", default=None, metavar="CKPT",
                        help="checkpoints by rising λ; repeat for several ladders (default: the demo's two)")
    parser.add_argument("--samples", default=str(ROOT / "data/samples"),
                        help="folder of the split folders (python scripts/prepare_samples.py)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    return parser


@torch.no_grad()
def rates(checkpoint: str, samples: Path, splits: Sequence[str], levels: Sequence[int]) -> Dict[Key, float]:
    """Estimated bpp of ``checkpoint`` on every photograph of ``splits`` at each level (the noise
    of the demo's evaluation: seed 0 per photograph, 8-bit input)."""
    model = load_for_inference(checkpoint)
    out: Dict[Key, float] = {}
    for split in splits:
        for level in levels:
            data = SyntheticTestDataset(str(samples / split), "test", level=level)
            for index, path in enumerate(data.paths):
                _, noisy = data[index]
                noisy = quantize_8bit(noisy).unsqueeze(0)
                likelihoods = model(noisy)["likelihoods"]
                out[(split, level, Path(path).name)] = float(bpp_from_likelihoods(likelihoods, noisy.shape[-2] * noisy.shape[-1]))
    return out


def violations(ladder: Sequence[str], table: Dict[str, Dict[Key, float]]) -> List[str]:
    """One line per (lower point, photograph, level) whose rate is not below the next point's."""
    lines = []
    for low, high in zip(ladder, ladder[1:]):
        for key, rate in table[low].items():
            above = table[high][key]
            if rate >= above:
                split, level, name = key
                lines.append(f"{Path(low).stem} {rate:.4f} bpp ≥ {Path(high).stem} {above:.4f} bpp "
                             f"({(rate / above - 1) * 100:+.1f} %): {split}/{name}, level {level}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    ladders = args.ladder or DEMO_LADDERS
    table = {ckpt: rates(ckpt, Path(args.samples), args.splits, args.levels) for ladder in ladders for ckpt in ladder}
    bad = [line for ladder in ladders for line in violations(ladder, table)]
    print("\n".join(bad) if bad else "every rate point spends fewer bits than the next, on every photograph and level")
    total = sum(len(table[c]) for ladder in ladders for c in ladder[:-1])
    print(f"{len(bad)} violation(s) in {total} comparisons")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
