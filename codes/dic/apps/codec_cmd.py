"""``dic compress`` / ``dic decompress``: code one image or a whole folder into ``.dic`` files and
back, mirroring names and subfolders; one failing file does not stop the others."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from torch import nn
from tqdm import tqdm

from ..codec import (CHECKPOINT_PATH_ENV, MAX_PIXELS_ENV, SUFFIX, check_model, decode_strings, decode_warnings,
                     encode_image, load_codec_model, load_for_header, max_image_pixels, unpack)
from ..data.io import atomic_write_bytes, is_image_file, read_image, write_image
from ..errors import DataError, DicError, OptionError
from .runtime import parse_device


def _jobs(inp: Path, out: Path, new_suffix: str, inputs: str) -> List[Tuple[Path, Path]]:
    """(source, destination) pairs: one file, or every matching file under a folder, mirrored."""
    if not inp.exists():
        raise DataError(f"input {inp} does not exist")
    if not inp.is_dir():
        dest = out / (inp.stem + new_suffix) if out.is_dir() else out
        return [(inp, dest)]
    if out.exists() and not out.is_dir():
        raise DataError(f"input {inp} is a folder, so the output {out} must be a folder too, but it is a file")
    match = is_image_file if inputs == "images" else (lambda p: str(p).lower().endswith(SUFFIX))
    skip = out.resolve()
    sources = sorted(
        p for p in inp.rglob("*")
        if p.is_file() and match(p.name) and not any(part.startswith(".") for part in p.relative_to(inp).parts)
        and skip not in p.resolve().parents
    )
    if not sources:
        wanted = "images" if inputs == "images" else f"{SUFFIX} files"
        raise DataError(f"folder {inp} holds no {wanted}")
    jobs, seen = [], {}
    for src in sources:
        dest = out / src.relative_to(inp).with_suffix(new_suffix)
        if dest in seen:
            raise DataError(f"{seen[dest]} and {src} would both be written to {dest}; rename one of them")
        seen[dest] = src
        jobs.append((src, dest))
    return jobs


def _run_jobs(jobs: List[Tuple[Path, Path]], work, verb: str, out: Path) -> int:
    """Run ``work(src, dest) -> summary`` on every job; a progress bar for folders. One failing
    file does not stop the others; any failure ends with an error (exit code 2)."""
    failures = []
    bar = tqdm(jobs, desc=verb, unit="image", disable=len(jobs) == 1 or None, file=sys.stderr)
    for src, dest in bar:
        try:
            summary = work(src, dest)
        except DicError as exc:
            if len(jobs) == 1:
                raise
            failures.append(src)
            bar.write(f"error: {exc}", file=sys.stderr)
            continue
        if len(jobs) == 1:
            print(summary)
    if failures:
        raise DicError(
            f"{len(failures)} of {len(jobs)} files could not be {verb}ed (see above); the others were written"
        )
    if len(jobs) > 1:
        print(f"{verb}ed {len(jobs)} files into {out}")
    return 0


def add_compress_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="an image, or a folder of images (coded recursively)")
    parser.add_argument("output", type=Path,
                        help="the .dic file, or a folder for a folder input (names mirrored: x.png → x.dic)")
    parser.add_argument("-c", "--checkpoint", required=True, help="checkpoint to code with (ours or an official one)")
    parser.add_argument("--arch", default=None,
                        help="architecture of an official checkpoint (snr-decomp, multiscale-decomp)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument("--no-record-checkpoint", action="store_true",
                        help="do not store the checkpoint's file name in the file (decompress then needs -c)")


def run_compress(args: argparse.Namespace) -> int:
    jobs = _jobs(args.input, args.output, SUFFIX, "images")
    device = parse_device(args.device)
    model, fingerprint = load_codec_model(args.checkpoint, arch=args.arch, device=device)
    record = None if args.no_record_checkpoint else args.checkpoint

    def work(src: Path, dest: Path) -> str:
        image = read_image(src)
        data = encode_image(model, image, fingerprint=fingerprint, checkpoint=record)
        atomic_write_bytes(dest, data)
        height, width = image.shape[:2]
        return f"{src} → {dest}: {width}×{height}, {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp"

    return _run_jobs(jobs, work, "compress", args.output)


def add_decompress_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="a .dic file, or a folder of them")
    parser.add_argument("output", type=Path, help="the PNG to write, or a folder for a folder input (x.dic → x.png)")
    parser.add_argument("-c", "--checkpoint", default=None,
                        help="checkpoint to decode with (default: searched by the file name the file records)")
    parser.add_argument("--checkpoint-dir", action="append", default=[], type=Path, metavar="DIR",
                        help=f"a folder to look for the file's checkpoint in (repeatable); then ${CHECKPOINT_PATH_ENV}, "
                             "then the .dic file's folder")
    parser.add_argument("--arch", default=None, help="architecture of an official checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help=f"refuse images larger than N pixels once padded (default: ${MAX_PIXELS_ENV} or "
                             "25165824 = 6144×4096, which a 24 GiB machine decodes at N=192)")


def run_decompress(args: argparse.Namespace) -> int:
    jobs = _jobs(args.input, args.output, ".png", "dic")
    for _, dest in jobs:
        if dest.suffix.lower() != ".png":
            raise DataError(f"output {dest} must end in .png (decoded images are written as PNG)")
    device = parse_device(args.device)
    if args.max_pixels is not None and args.max_pixels <= 0:
        raise OptionError(f"--max-pixels is {args.max_pixels}; expected a positive number of pixels")
    max_pixels = max_image_pixels(args.max_pixels)
    models: Dict[str, Tuple[nn.Module, str]] = {}

    def work(src: Path, dest: Path) -> str:
        name = str(src)
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {src}: {exc.strerror}") from None
        header, strings = unpack(data, name, max_pixels)
        model, fingerprint, source = load_for_header(
            header, name, checkpoint=args.checkpoint, arch=args.arch, device=device,
            checkpoint_dirs=args.checkpoint_dir, beside=src, cache=models,
        )
        check_model(header, model, fingerprint, name, source)
        for note in decode_warnings(header, model, name):
            print(f"warning: {note}", file=sys.stderr)
        image = decode_strings(model, header, strings, name)
        write_image(dest, image)
        return f"{src} → {dest}: {header.width}×{header.height}, {header.model}"

    return _run_jobs(jobs, work, "decompress", args.output)

