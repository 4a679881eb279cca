#!/usr/bin/env python
"""Measure coding and training speed and peak memory against CompressAI's coding path; the
same as ``dic bench``.

    python scripts/bench.py --model snr-decomp --size 768x512 [--repeats 3] [--json out.json]
"""
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))

from dic.apps.cli import main as dic_main  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    return dic_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
