#!/usr/bin/env python
"""Write a small sample set with no download: real photographs bundled inside scikit-image's
package (astronaut, coffee, motorcycle, Hubble deep field for training; chelsea, coins for
validation; rocket, camera for testing) as 8-bit RGB PNGs in <out>/{train,val,test}.
Idempotent: images already written are skipped."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "data" / "samples", help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sys.path.insert(0, str(REPO / "codes"))
    from dic.data.prepare import prepare_samples
    from dic.apps.guard import guarded

    return guarded(lambda: prepare_samples(args.out, show_progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
