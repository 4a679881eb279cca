"""Compress images to ``.dic`` files and back: ``dic compress`` / ``dic decompress`` and a pure API.

A ``.dic`` file holds one image coded by a learned model (real rANS bitstreams from CompressAI)
plus everything needed to decode it safely: which model and weights made it, the image size, and
checksums, so a file of another kind, a newer version, a truncated or corrupted file, or the
wrong weights give a clear :class:`~dic.errors.BitstreamError` instead of a crash, a hang in the
entropy decoder, or a garbage image.

File format, version 1 (all integers unsigned, big-endian)::

    offset   size  field
    0        8     magic  b"\\x89DIC\\r\\n\\x1a\\n"  (PNG-style: a high byte, then CR LF, ^Z, LF, so
                   text-mode transfers and files of other kinds are caught at once)
    8        2     format version (uint16) = 1
    10       4     header length L in bytes (uint32, at most 1 MiB)
    14       L     header: a UTF-8 JSON object (keys below)
    14+L     4     CRC-32 of bytes [0, 14+L): magic, version, length and header
    18+L     B     body: the entropy-coded strings, B = header["body_bytes"]
                     uint8   K                 number of latents (2: y then z)
                     K times:
                       uint32  n_k             number of strings of latent k (1: one image)
                       n_k times:
                         uint32  len           length of the string in bytes
                         len     bytes         the rANS string
    18+L+B   -     end of file: nothing may follow the body

Header keys (JSON)::

    model        registry name of the model, e.g. "snr-decomp"
    hparams      the model's constructor hyper-parameters (``model.hparams``: quality, N, ...)
    fingerprint  ``weights_fingerprint(model)`` (hex SHA-256 of the weights, taken after
                 ``update(force=True)`` so the entropy-coder tables are included, and with the
                 context model's masked taps zeroed, see :func:`dic.models.checkpoint.apply_context_masks`)
    height       original image height H (the decoded image has exactly this size)
    width        original image width W
    padding      [top, bottom, left, right] pixels of replicate padding the model added to reach
                 a multiple of ``pad_multiple`` before coding (removed after decoding)
    pad_multiple the multiple H and W were padded to (64)
    checkpoint   absolute path of the checkpoint the file was made with, or null; used by
                 ``dic decompress`` when no ``-c`` is given
    body_bytes   B, the body's length
    body_crc32   CRC-32 of the body
    encoder      information only: versions of dic/torch/compressai and the device used

Decoding checks, in order, before any byte reaches the entropy decoder: the magic, the version
(a newer one names both versions), the header length, the header CRC, the header's keys and
types, the body length (truncation) and the body CRC; then the model: name, hyper-parameters and
weights fingerprint must equal the header's. Only then are the strings decoded.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from .errors import BitstreamError, CheckpointError, DataError, DicError, OptionError
from .models.checkpoint import weights_fingerprint

MAGIC = b"\x89DIC\r\n\x1a\n"
FORMAT_VERSION = 1
SUFFIX = ".dic"
PAD_MULTIPLE = 64
MAX_HEADER_BYTES = 1 << 20

_PREFIX = struct.Struct(">8sHI")  # magic, version, header length
_U32 = struct.Struct(">I")
_HEADER_KEYS = {
    "model": str, "hparams": dict, "fingerprint": str, "height": int, "width": int,
    "padding": list, "pad_multiple": int, "checkpoint": (str, type(None)), "body_bytes": int,
    "body_crc32": int, "encoder": dict,
}

ImageLike = Union[np.ndarray, torch.Tensor]
Strings = List[List[bytes]]


@dataclasses.dataclass
class Header:
    """What a ``.dic`` file records besides the strings (see the module docstring)."""

    model: str
    hparams: Dict[str, Any]
    fingerprint: str
    height: int
    width: int
    padding: Tuple[int, int, int, int]
    pad_multiple: int = PAD_MULTIPLE
    checkpoint: Optional[str] = None
    body_bytes: int = 0
    body_crc32: int = 0
    encoder: Dict[str, Any] = dataclasses.field(default_factory=dict)
    version: int = FORMAT_VERSION
    body_offset: int = 0  # where the body starts in the file (not stored; filled when read)

    def to_json(self) -> bytes:
        """The header as stored: compact UTF-8 JSON without the derived fields."""
        record = dataclasses.asdict(self)
        for key in ("version", "body_offset"):
            record.pop(key)
        record["padding"] = list(self.padding)
        return json.dumps(record, separators=(",", ":"), sort_keys=True).encode("utf-8")


# ----------------------------------------------------------------------------- byte layout


def pack(header: Header, strings: Strings) -> bytes:
    """Serialise a header and the strings (one list per latent) into a version-1 file."""
    body = _pack_body(strings)
    header = dataclasses.replace(header, body_bytes=len(body), body_crc32=zlib.crc32(body))
    meta = header.to_json()
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(meta)) + meta
    return head + _U32.pack(zlib.crc32(head)) + body


def _pack_body(strings: Strings) -> bytes:
    if not 0 < len(strings) < 256:
        raise ValueError(f"a .dic body holds 1 to 255 latents, got {len(strings)}")
    parts = [bytes([len(strings)])]
    for latent in strings:
        parts.append(_U32.pack(len(latent)))
        for s in latent:
            parts += [_U32.pack(len(s)), bytes(s)]
    return b"".join(parts)


def read_header(data: bytes, name: str = "data") -> Header:
    """Check the magic, version, header length and header CRC, and return the validated header.
    The body is not checked here (:func:`unpack` does). ``name`` is used in error messages."""
    data = memoryview(data)
    size = len(data)
    if size == 0:
        raise BitstreamError(f"{name} is empty; expected a .dic file")
    if size < len(MAGIC) or bytes(data[: len(MAGIC)]) != MAGIC:
        if size < len(MAGIC) and bytes(data) == MAGIC[:size]:
            raise BitstreamError(f"{name} is truncated: it ends after {size} bytes, inside the magic number")
        raise BitstreamError(
            f"{name} is not a .dic file: it starts with {bytes(data[:8])!r}, expected the magic {MAGIC!r}"
        )
    if size < _PREFIX.size:
        raise BitstreamError(f"{name} is truncated: it ends after {size} bytes, inside the version and header length")
    _, version, length = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        if version > FORMAT_VERSION:
            raise BitstreamError(
                f"{name} uses .dic format version {version}, newer than this program reads "
                f"(version {FORMAT_VERSION}); upgrade dic to decode it"
            )
        raise BitstreamError(
            f"{name} has .dic format version {version}, which does not exist "
            f"(this program reads version {FORMAT_VERSION})"
        )
    if length > MAX_HEADER_BYTES:
        raise BitstreamError(f"{name} is corrupt: header length {length} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    end = _PREFIX.size + length
    if size < end + _U32.size:
        where = "header" if size < end else "header checksum"
        raise BitstreamError(
            f"{name} is truncated: it ends after {size} bytes, inside the {where} "
            f"(the header needs {end + _U32.size})"
        )
    (stored,) = _U32.unpack_from(data, end)
    actual = zlib.crc32(data[:end])
    if stored != actual:
        raise BitstreamError(
            f"{name} is corrupt: the header checksum does not match "
            f"(stored {stored:08x}, computed {actual:08x})"
        )
    header = _parse_header(bytes(data[_PREFIX.size:end]), name)
    header.version, header.body_offset = version, end + _U32.size
    return header


def _parse_header(meta: bytes, name: str) -> Header:
    """JSON → :class:`Header`, checking every key's presence and type."""
    try:
        record = json.loads(meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BitstreamError(f"{name} is corrupt: its header is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise BitstreamError(f"{name} is corrupt: its header is a JSON {type(record).__name__}, expected an object")
    missing = sorted(set(_HEADER_KEYS) - set(record))
    if missing:
        raise BitstreamError(f"{name} is corrupt: its header lacks the key(s) {', '.join(missing)}")
    for key, kind in _HEADER_KEYS.items():
        value = record[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BitstreamError(f"{name} is corrupt: header key {key!r} is {value!r}, of the wrong type")
    padding = record["padding"]
    if len(padding) != 4 or not all(isinstance(p, int) and p >= 0 for p in padding):
        raise BitstreamError(f"{name} is corrupt: header 'padding' is {padding!r}, expected 4 non-negative integers")
    if record["height"] <= 0 or record["width"] <= 0:
        raise BitstreamError(f"{name} is corrupt: image size {record['height']}x{record['width']} is not positive")
    unknown = set(record) - set(_HEADER_KEYS)
    if unknown:
        raise BitstreamError(f"{name} is corrupt: its header has unknown key(s) {', '.join(sorted(unknown))}")
    record["padding"] = tuple(padding)
    return Header(**record)


def unpack(data: bytes, name: str = "data") -> Tuple[Header, Strings]:
    """Validate a whole file (header, body length and CRC, body layout): the header and strings."""
    header = read_header(data, name)
    body = memoryview(data)[header.body_offset:]
    if len(body) < header.body_bytes:
        raise BitstreamError(
            f"{name} is truncated: the body has {len(body)} of its {header.body_bytes} bytes "
            f"(the file should be {header.body_offset + header.body_bytes} bytes, it is {len(data)})"
        )
    if len(body) > header.body_bytes:
        raise BitstreamError(f"{name} is corrupt: {len(body) - header.body_bytes} unexpected bytes follow the body")
    actual = zlib.crc32(body)
    if actual != header.body_crc32:
        raise BitstreamError(
            f"{name} is corrupt: the body checksum does not match "
            f"(stored {header.body_crc32:08x}, computed {actual:08x})"
        )
    return header, _unpack_body(body, name)


def _unpack_body(body: memoryview, name: str) -> Strings:
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(body):
            raise BitstreamError(f"{name} is corrupt: the body's string table runs past its end at byte {pos}")
        pos += n
        return body[pos - n:pos]

    strings = []
    for _ in range(take(1)[0]):
        (count,) = _U32.unpack(take(4))
        latent = []
        for _ in range(count):
            (length,) = _U32.unpack(take(4))
            latent.append(bytes(take(length)))
        strings.append(latent)
    if pos != len(body) or not strings:
        raise BitstreamError(f"{name} is corrupt: the body's string table does not fill the body")
    return strings


# ----------------------------------------------------------------------------- models


def prepare_model(model: nn.Module) -> str:
    """Put ``model`` in the state both sides code in (eval mode, entropy tables rebuilt with
    ``update(force=True)``) and return its weights fingerprint in that state."""
    model.eval()
    model.update(force=True)
    return weights_fingerprint(model)


def load_codec_model(checkpoint: Union[str, os.PathLike], arch: Optional[str] = None,
                     device: str = "cpu") -> Tuple[nn.Module, str]:
    """Load a checkpoint ready for coding: tables and fingerprint are computed on the CPU (so
    they do not depend on the device), then the model moves to ``device``."""
    from .models.checkpoint import load_model

    device = _check_device(device)
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) == MAGIC:
            raise CheckpointError(
                f"checkpoint {path} is a compressed .dic image, not a checkpoint (check the argument order)"
            )
    model = load_model(str(path), arch=arch, map_location="cpu")
    fingerprint = prepare_model(model)
    return model.to(device), fingerprint


def _check_device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise OptionError(f"--device is {device!r}; expected cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return device


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _padding(height: int, width: int, multiple: int = PAD_MULTIPLE) -> Tuple[int, int, int, int]:
    """[top, bottom, left, right] replicate padding to the next multiple (the models pad at the
    bottom and right and crop the same after decoding)."""
    return 0, -height % multiple, 0, -width % multiple


def _json_clean(value: Any) -> Any:
    """A JSON round trip, so hyper-parameters compare the way they are stored (tuples → lists)."""
    return json.loads(json.dumps(value, sort_keys=True))


# ----------------------------------------------------------------------------- pure API


def _to_batch(image: ImageLike, device: torch.device) -> torch.Tensor:
    """H×W×3 uint8 array, or 3×H×W / 1×3×H×W tensor (float in [0, 1] or uint8) → 1×3×H×W float."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"encode_image takes an H×W×3 uint8 array, got {image.dtype} of shape {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255)
    elif isinstance(image, torch.Tensor):
        x = image.detach()
        x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    else:
        raise DataError(f"encode_image takes a numpy array or a torch tensor, got {type(image).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise DataError(f"encode_image takes one RGB image (3×H×W or 1×3×H×W), got shape {tuple(x.shape)}")
    return x.to(device)


def _normalise_strings(strings: Sequence, name: str) -> Strings:
    out = []
    for latent in strings:
        latent = [latent] if isinstance(latent, (bytes, bytearray)) else list(latent)
        if not all(isinstance(s, (bytes, bytearray)) for s in latent):
            raise TypeError(f"{name}.compress returned strings that are not bytes")
        out.append([bytes(s) for s in latent])
    return out


def encode_image(model: nn.Module, image: ImageLike, *, fingerprint: Optional[str] = None,
                 checkpoint: Optional[Union[str, os.PathLike]] = None) -> bytes:
    """Code one image into the bytes of a ``.dic`` file.

    ``model`` must be in eval mode with its entropy tables built (see :func:`prepare_model`,
    whose return value is the ``fingerprint``; it is computed here when not given). ``checkpoint``
    is recorded so ``dic decompress`` can find the weights without ``-c``.
    """
    device = _model_device(model)
    x = _to_batch(image, device)
    height, width = x.shape[-2:]
    multiple = int(getattr(model, "pad_multiple", PAD_MULTIPLE))
    if fingerprint is None:
        fingerprint = weights_fingerprint(model)
    with torch.no_grad():
        out = model.compress(x)
    if tuple(out["shape"]) != (height, width):
        raise RuntimeError(
            f"{model.name}.compress returned shape {tuple(out['shape'])}, expected the image size {(height, width)}"
        )
    import compressai

    from . import __version__

    header = Header(
        model=model.name,
        hparams=_json_clean(model.hparams),
        fingerprint=fingerprint,
        height=int(height),
        width=int(width),
        padding=_padding(height, width, multiple),
        pad_multiple=multiple,
        checkpoint=str(Path(checkpoint).resolve()) if checkpoint is not None else None,
        encoder={"dic": __version__, "torch": torch.__version__, "compressai": compressai.__version__,
                 "device": device.type},
    )
    return pack(header, _normalise_strings(out["strings"], model.name))


def check_model(header: Header, model: nn.Module, fingerprint: str, name: str = "data",
                source: str = "the given model") -> None:
    """Refuse to decode with a model other than the one that coded the file."""
    if model.name != header.model:
        raise BitstreamError(f"{name} was made with model {header.model!r}, but {source} is a {model.name!r} model")
    hparams = _json_clean(model.hparams)
    if hparams != header.hparams:
        keys = sorted(k for k in set(hparams) | set(header.hparams) if hparams.get(k) != header.hparams.get(k))
        diff = ", ".join(f"{k}={header.hparams.get(k)!r} in the file vs {hparams.get(k)!r}" for k in keys)
        raise BitstreamError(f"{name} was made with other {header.model} hyper-parameters than {source}: {diff}")
    if fingerprint != header.fingerprint:
        raise BitstreamError(
            f"{name} was made with other {header.model} weights than {source}: the file's weights "
            f"fingerprint is {header.fingerprint}, the model's is {fingerprint}"
            + (f"; it was made with checkpoint {header.checkpoint}" if header.checkpoint else "")
        )


def device_warning(header: Header, model: nn.Module, name: str = "data") -> Optional[str]:
    """A warning when the file was coded on another kind of device than it is decoded on: the
    entropy models' floating-point results may then differ and the image may come out wrong."""
    coded, decoding = header.encoder.get("device"), _model_device(model).type
    if coded is None or coded == decoding:
        return None
    return (f"{name} was coded on {coded} and is decoded on {decoding}; learned codecs are only "
            f"reliable on the same kind of device (use --device {coded})")


def decode_strings(model: nn.Module, header: Header, strings: Strings) -> np.ndarray:
    """Entropy-decode validated strings with a checked model: the H×W×3 uint8 image."""
    with torch.no_grad():
        x_hat = model.decompress(strings, (header.height, header.width))["x_hat"]
    if tuple(x_hat.shape) != (1, 3, header.height, header.width):
        raise BitstreamError(
            f"decoding gave an image of shape {tuple(x_hat.shape)}, expected 1×3×{header.height}×{header.width}"
        )
    return x_hat[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def decode_bytes(data: bytes, model: Optional[nn.Module] = None,
                 checkpoint: Optional[Union[str, os.PathLike]] = None, *,
                 fingerprint: Optional[str] = None, arch: Optional[str] = None,
                 device: str = "cpu", name: str = "data") -> np.ndarray:
    """Decode the bytes of a ``.dic`` file into an H×W×3 uint8 image.

    Weights come from ``model`` (prepared, see :func:`prepare_model`), else from ``checkpoint``,
    else from the checkpoint path recorded in the file. Every integrity check runs before decoding.
    """
    header, strings = unpack(data, name)
    if model is not None:
        if fingerprint is None:
            fingerprint = weights_fingerprint(model)
        source = "the given model"
    else:
        checkpoint = resolve_checkpoint(header, checkpoint, name)
        model, fingerprint = load_codec_model(checkpoint, arch=arch, device=device)
        source = f"checkpoint {checkpoint}"
    check_model(header, model, fingerprint, name, source)
    note = device_warning(header, model, name)
    if note:
        warnings.warn(note, stacklevel=2)
    return decode_strings(model, header, strings)


def resolve_checkpoint(header: Header, checkpoint: Optional[Union[str, os.PathLike]], name: str) -> str:
    """The checkpoint to decode with: the one given, else the one the file records."""
    if checkpoint is not None:
        return str(checkpoint)
    if header.checkpoint is None:
        raise CheckpointError(
            f"{name} records no checkpoint path; pass the {header.model} checkpoint it was made with "
            "(-c CHECKPOINT)"
        )
    if not Path(header.checkpoint).is_file():
        raise CheckpointError(
            f"{name} was made with checkpoint {header.checkpoint}, which no longer exists; pass the "
            f"checkpoint with weights fingerprint {header.fingerprint} (-c CHECKPOINT)"
        )
    return header.checkpoint


# ----------------------------------------------------------------------------- command line


def _jobs(inp: Path, out: Path, new_suffix: str, inputs: str) -> List[Tuple[Path, Path]]:
    """(source, destination) pairs: one file, or every matching file under a folder, mirrored."""
    from .data.io import is_image_file

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
    from tqdm import tqdm

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
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda; decode on the same kind of device")
    parser.add_argument("--no-record-checkpoint", action="store_true",
                        help="do not store the checkpoint path in the file (decompress then needs -c)")


def run_compress(args: argparse.Namespace) -> int:
    from .data.io import atomic_write_bytes, read_image

    jobs = _jobs(args.input, args.output, SUFFIX, "images")
    model, fingerprint = load_codec_model(args.checkpoint, arch=args.arch, device=args.device)
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
                        help="checkpoint to decode with (default: the one recorded in the file)")
    parser.add_argument("--arch", default=None, help="architecture of an official checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda; use the device the file was coded on")


def run_decompress(args: argparse.Namespace) -> int:
    from .data.io import write_image

    jobs = _jobs(args.input, args.output, ".png", "dic")
    for _, dest in jobs:
        if dest.suffix.lower() != ".png":
            raise DataError(f"output {dest} must end in .png (decoded images are written as PNG)")
    _check_device(args.device)
    models: Dict[str, Tuple[nn.Module, str]] = {}

    def work(src: Path, dest: Path) -> str:
        name = str(src)
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {src}: {exc.strerror}") from None
        header, strings = unpack(data, name)
        checkpoint = resolve_checkpoint(header, args.checkpoint, name)
        if checkpoint not in models:
            models[checkpoint] = load_codec_model(checkpoint, arch=args.arch, device=args.device)
        model, fingerprint = models[checkpoint]
        check_model(header, model, fingerprint, name, f"checkpoint {checkpoint}")
        note = device_warning(header, model, name)
        if note:
            print(f"warning: {note}", file=sys.stderr)
        image = decode_strings(model, header, strings)
        write_image(dest, image)
        return f"{src} → {dest}: {header.width}×{header.height}, {header.model}"

    return _run_jobs(jobs, work, "decompress", args.output)
