"""The ``dic`` command: one subcommand per job. Each application module exposes
``add_arguments(parser)`` and ``run(args) -> int``; this module holds the table and the small
commands of its own (``list``, ``convert``, ``tables``). User errors print one line and exit 2,
Ctrl-C prints one line and exits 130.

Start-up is fast because nothing heavy is imported here: the table names each command's module
by its dotted path, and only the module of the command being run is imported (and only its
parser is built), so ``dic --help``, ``dic list``, ``dic bdrate`` and ``dic plot`` never import
torch (docs/cli.md measures it). ``train``, ``test`` and ``bench`` build their parsers from light
modules of their own (``dic.apps.*.arguments``), so their ``--help`` imports no torch either."""
from __future__ import annotations

import argparse
import ast
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .guard import guarded, interrupted

PACKAGE = Path(__file__).resolve().parents[1]  # codes/dic

#: Where each registry's entries are registered, and the decorator that registers them: read
#: without importing (importing the models means importing torch), checked against the
#: registries themselves by tests/test_cli_safety.py.
REGISTRY_SOURCES = {
    "models": ("models/*.py", "register_model"),
    "datasets": ("data/*.py", "register_dataset"),
    "losses": ("losses.py", "register_loss"),
}


def registered_names(what: str) -> List[str]:
    """The names registered in ``what`` (models, datasets, losses), read from the decorators in
    the package's source, so listing them imports no torch."""
    pattern, decorator = REGISTRY_SOURCES[what]
    names = set()
    for path in sorted(PACKAGE.glob(pattern)):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == decorator
                    and node.args and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return sorted(names)


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=tuple(REGISTRY_SOURCES), help="which registry")
    parser.add_argument("--params", action="store_true",
                        help="models: also print parameter counts at N=192 (quality 6; builds each model)")


def run_list(args: argparse.Namespace) -> int:
    """Print the registered names; with ``--params`` build each model to count its parameters."""
    names = registered_names(args.what)
    if not (args.params and args.what == "models"):
        print("\n".join(names))
        return 0
    print("building each model to count its parameters (imports torch)", file=sys.stderr)
    from ..models import count_parameters  # torch: only with --params

    for name in names:
        print(f"{name:24s} {count_parameters(name, quality=6):>14,d}")
    return 0


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dic convert`` and ``scripts/convert_official.py``."""
    from ..checkpoints.official import ARCHS, DEFAULT_HEAD_DIM  # torch: only when `dic convert` runs

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
    print(f"loading checkpoint {args.input}", file=sys.stderr)
    from ..checkpoints import read_checkpoint_file, save_checkpoint  # torch: only when it runs
    from ..checkpoints.official import model_from_official, split_official

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
    print(f"loading checkpoint {args.input}", file=sys.stderr)
    from ..checkpoints import has_coding_tables, load_checkpoint, load_model, save_checkpoint  # torch
    from ..checkpoints.io import RESERVED_KEYS

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


@dataclass(frozen=True)
class Command:
    """A subcommand: the module that runs it (imported only when it runs) and the name of its
    ``run`` function there, its one-line help, the name of its ``add_arguments`` function and
    the module that holds it, when not the same: a light one, so that building the parser
    (``dic train --help``, a bad argument) imports no torch."""

    module: str
    add: str
    run: str
    help: str
    parser_module: Optional[str] = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments, importing only its parser's module."""
        getattr(importlib.import_module(self.parser_module or self.module), self.add)(parser)

    def runner(self) -> Callable[[argparse.Namespace], int]:
        """The ``run`` function (imports the module that runs the subcommand)."""
        return getattr(importlib.import_module(self.module), self.run)


SUBCOMMANDS: Dict[str, Command] = {
    "list": Command(__name__, "add_list_arguments", "run_list", "list registered models, data sets or losses"),
    "train": Command("dic.apps.train.loop", "add_arguments", "run", "train a model from an option file",
                     parser_module="dic.apps.train.arguments"),
    "test": Command("dic.apps.evaluate.runner", "add_arguments", "run", "evaluate checkpoints from an option file",
                    parser_module="dic.apps.evaluate.arguments"),
    "convert": Command(__name__, "add_convert_arguments", "run_convert", "convert an official checkpoint to ours"),
    "tables": Command(__name__, "add_tables_arguments", "run_tables",
                      "store the entropy-coder tables in a checkpoint (portable files)"),
    "compress": Command("dic.apps.codec_cmd", "add_compress_arguments", "run_compress",
                        "compress images to .dic files"),
    "decompress": Command("dic.apps.codec_cmd", "add_decompress_arguments", "run_decompress",
                          "decompress .dic files to PNG"),
    "plot": Command("dic.apps.evaluate.rd", "add_plot_arguments", "run_plot",
                    "plot rate-distortion curves of reports"),
    "bdrate": Command("dic.apps.evaluate.rd", "add_bdrate_arguments", "run_bdrate",
                      "BD-rate and BD-PSNR between two reports"),
    "bench": Command("dic.apps.bench.runner", "add_arguments", "run",
                     "measure coding and training speed against CompressAI", parser_module="dic.apps.bench.arguments"),
}


def _chosen(argv: List[str]) -> Optional[str]:
    """The subcommand ``argv`` names: its first word that is not an option (the top-level
    parser has no option that takes a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The ``dic`` parser. Every subcommand is listed, but only the one ``argv`` names gets its
    arguments (importing its module); without ``argv``, all of them do (imports everything)."""
    parser = argparse.ArgumentParser(prog="dic", description="Joint denoising and compression of noisy photographs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen(argv) if argv is not None else None
    for name, command in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=command.help, description=command.help)
        if argv is None or name == chosen:
            command.add_arguments(subparser)
        subparser.set_defaults(command_entry=command)
    return parser


def _parse_and_run(argv: List[str]) -> int:
    args = build_parser(argv).parse_args(argv)
    command: Command = args.command_entry
    return command.runner()(args)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``dic``: 0 on success, 2 on a user error (one ``error:`` line), 130 when
    interrupted (one line, whenever Ctrl-C comes, the imports of the command included)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return guarded(_parse_and_run, argv)
    except KeyboardInterrupt:  # between the handler's lines
        return interrupted()


if __name__ == "__main__":
    sys.exit(main())
