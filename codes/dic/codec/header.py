"""The ``.dic`` header: its fields, their checks, the image-size limit and the latent checksum.
The byte layout and the meaning of every key are in :mod:`.format`'s docstring; this module
turns the header's JSON into a :class:`Header`, refusing anything out of range
(docs/architecture.md)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..conventions import MAX_PIXELS_ENV
from ..errors import BitstreamError, OptionError
from ..models.base import PAD_MULTIPLE

FORMAT_VERSION = 3  # what this program writes; format.READABLE_VERSIONS what it reads
#: The first version whose symbols come from the exact (fixed-point) entropy path, the same on
#: every machine (docs/portability.md); older files were coded in float.
EXACT_VERSION = 3
LATENTS = ("y", "z")
#: Default limit on the padded image size a file may declare: 6144×4096 = 25.2 megapixels (a
#: 24-megapixel 6000×4000 photo fits). Decoding at N=192 peaks near 1.8 GiB + 0.65 GiB per
#: megapixel (measured, docs/formats.md, "Guarantees"): about 18 GiB here, which a 24 GiB
#: machine holds. Raise it with ``max_pixels=`` or the environment variable below.
DEFAULT_MAX_PIXELS = 6144 * 4096
MAX_PAD_MULTIPLE = 1 << 16

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_COMMON_KEYS = ("model", "hparams", "fingerprint", "height", "width", "padding", "pad_multiple",
                "checkpoint", "body_bytes", "body_crc32", "encoder")
_KEYS = {1: frozenset(_COMMON_KEYS), 2: frozenset(_COMMON_KEYS + ("latents",)), 3: frozenset(_COMMON_KEYS + ("latents",))}


@dataclasses.dataclass
class Header:
    """What a ``.dic`` file records besides the strings (see :mod:`.format`'s docstring)."""

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
    latents: Optional[Dict[str, Dict[str, Any]]] = None  # versions 2 and 3; None in version 1
    version: int = FORMAT_VERSION
    body_offset: int = 0  # where the body starts in the file (not stored; filled when read)

    def to_json(self) -> bytes:
        """The header as stored: compact UTF-8 JSON without the derived fields."""
        record = dataclasses.asdict(self)
        for key in ("version", "body_offset"):
            record.pop(key)
        if self.version == 1:
            record.pop("latents")
        record["padding"] = list(self.padding)
        return json.dumps(record, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @property
    def exact(self) -> bool:
        """Whether the file's symbols come from the exact entropy path (version 3 on)."""
        return self.version >= EXACT_VERSION


def padding_for(height: int, width: int, multiple: int) -> Tuple[int, int, int, int]:
    """[top, bottom, left, right] replicate padding to the next multiple (the models pad at the
    bottom and right and crop the same after decoding)."""
    return 0, -height % multiple, 0, -width % multiple


def latent_checksum(symbols: Any, height: int, width: int, version: int = FORMAT_VERSION) -> str:
    """The checksum stored for a latent of an H×W image: the first 32 hex digits of the SHA-256
    of H, W (and, from version 3, the format version) and its integer symbols (a C×h×w or
    1×C×h×w integer array or CPU tensor), all as int32 little-endian. Binding the version in
    makes a file relabelled to another entropy path fail the check instead of decoding through
    the wrong path."""
    fields = [height, width] if version < EXACT_VERSION else [height, width, version]
    digest = hashlib.sha256(np.array(fields, dtype="<i4").tobytes())
    digest.update(np.ascontiguousarray(np.asarray(symbols), dtype="<i4").tobytes())
    return digest.hexdigest()[:32]


def max_image_pixels(max_pixels: Optional[int] = None) -> int:
    """The pixel limit in force: ``max_pixels`` when given, else ``$DIC_MAX_IMAGE_PIXELS`` when
    set, else :data:`DEFAULT_MAX_PIXELS`."""
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(text)
        except ValueError:
            raise OptionError(f"{MAX_PIXELS_ENV} is {text!r}; expected a positive whole number of pixels") from None
        what = MAX_PIXELS_ENV
    else:
        what = "max_pixels"
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise OptionError(f"{what} is {max_pixels!r}; expected a positive whole number of pixels")
    return max_pixels


def parse_header(meta: bytes, version: int, name: str) -> Header:
    """JSON → :class:`Header`, checking the key set and every value."""
    try:
        record = json.loads(meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BitstreamError(f"{name} is corrupt: its header is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise BitstreamError(f"{name} is corrupt: its header is a JSON {type(record).__name__}, expected an object")
    keys = _KEYS[version]
    missing = sorted(keys - set(record))
    if missing:
        raise BitstreamError(f"{name} is corrupt: its header lacks the key(s) {', '.join(missing)}")
    unknown = sorted(set(record) - keys)
    if unknown:
        raise BitstreamError(
            f"{name} has unknown header key(s) {', '.join(map(repr, unknown))} for format version "
            f"{version}: it is corrupt, or was written by a newer dic (upgrade dic to decode it)"
        )
    for key, check in _FIELD_CHECKS.items():
        if key in record:
            problem = check(record[key], version)
            if problem:
                raise BitstreamError(f"{name} is corrupt: header {key!r} is {_short(record[key])}; expected {problem}")
    record["padding"] = tuple(record["padding"])
    return Header(**record, version=version)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _check_hparams(value: Any, version: int) -> Optional[str]:
    ok = isinstance(value, dict) and all(
        _scalar(v) or (isinstance(v, list) and all(_scalar(item) for item in v)) for v in value.values()
    )
    return None if ok else "a flat object of numbers, strings, booleans, null or lists of them"


def _check_checkpoint(value: Any, version: int) -> Optional[str]:
    if value is None or (version == 1 and isinstance(value, str)):
        return None
    plain = (isinstance(value, str) and 0 < len(value) <= 255 and value not in (".", "..")
             and not any(c in value for c in "/\\\x00"))
    return None if plain else "null or a plain file name (no folder)"


def _check_latents(value: Any, version: int) -> Optional[str]:
    expected = '{"y": {"shape": [C, h, w], "sha256": 32 hex digits}, "z": {...}}'
    if not isinstance(value, dict) or set(value) != set(LATENTS):
        return expected
    for entry in value.values():
        if not isinstance(entry, dict) or set(entry) != {"shape", "sha256"}:
            return expected
        shape, digest = entry["shape"], entry["sha256"]
        if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(s) and s > 0 for s in shape)):
            return expected
        if not (isinstance(digest, str) and _HEX32.fullmatch(digest)):
            return expected
    return None


def _check_encoder(value: Any, version: int) -> Optional[str]:
    if version == 1:
        return None if isinstance(value, dict) else "an object"
    ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return None if ok else "an object of strings"


_FIELD_CHECKS = {
    "model": lambda v, _: None if isinstance(v, str) and 0 < len(v) <= 100 else "a model name",
    "hparams": _check_hparams,
    "fingerprint": lambda v, _: None if isinstance(v, str) and _HEX64.fullmatch(v) else "64 lower-case hex digits",
    "height": lambda v, _: None if _is_int(v) and v >= 1 else "an integer ≥ 1",
    "width": lambda v, _: None if _is_int(v) and v >= 1 else "an integer ≥ 1",
    "pad_multiple": lambda v, _: (None if _is_int(v) and 0 < v <= MAX_PAD_MULTIPLE and v % PAD_MULTIPLE == 0
                                  else f"a multiple of {PAD_MULTIPLE} up to {MAX_PAD_MULTIPLE}"),
    "padding": lambda v, _: (None if isinstance(v, list) and len(v) == 4 and all(_is_int(p) and p >= 0 for p in v)
                             else "4 non-negative integers"),
    "checkpoint": _check_checkpoint,
    "body_bytes": lambda v, _: None if _is_int(v) and v >= 0 else "a non-negative integer",
    "body_crc32": lambda v, _: None if _is_int(v) and 0 <= v < 1 << 32 else "a 32-bit unsigned integer",
    "latents": _check_latents,
    "encoder": _check_encoder,
}


def check_size(header: Header, name: str, max_pixels: int) -> None:
    """The padding must be what the size implies, and the padded size within the limit."""
    expected = padding_for(header.height, header.width, header.pad_multiple)
    if header.padding != expected:
        raise BitstreamError(
            f"{name} is corrupt: header 'padding' is {list(header.padding)}, but a {header.height}×"
            f"{header.width} image padded to a multiple of {header.pad_multiple} has {list(expected)}"
        )
    padded_h, padded_w = header.height + expected[1], header.width + expected[3]
    if padded_h * padded_w > max_pixels:
        raise BitstreamError(
            f"{name} declares a {header.width}×{header.height} image ({padded_w}×{padded_h} = "
            f"{padded_w * padded_h / 1e6:.1f} megapixels once padded for decoding), more than the limit of "
            f"{max_pixels / 1e6:.1f} megapixels; if you trust the file, raise the limit "
            f"(--max-pixels, max_pixels=, or ${MAX_PIXELS_ENV})"
        )
