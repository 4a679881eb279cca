"""The arguments of ``dic test`` / ``dic-test`` / ``test.py``, importable without torch, so
``dic test --help`` (and a bad argument) answers at once; :mod:`.runner` runs the command."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dic test`` / ``dic-test`` / ``test.py``."""
    parser.add_argument("-opt", "--opt", required=True, metavar="OPTIONS.yml", help="test option file")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override options, e.g. --set test.save_images=true datasets.kodak.level=1")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
