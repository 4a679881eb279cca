"""The arguments of ``dic bench`` and ``scripts/bench.py``, and the names they choose from,
importable without torch, so ``dic bench --help`` (and a bad argument) answers at once:
:mod:`.runner` measures, :mod:`.coding` and :mod:`.training` import these names from here."""
from __future__ import annotations

import argparse
from typing import List

from ...conventions import CONTEXTS
from ...errors import OptionError

#: The coding paths :mod:`.coding` measures (its ``PATH_*`` tables describe each).
CODING_PATHS = ("exact", "ours", "compressai", "exact-checkerboard", "checkerboard", "compressai-checkerboard",
                "exact-bf16", "exact-fp16")
#: The training-step variants :mod:`.training` measures.
TRAIN_VARIANTS = ("ours", "official-style", "bf16", "channels-last", "compile", "fast")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dic bench`` and ``scripts/bench.py``."""
    parser.add_argument("--model", default="snr-decomp", help="registered model name (default: snr-decomp)")
    parser.add_argument("--quality", type=int, default=None, help="quality 1–6 (picks N when --N is not given)")
    parser.add_argument("--N", type=int, default=None, help="channel width (default: from the quality; 192)")
    parser.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                        help="another model hyper-parameter (YAML value), e.g. num_layers=1; repeatable")
    parser.add_argument("--checkpoint", default=None, help="weights from this checkpoint instead of random ones")
    parser.add_argument("--size", default="768x512", help="image size WIDTHxHEIGHT (default 768x512, Kodak)")
    parser.add_argument("--image", default=None,
                        help="code this image (centre-cropped to --size) instead of a synthetic one")
    parser.add_argument("--noise-level", type=int, default=3, help="noise level of dic.data.noise.LEVELS (default 3)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per measurement, median reported (default 3; 0: memory only)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before them (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads (default 2; 0 leaves torch's default)")
    parser.add_argument("--train-batch", type=int, default=4, help="training-step batch size (default 4)")
    parser.add_argument("--train-size", type=int, default=256, help="training-step patch size (default 256)")
    parser.add_argument("--contexts", default=",".join(CONTEXTS),
                        help="context models to code with, comma-separated (default: serial,checkerboard: "
                             "the model and its twin with the same weights)")
    parser.add_argument("--train-variants", default=",".join(TRAIN_VARIANTS),
                        help=f"training-step variants, comma-separated (default: all that apply: "
                             f"{', '.join(TRAIN_VARIANTS)}; all but the first two on CUDA only)")
    parser.add_argument("--no-compressai", action="store_true", help="skip CompressAI's coding paths")
    parser.add_argument("--paths", default=None,
                        help=f"coding paths to measure, comma-separated, of {', '.join(CODING_PATHS)} (default: all "
                             "float32 ones, exact-bf16 where bfloat16 is fast, exact-fp16 on CUDA; less those "
                             "--contexts and --no-compressai leave out)")
    parser.add_argument("--no-coding", action="store_true", help="skip encode/decode")
    parser.add_argument("--no-train", action="store_true", help="skip the training step")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--no-roofline", action="store_true",
                        help="skip the FLOP counts and the matrix-product peaks (the roofline table)")
    parser.add_argument("--peak-size", type=int, default=None, metavar="N",
                        help="side of the square matrix product that measures the peak (default: 2048 on the CPU, "
                             "512 for an emulated bfloat16, 8192 on CUDA)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and image (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results to this JSON file")


def check_args(args: argparse.Namespace) -> None:
    """Refuse counts and sizes that cannot be measured."""
    if args.repeats < 0 or args.warmup < 0:
        raise OptionError(f"--repeats and --warmup must be ≥ 0, got {args.repeats} and {args.warmup}")
    if args.train_batch <= 0 or args.train_size <= 0:
        raise OptionError(f"--train-batch and --train-size must be positive, got {args.train_batch} "
                          f"and {args.train_size}")
    if args.peak_size is not None and args.peak_size <= 0:
        raise OptionError(f"--peak-size must be positive, got {args.peak_size}")
    if args.threads < 0:
        raise OptionError(f"--threads must be ≥ 0, got {args.threads}")
    for name in parse_list(args.paths or ""):
        if name not in CODING_PATHS:
            raise OptionError(f"--paths: unknown coding path {name!r}; expected some of {', '.join(CODING_PATHS)}")
    for name in parse_list(args.train_variants):
        if name not in TRAIN_VARIANTS:
            raise OptionError(f"--train-variants: unknown variant {name!r}; expected some of {', '.join(TRAIN_VARIANTS)}")
    contexts = parse_contexts(args.contexts)
    if not contexts and not args.no_coding:
        raise OptionError("--contexts: name at least one of serial, checkerboard (or pass --no-coding)")


def parse_list(text: str) -> List[str]:
    """``'a, b'`` → ``['a', 'b']``."""
    return [c.strip() for c in str(text).split(",") if c.strip()]


def parse_contexts(text: str) -> List[str]:
    """``'serial,checkerboard'`` → the list, each checked."""
    names = parse_list(text)
    for name in names:
        if name not in CONTEXTS:
            raise OptionError(f"--contexts: expected serial and/or checkerboard, got {name!r}")
    return names
