#!/usr/bin/env python
"""Prepare Flicker 2W: keep images at least 256 px on both sides, sort them by file name and put
the first round(0.99·n) into train/ (Python's round, as the official script) and the rest into
val/ (hard links, or copies with --copy).
Idempotent: files already in place are skipped."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLICKER = REPO / "data" / "flicker"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--src", type=Path, default=FLICKER / "flicker_2W_images", help="folder of Flicker 2W JPEGs")
    p.add_argument("--train", type=Path, default=FLICKER / "train", help="output folder for training images")
    p.add_argument("--val", type=Path, default=FLICKER / "val", help="output folder for validation images")
    p.add_argument("--min-size", type=int, default=256, help="drop images narrower or lower than this")
    p.add_argument("--val-fraction", type=float, default=0.01, help="share of the sorted list that validates")
    p.add_argument("--copy", action="store_true", help="copy files instead of hard-linking them")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sys.path.insert(0, str(REPO / "codes"))
    from dic.data.prepare import flicker_process
    from dic.apps.guard import guarded

    return guarded(lambda: flicker_process(args.src, args.train, args.val, min_size=args.min_size,
                                           val_fraction=args.val_fraction, copy=args.copy,
                                           show_progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
