"""The ``dic`` command: one subcommand per job, each implemented in the module that owns it.

A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (or the names
given in :data:`SUBCOMMANDS`). User errors (:class:`dic.errors.DicError`) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .errors import DicError

# name → (module, add-arguments function, run function, one-line help)
SUBCOMMANDS = {
    "list": ("dic.cli", "add_list_arguments", "run_list", "list registered models, data sets or losses"),
    "train": ("dic.engine.train", "add_arguments", "run", "train a model from an option file"),
    "test": ("dic.engine.evaluate", "add_arguments", "run", "evaluate checkpoints from an option file"),
    "convert": ("dic.models.convert", "add_arguments", "run", "convert an official checkpoint to ours"),
    "compress": ("dic.codec", "add_compress_arguments", "run_compress", "compress images to .dic files"),
    "decompress": ("dic.codec", "add_decompress_arguments", "run_decompress", "decompress .dic files to PNG"),
    "plot": ("dic.engine.rd", "add_plot_arguments", "run_plot", "plot rate-distortion curves of reports"),
    "bdrate": ("dic.engine.rd", "add_bdrate_arguments", "run_bdrate", "BD-rate and BD-PSNR between two reports"),
    "bench": ("dic.engine.bench", "add_arguments", "run", "measure coding and training speed against CompressAI"),
}


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("models", "datasets", "losses"), help="which registry")
    parser.add_argument("--params", action="store_true",
                        help="models: also print parameter counts at N=192 (quality 6)")


def run_list(args: argparse.Namespace) -> int:
    from .registry import DATASETS, LOSSES, MODELS

    registry = {"models": MODELS, "datasets": DATASETS, "losses": LOSSES}[args.what]
    for name in registry.names():
        if args.params and args.what == "models":
            from .models import count_parameters

            print(f"{name:24s} {count_parameters(name, quality=6):>14,d}")
        else:
            print(name)
    return 0


def guarded(func, *args) -> int:
    """Run ``func``; a :class:`DicError` becomes ``error: <message>`` on stderr and exit code 2.
    The exit code is ``func``'s result when that is an integer, else 0."""
    try:
        result = func(*args)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except DicError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the parser of the chosen subcommand, so `dic list` never imports the trainer.
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    if command is None:
        parser = argparse.ArgumentParser(prog="dic", description="Joint denoising and compression of noisy photographs.")
        sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for name, (*_, help_text) in SUBCOMMANDS.items():
            sub.add_parser(name, help=help_text)
        parser.parse_args(argv)
        return 2
    module, add, _, help_text = SUBCOMMANDS[command]
    parser = argparse.ArgumentParser(prog=f"dic {command}", description=help_text)
    return guarded(lambda: _dispatch(command, parser, add, module, argv[1:]))


def _dispatch(command: str, parser: argparse.ArgumentParser, add: str, module: str, argv: List[str]) -> int:
    mod = importlib.import_module(module)
    getattr(mod, add)(parser)
    return getattr(mod, SUBCOMMANDS[command][2])(parser.parse_args(argv)) or 0


if __name__ == "__main__":
    sys.exit(main())
