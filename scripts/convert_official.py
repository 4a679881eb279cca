#!/usr/bin/env python
"""Convert an official snr-decomp / multiscale-decomp checkpoint (training or evaluation file)
into a dic checkpoint; the same as ``dic convert``.

    python scripts/convert_official.py IN OUT --arch snr-decomp [--quality 6]
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))

from dic.cli import guarded  # noqa: E402
from dic.models import convert  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    convert.add_arguments(parser)
    args = parser.parse_args(argv)
    return guarded(convert.run, args)


if __name__ == "__main__":
    sys.exit(main())
