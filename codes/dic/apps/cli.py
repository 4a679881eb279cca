"""The ``dic`` command: one subcommand per job. Each application module exposes
``add_arguments(parser)`` and ``run(args) -> int``; this module holds the table and the small
commands of its own (``list``, ``convert``). User errors print one line and exit 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from ..checkpoints import has_coding_tables, load_checkpoint, load_model, read_checkpoint_file, save_checkpoint
from ..checkpoints.io import RESERVED_KEYS
from ..checkpoints.official import ARCHS, DEFAULT_HEAD_DIM, model_from_official, split_official
from ..data import DATASETS
from ..losses import LOSSES
from ..models import MODELS, count_parameters
from . import bench, codec_cmd, evaluate, train
from .evaluate import rd
from .runtime import guarded


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("models", "datasets", "losses"), help="which registry")
    parser.add_argument("--params", action="store_true",
                        help="models: also print parameter counts at N=192 (quality 6)")


def run_list(args: argparse.Namespace) -> int:
    registry = {"models": MODELS, "datasets": DATASETS, "losses": LOSSES}[args.what]
    for name in registry.names():
        if args.params and args.what == "models":
            print(f"{name:24s} {count_parameters(name, quality=6):>14,d}")
        else:
            print(name)
    return 0


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dic convert`` and ``scripts/convert_official.py``."""
    parser.add_argument("input", metavar="IN", help="official training or evaluation checkpoint")
    parser.add_argument("output", metavar="OUT", help="where to write the converted dic checkpoint")
    parser.add_argument("--arch", choices=ARCHS, default=None,
                        help="architecture of IN (default: recognised from its keys)")
    parser.add_argument("--quality", type=int, default=None,
                        help="quality level 1–6 IN was trained for, recorded in the checkpoint (default: unknown)")
    parser.add_argument("--head-dim", type=int, default=DEFAULT_HEAD_DIM,
                        help="snr-decomp: width of one attention head; IN stores only heads × width (default: 64)")


def run_convert(args: argparse.Namespace) -> int:
    """Convert ``args.input`` to our checkpoint format at ``args.output``."""
    source = f"checkpoint {args.input}"
    obj = read_checkpoint_file(args.input)
    _, info = split_official(obj, source)
    model = model_from_official(obj, args.arch, source=source, quality=args.quality, head_dim=args.head_dim)
    save_checkpoint(args.output, model, converted_from=str(Path(args.input).resolve()), **info)
    print(f"{args.input} ({model.name}, N={model.N}, {len(model.state_dict())} tensors"
          f"{', epoch ' + str(info['epoch']) if 'epoch' in info else ''}) → {args.output}")
    return 0


def add_tables_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="CKPT", help="one of our checkpoints")
    parser.add_argument("output", metavar="OUT", nargs="?", default=None,
                        help="where to write the checkpoint with its tables (default: replace CKPT)")
    parser.add_argument("--force", action="store_true", help="recompute tables the file already stores")


def run_tables(args: argparse.Namespace) -> int:
    """Store the entropy-coder tables in a checkpoint that lacks them (CompressAI's
    ``update_model``, for our files): what it codes then decodes on every machine."""
    raw = load_checkpoint(args.input)
    model = load_model(args.input)
    if has_coding_tables(model) and not args.force:
        print(f"{args.input} already stores its coding tables; nothing written (--force recomputes them)")
        return 0
    extra = {k: v for k, v in raw.items() if k not in RESERVED_KEYS}
    output = args.output or args.input
    save_checkpoint(output, model, weights=raw["state_dict"], **extra)
    print(f"{args.input} → {output}: coding tables computed here and stored with the weights")
    return 0


Command = Tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
SUBCOMMANDS: Dict[str, Command] = {
    "list": (add_list_arguments, run_list, "list registered models, data sets or losses"),
    "train": (train.add_arguments, train.run, "train a model from an option file"),
    "test": (evaluate.add_arguments, evaluate.run, "evaluate checkpoints from an option file"),
    "convert": (add_convert_arguments, run_convert, "convert an official checkpoint to ours"),
    "tables": (add_tables_arguments, run_tables, "store the entropy-coder tables in a checkpoint (portable files)"),
    "compress": (codec_cmd.add_compress_arguments, codec_cmd.run_compress, "compress images to .dic files"),
    "decompress": (codec_cmd.add_decompress_arguments, codec_cmd.run_decompress, "decompress .dic files to PNG"),
    "plot": (rd.add_plot_arguments, rd.run_plot, "plot rate-distortion curves of reports"),
    "bdrate": (rd.add_bdrate_arguments, rd.run_bdrate, "BD-rate and BD-PSNR between two reports"),
    "bench": (bench.add_arguments, bench.run, "measure coding and training speed against CompressAI"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``dic`` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="dic", description="Joint denoising and compression of noisy photographs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, run, help_text) in SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add(command)
        command.set_defaults(run=run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``dic``."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return guarded(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
