#!/usr/bin/env python
"""Write the SIDD benchmark's .mat blocks as PNGs: ValidationNoisyBlocksSrgb.mat and
ValidationGtBlocksSrgb.mat → <out>/SIDD_Validation/<scene>/<inst>_{NOISY,GT}_SRGB_<bb>.png,
BenchmarkNoisyBlocksSrgb.mat → <out>/SIDD_Test/<scene>/<inst>_NOISY_SRGB_<bb>.png. Scenes take the
sorted folder names of SIDD_Benchmark_Data when it exists, else index numbers (0000, 0001, ...).
Idempotent: blocks already written are skipped (the .mat is not even loaded)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIDD = REPO / "data" / "SIDD"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mat-dir", type=Path, default=SIDD / "SIDD_Benchmark_zips", help="folder of the three .mat files")
    p.add_argument("--benchmark-data", type=Path, default=SIDD / "SIDD_Benchmark_Data",
                   help="folder whose sorted subfolders name the scenes (optional)")
    p.add_argument("--out", type=Path, default=SIDD / "SIDD_Benchmark_Data_Blocks", help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sys.path.insert(0, str(REPO / "codes"))
    from dic.data.sidd_prepare import sidd_blocks
    from dic.apps.guard import guarded

    return guarded(lambda: sidd_blocks(args.mat_dir, args.out, args.benchmark_data, show_progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
