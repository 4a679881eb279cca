#!/usr/bin/env python
"""Convert an official snr-decomp / multiscale-decomp checkpoint (training or evaluation file)
into a dic checkpoint; the same as ``dic convert``.

    python scripts/convert_official.py IN OUT --arch snr-decomp [--quality 6]
"""

import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))

from dic.apps.cli import main as dic_main  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    return dic_main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
