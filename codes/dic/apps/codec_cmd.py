"""``dic compress`` / ``dic decompress``: code one image or a whole folder into ``.dic`` files and
back, mirroring names and subfolders; one failing file does not stop the others.

No file is lost: an output that is the input (the same file, also through a link) is refused,
and so is an existing output that is not a ``.dic`` file (compress) or any existing output
(decompress) unless ``--force``; outputs are written atomically. The checks run before torch
is imported, so a refused command answers at once; each command then says what it loads.
Folders print each file's rate and the total."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Tuple

from tqdm import tqdm

from ..conventions import CHECKPOINT_PATH_ENV, MAGIC, MAX_PIXELS_ENV, SUFFIX, is_image_file
from ..errors import ArgumentError, DataError, DicError, OptionError
from ..fileio import atomic_write_bytes, why_unwritable

Job = Tuple[Path, Path]


# ----------------------------------------------------------------------------- planning
def _jobs(inp: Path, out: Path, new_suffix: str, inputs: str) -> List[Job]:
    """(source, destination) pairs: one file, or every matching file under a folder, mirrored."""
    if not inp.exists():
        raise DataError(f"input {inp} does not exist")
    if not inp.is_dir():
        dest = out / (inp.stem + new_suffix) if out.is_dir() else out
        return [(inp, dest)]
    if out.exists() and not out.is_dir():
        raise DataError(f"input {inp} is a folder, so the output {out} must be a folder too, but it is a file")
    match = is_image_file if inputs == "images" else (lambda p: str(p).lower().endswith(SUFFIX))
    skip = out.resolve() if out.resolve() != inp.resolve() else None  # an output folder inside the input
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


def is_dic_file(path: Path) -> bool:
    """Whether ``path`` starts with the ``.dic`` signature (what compress may replace)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file (device and inode: links and ``..`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # b does not exist yet
        return False


def check_outputs(jobs: List[Job], force: bool, replaceable: Callable[[Path], bool], flag: str = "--force") -> None:
    """Refuse, before anything is read or written, outputs that would lose a file: the input
    itself (even with ``force``), an existing file ``replaceable`` does not accept (unless
    ``force``), a folder, or a place that cannot be written. One DataError lists them."""
    problems: List[str] = []
    existing: List[Path] = []
    for src, dest in jobs:
        if _same_file(src, dest):
            problems.append(f"output {dest} is the input {src}; choose another output")
        elif dest.is_dir():
            problems.append(f"output {dest} is a folder; expected a file name")
        elif dest.exists() and not force and not replaceable(dest):
            existing.append(dest)
        elif (reason := why_unwritable(dest)) is not None:
            problems.append(f"cannot write {dest}: {reason}")
    if len(existing) == 1:
        problems.append(f"output {existing[0]} exists; pass {flag} to replace it")
    elif existing:
        named = ", ".join(map(str, existing[:3])) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        problems.append(f"{len(existing)} outputs exist ({named}); pass {flag} to replace them")
    if problems:
        shown = problems[:3] + ([f"and {len(problems) - 3} more"] if len(problems) > 3 else [])
        raise DataError(f"{'; '.join(shown)}; nothing was written")


# ----------------------------------------------------------------------------- running
@dataclass
class Done:
    """What one file's coding gave: the line to print, and its bytes and pixels for the total."""

    line: str
    size: int
    pixels: int


def _run_jobs(jobs: List[Job], work: Callable[[Path, Path], Done], verb: str, out: Path) -> int:
    """Run ``work(src, dest)`` on every job and print its line; a progress bar for folders, then
    the total. One failing file does not stop the others; any failure ends with an error
    (exit code 2)."""
    failures, size, pixels = [], 0, 0
    folder = len(jobs) > 1
    bar = tqdm(jobs, desc=verb, unit="image", disable=not folder or None, file=sys.stderr)
    for src, dest in bar:
        try:
            done = work(src, dest)
        except DicError as exc:
            if not folder:
                raise
            failures.append(src)
            bar.write(f"error: {exc}", file=sys.stderr)
            continue
        size, pixels = size + done.size, pixels + done.pixels
        if folder:
            bar.write(done.line, file=sys.stdout)
        else:
            print(done.line)
    if failures:
        written = "none was written" if len(failures) == len(jobs) else "the others were written"
        raise DicError(f"{len(failures)} of {len(jobs)} files could not be {verb}ed (see above); {written}")
    if folder:
        print(f"{verb}ed {len(jobs)} files into {out}: {size} bytes for {pixels / 1e6:.3f} megapixels, "
              f"{8 * size / pixels:.4f} bpp in total")
    return 0


def _add_force(parser: argparse.ArgumentParser, replaced: str) -> None:
    parser.add_argument("-f", "--force", "--overwrite", dest="force", action="store_true",
                        help=f"replace existing outputs ({replaced}); the input itself is never replaced")


def _add_precision(parser: argparse.ArgumentParser, transform: str) -> None:
    parser.add_argument("--precision", default="auto",
                        help=f"arithmetic of the {transform}: auto (default: bfloat16 where this machine runs it fast, "
                             "else float32), float32, bfloat16 or float16 (CUDA); docs/precision.md")


def chosen_precision(name: str, device: object) -> str:
    """``--precision`` resolved for ``device`` (``auto`` → bfloat16 where fast, else float32);
    an unknown or unsupported name is one ``--precision`` error."""
    from ..models.precision import NAMES, resolve_precision  # torch: once the checks passed

    try:
        chosen = NAMES[resolve_precision(name, device)]
    except ArgumentError as e:
        raise OptionError(f"--precision: {e.detail}") from None
    if name == "auto" and chosen != "float32":
        _say(f"precision: {chosen} (auto: this machine runs it fast)")
    return chosen


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- compress
def add_compress_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="an image, or a folder of images (coded recursively)")
    parser.add_argument("output", type=Path,
                        help="the .dic file, or a folder for a folder input (names mirrored: x.png → x.dic)")
    parser.add_argument("-c", "--checkpoint", required=True, help="checkpoint to code with (ours or an official one)")
    parser.add_argument("--arch", default=None,
                        help="architecture of an official checkpoint (snr-decomp, multiscale-decomp)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    _add_precision(parser, "analysis transform (the encoder's own choice; any decoder reads the file)")
    parser.add_argument("--no-record-checkpoint", action="store_true",
                        help="do not store the checkpoint's file name in the file (decompress then needs -c)")
    _add_force(parser, f"without it, only existing {SUFFIX} files are replaced")


def check_checkpoint_path(path: str) -> None:
    """A DataError when ``-c`` names a folder or nothing (checked before torch is imported)."""
    if os.path.isdir(path):
        raise DataError(f"checkpoint {path} is a folder, expected a checkpoint file (.pth)")
    if not os.path.exists(path):
        raise DataError(f"checkpoint {path} does not exist")


class _AlphaNotes:
    """Read images for compress, saying once that alpha channels are dropped (naming the first
    such file) and at the end how many more had one, instead of once per file."""

    def __init__(self) -> None:
        self.count = 0

    def read(self, src: Path):
        from ..data.io import AlphaDroppedWarning, read_image  # dic.data imports torch: after the checks

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_image(src, warn_alpha=True)
        for note in caught:
            if issubclass(note.category, AlphaDroppedWarning):
                self.count += 1
                if self.count > 1:
                    continue
            warnings.warn(note.message, stacklevel=2)
        return image

    def close(self) -> None:
        if self.count > 1:
            warnings.warn(f"{self.count - 1} more input(s) had an alpha channel, dropped too", stacklevel=2)


def run_compress(args: argparse.Namespace) -> int:
    jobs = _jobs(args.input, args.output, SUFFIX, "images")
    check_outputs(jobs, args.force, is_dic_file)
    check_checkpoint_path(args.checkpoint)
    _say(f"loading checkpoint {args.checkpoint}")
    # torch and the models, once the checks passed and the user was told (docs/cli.md)
    from ..codec import encode_image, load_codec_model
    from .runtime import parse_device

    device = parse_device(args.device)
    precision = chosen_precision(args.precision, device)
    model, fingerprint = load_codec_model(args.checkpoint, arch=args.arch, device=device)
    record = None if args.no_record_checkpoint else args.checkpoint
    alpha = _AlphaNotes()

    def work(src: Path, dest: Path) -> Done:
        image = alpha.read(src)
        data = encode_image(model, image, fingerprint=fingerprint, checkpoint=record, precision=precision)
        atomic_write_bytes(dest, data)
        height, width = image.shape[:2]
        bpp = 8 * len(data) / (height * width)
        return Done(f"{src} → {dest}: {width}×{height}, {len(data)} bytes, {bpp:.4f} bpp", len(data), height * width)

    try:
        return _run_jobs(jobs, work, "compress", args.output)
    finally:
        alpha.close()


# ----------------------------------------------------------------------------- decompress
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
    _add_precision(parser, "synthesis transform (the decoded symbols do not depend on it)")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help=f"refuse images larger than N pixels once padded (default: ${MAX_PIXELS_ENV} or "
                             "25165824 = 6144×4096, which a 24 GiB machine decodes at N=192)")
    _add_force(parser, "without it, no existing file is replaced")


def run_decompress(args: argparse.Namespace) -> int:
    jobs = _jobs(args.input, args.output, ".png", "dic")
    for _, dest in jobs:
        if dest.suffix.lower() != ".png":
            raise DataError(f"output {dest} must end in .png (decoded images are written as PNG)")
    check_outputs(jobs, args.force, lambda dest: False)
    if args.max_pixels is not None and args.max_pixels <= 0:
        raise OptionError(f"--max-pixels is {args.max_pixels}; expected a positive number of pixels")
    if args.checkpoint is not None:
        check_checkpoint_path(args.checkpoint)
    _say(f"loading checkpoint {args.checkpoint}" if args.checkpoint
         else "loading the decoder (the checkpoint each file records is looked up)")
    return _decompress(jobs, args)


def _decompress(jobs: List[Job], args: argparse.Namespace) -> int:
    """Decode every job with the API's decoding path (:func:`dic.codec.api.decode_with_header`),
    keeping loaded checkpoints across files."""
    # torch and the models, once the checks passed and the user was told (docs/cli.md)
    from ..codec import max_image_pixels
    from ..codec.api import decode_with_header
    from ..data.io import write_image
    from .runtime import parse_device

    device = parse_device(args.device)
    precision = chosen_precision(args.precision, device)
    max_pixels = max_image_pixels(args.max_pixels)
    cache: dict = {}
    searched = args.checkpoint is None

    def on_load(path: Path) -> None:
        if searched:
            _say(f"loading checkpoint {path}")

    def work(src: Path, dest: Path) -> Done:
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {src}: {exc.strerror}") from None
        image, header = decode_with_header(
            data, checkpoint=args.checkpoint, arch=args.arch, device=device, name=str(src), max_pixels=max_pixels,
            checkpoint_dirs=args.checkpoint_dir, beside=src, cache=cache, on_load=on_load, precision=precision,
        )
        write_image(dest, image)
        return Done(f"{src} → {dest}: {header.width}×{header.height}, {header.model}, "
                    f"{8 * len(data) / (header.width * header.height):.4f} bpp",
                    len(data), header.width * header.height)

    return _run_jobs(jobs, work, "decompress", args.output)
