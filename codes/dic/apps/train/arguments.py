"""The arguments of ``dic train`` / ``dic-train`` / ``train.py``, importable without torch, so
``dic train --help`` (and a bad argument) answers at once; :mod:`.loop` runs the command."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dic train`` / ``dic-train`` / ``train.py``."""
    parser.add_argument("-opt", "--opt", required=True, metavar="PATH", help="training option file (YAML)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override option keys, e.g. --set train.step.value=100 datasets.train.batch_size=4")
