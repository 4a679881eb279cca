"""The ``.dic`` byte format: header, packing and unpacking with every integrity check.

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
                 context model's masked taps zeroed, see :func:`dic.models.base.apply_context_masks`)
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

import dataclasses
import json
import struct
import zlib
from typing import Any, Dict, List, Optional, Tuple

from ..errors import BitstreamError
from ..models.base import PAD_MULTIPLE

MAGIC = b"\x89DIC\r\n\x1a\n"
FORMAT_VERSION = 1
SUFFIX = ".dic"
MAX_HEADER_BYTES = 1 << 20

_PREFIX = struct.Struct(">8sHI")  # magic, version, header length
_U32 = struct.Struct(">I")
_HEADER_KEYS = {
    "model": str, "hparams": dict, "fingerprint": str, "height": int, "width": int,
    "padding": list, "pad_multiple": int, "checkpoint": (str, type(None)), "body_bytes": int,
    "body_crc32": int, "encoder": dict,
}

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


