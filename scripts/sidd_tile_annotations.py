#!/usr/bin/env python
"""Cut every SIDD-Medium image into PNG tiles by its camera's geometry (each image's size is
checked first; a file that disagrees is named) and write the annotation JSON files:
sidd_medium_srgb_train.json (tiles), and sidd_medium_srgb_val.json / sidd_medium_srgb_test.json
from the blocks written by scripts/sidd_block.py. Idempotent: existing tiles are kept and
unchanged annotations are not rewritten."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIDD = REPO / "data" / "SIDD"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--medium", type=Path, default=SIDD / "SIDD_Medium_Srgb" / "Data", help="SIDD-Medium scene folders")
    p.add_argument("--tiles", type=Path, default=SIDD / "SIDD_Medium_Srgb_Tiles", help="output folder for tiles")
    p.add_argument("--blocks", type=Path, default=SIDD / "SIDD_Benchmark_Data_Blocks",
                   help="blocks written by sidd_block.py (for the val / test annotations)")
    p.add_argument("--annotations", type=Path, default=SIDD / "annotations", help="output folder for the JSON files")
    p.add_argument("--geometry-json", type=Path, default=None,
                   help='override camera geometry: {"S6": [rows, cols, tile_h, tile_w], ...}')
    p.add_argument("--workers", type=int, default=1, help="processes that cut tiles in parallel")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sys.path.insert(0, str(REPO / "codes"))
    from dic.data.sidd_prepare import sidd_tile_annotations
    from dic.apps.guard import guarded

    return guarded(lambda: sidd_tile_annotations(args.medium, args.tiles, args.blocks, args.annotations,
                                                 args.geometry_json, workers=args.workers,
                                                 show_progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
