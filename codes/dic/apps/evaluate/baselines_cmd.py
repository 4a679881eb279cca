"""The classical sequential baselines alone, on the data sets of an evaluation option file
(docs/evaluation.md, "Sequential baselines")::

    python -m dic.apps.evaluate.baselines_cmd -opt conf/test/sequential_classical.yml --methods nlm-jpeg webp

The checkpoints and the learned denoiser of the file are dropped; everything else (data sets,
levels, protocol, outputs under ``results/<name>/``) is the evaluator's (:mod:`.runner`).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..guard import guarded
from .baselines import CLASSICAL
from .runner import evaluate_option_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-opt", "--opt", required=True, metavar="OPTIONS.yml")
    parser.add_argument("--methods", nargs="+", default=["nlm-jpeg", "nlm-webp"], choices=list(CLASSICAL))
    parser.add_argument("--qualities", nargs="+", type=int, default=None, help="quality ladder (1–100)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="override options")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Evaluate ``args.opt`` with only the baselines of ``args.methods``."""
    overrides = list(args.set) + ["path.checkpoint=null", "test.denoiser=null",
                                  "test.baselines=[" + ",".join(args.methods) + "]"]
    if args.qualities:
        overrides.append("test.baseline_qualities=[" + ",".join(map(str, args.qualities)) + "]")
    return evaluate_option_file(args.opt, overrides, progress=not args.no_progress)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m dic.apps.evaluate.baselines_cmd -opt X.yml [--methods ...] [--qualities ...]``."""
    parser = argparse.ArgumentParser(prog="python -m dic.apps.evaluate.baselines_cmd",
                                     description="Classical sequential baselines on the data sets of an option file.")
    add_arguments(parser)
    return guarded(run, parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
