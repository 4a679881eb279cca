"""The ``.dic`` byte format, version 3: the byte layout and the header's keys, packing and
unpacking (the header's field checks live in :mod:`.header`; docs/architecture.md).

Layout (integers unsigned, big-endian)::

    offset   size  field
    0        8     magic  b"\\x89DIC\\r\\n\\x1a\\n"  (PNG-style: a high byte, then CR LF, ^Z, LF, so
                   text-mode transfers and files of other kinds are caught at once)
    8        2     format version (uint16): 3 (1 and 2 are still read, see below)
    10       4     header length L in bytes (uint32, at most 1 MiB)
    14       L     header: a UTF-8 JSON object (keys below)
    14+L     4     CRC-32 of bytes [0, 14+L): magic, version, length and header
    18+L     B     body: the entropy-coded strings, B = header["body_bytes"]
                     uint8   K = 2             number of latents: y, then z
                     K times:
                       uint32  n = 1           number of strings of the latent (one image)
                       uint32  len             length of the string in bytes: ≥ 8, a multiple of 4
                                               (an rANS string is 32-bit words, its final state
                                               taking two)
                       len     bytes           the rANS string
    18+L+B   -     end of file: nothing may follow the body

Header keys (JSON), all required, no others::

    model        registry name of the model, e.g. "snr-decomp"
    hparams      the model's constructor hyper-parameters (``model.hparams``: quality, N, ...):
                 a flat object whose values are numbers, strings, booleans, null or lists of them
    fingerprint  ``weights_fingerprint(model)``: 64 lower-case hex digits of the SHA-256 of the
                 weights, the entropy-coder tables included (stored with the weights since
                 version 3; version-2 encoders computed them where they ran), with the context model's masked taps zeroed
                 (:func:`dic.models.base.apply_context_masks`)
    height       original image height H ≥ 1 (the decoded image has exactly this size)
    width        original image width W ≥ 1
    padding      [0, (-H) mod m, 0, (-W) mod m]: [top, bottom, left, right] pixels of replicate
                 padding the model adds to reach a multiple of m (removed after decoding)
    pad_multiple m, the multiple the model pads to: a multiple of 64 (64 or more)
    checkpoint   the FILE NAME (no folder) of the checkpoint the file was made with, or null;
                 ``dic decompress`` looks for it (docs in :mod:`dic.codec.api`)
    body_bytes   B, the body's length
    body_crc32   CRC-32 of the body
    latents      {"y": {"shape": [C, h, w], "sha256": S}, "z": {...}}: each latent's shape and
                 checksum S, the first 32 hex digits (128 bits) of the SHA-256 of H, W and the
                 format version (version 3; version 2 has H and W only), then
                 the latent's integer symbols (the values the rANS coder carries: round(y − μ)
                 for y, round(z − median) for z) in C, h, w order, all as int32 little-endian.
                 Binding the size and version in covers the header fields that change the
                 decoded image without changing the latents (the crop, the entropy path)
    encoder      information only: strings naming the versions of dic, torch and compressai and
                 the device used (quoted in error messages)

Reading checks, in order, before a byte reaches the entropy decoder: the magic; the version (a
newer one names both versions); the header length; the header CRC; the header's keys (exactly
those above: an unknown key is refused, since a field this reader does not know may change how
the file must be decoded — a new field means a new version number); every value's type and range
(ints are not booleans, sizes ≥ 1, the fingerprint and checksums hex of the right length, the
checkpoint a plain file name); the padding against the size; the image size, padded, against the
pixel limit (:func:`.header.max_image_pixels`); the body length (truncation) and CRC; the string table:
two latents of one string each, every string a whole number of words. :mod:`dic.codec.api` then
checks the model (name, hyper-parameters, weights fingerprint, pad multiple, latent shapes) and,
after decoding, the latents' checksums.

Version 3 says how the symbols were coded: by the exact entropy path (:mod:`dic.models.exact`,
docs/portability.md), whose probabilities are the same on every machine. Version 2 has the same
layout and keys; its symbols were coded by the float path, whose probabilities depend on the
machine's instruction set and libraries, so it decodes only on a machine like the one that wrote
it (a mismatch is caught by the latent checksums and says so). Version 1 (files written before
the checksums existed) has the same layout and keys less ``latents``; its ``checkpoint`` may be an absolute path and its ``encoder`` any object. It is
read with every check that applies, but its latents cannot be verified after decoding.
"""
from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import List, Optional, Tuple

from ..errors import BitstreamError
from ..conventions import MAGIC
from .header import FORMAT_VERSION, LATENTS, Header, check_size, max_image_pixels, parse_header

READABLE_VERSIONS = (1, 2, 3)
MAX_HEADER_BYTES = 1 << 20

_PREFIX = struct.Struct(">8sHI")  # magic, version, header length
_U32 = struct.Struct(">I")

Strings = List[List[bytes]]


# ----------------------------------------------------------------------------- writing


def pack(header: Header, strings: Strings) -> bytes:
    """Serialise a header and the strings ([[y_string], [z_string]]) into a file of
    ``header.version`` (3 unless a test writes an older file)."""
    if header.version not in READABLE_VERSIONS or (header.latents is None) != (header.version == 1):
        raise ValueError(f"pack: version {header.version} with latents {header.latents!r}")
    body = _pack_body(strings)
    header = dataclasses.replace(header, body_bytes=len(body), body_crc32=zlib.crc32(body))
    return pack_raw(header.to_json(), body, header.version)


def pack_raw(meta: bytes, body: bytes, version: int = FORMAT_VERSION) -> bytes:
    """A file from header JSON bytes and a body as they are, with valid CRCs: no check at all
    (for writers and for tests that craft headers)."""
    head = _PREFIX.pack(MAGIC, version, len(meta)) + meta
    return head + _U32.pack(zlib.crc32(head)) + body


def _pack_body(strings: Strings) -> bytes:
    if len(strings) != len(LATENTS) or any(len(latent) != 1 for latent in strings):
        raise ValueError(f"a .dic body holds one string per latent (y, z), got {[len(s) for s in strings]}")
    parts = [bytes([len(strings)])]
    for latent in strings:
        parts.append(_U32.pack(len(latent)))
        for s in latent:
            parts += [_U32.pack(len(s)), bytes(s)]
    return b"".join(parts)


# ----------------------------------------------------------------------------- reading


def read_header(data: bytes, name: str = "data", max_pixels: Optional[int] = None) -> Header:
    """Check the magic, version, header length, header CRC and every header field (types,
    ranges, padding, the pixel limit), and return the header. The body is not checked here
    (:func:`unpack` does). ``name`` is used in error messages."""
    data = memoryview(data)
    version, length = _check_prefix(data, name)
    end = _PREFIX.size + length
    if len(data) < end + _U32.size:
        where = "header" if len(data) < end else "header checksum"
        raise BitstreamError(
            f"{name} is truncated: it ends after {len(data)} bytes, inside the {where} "
            f"(the header needs {end + _U32.size})"
        )
    (stored,) = _U32.unpack_from(data, end)
    actual = zlib.crc32(data[:end])
    if stored != actual:
        raise BitstreamError(
            f"{name} is corrupt: the header checksum does not match "
            f"(stored {stored:08x}, computed {actual:08x})"
        )
    header = parse_header(bytes(data[_PREFIX.size:end]), version, name)
    header.version, header.body_offset = version, end + _U32.size
    check_size(header, name, max_image_pixels(max_pixels))
    return header


def _check_prefix(data: memoryview, name: str) -> Tuple[int, int]:
    """The magic, version and header length: (version, length)."""
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
    if version not in READABLE_VERSIONS:
        if version > FORMAT_VERSION:
            raise BitstreamError(
                f"{name} uses .dic format version {version}, newer than this program reads "
                f"(version {FORMAT_VERSION}); upgrade dic to decode it"
            )
        raise BitstreamError(
            f"{name} has .dic format version {version}, which does not exist "
            f"(this program reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    if length > MAX_HEADER_BYTES:
        raise BitstreamError(f"{name} is corrupt: header length {length} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    return version, length



def unpack(data: bytes, name: str = "data", max_pixels: Optional[int] = None) -> Tuple[Header, Strings]:
    """Validate a whole file (header, body length and CRC, string table): the header and the
    strings ``[[y_string], [z_string]]``."""
    header = read_header(data, name, max_pixels)
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

    count = take(1)[0]
    if count != len(LATENTS):
        raise BitstreamError(f"{name} is corrupt: the body holds {count} latents, expected {len(LATENTS)} (y and z)")
    strings = []
    for latent in LATENTS:
        (n,) = _U32.unpack(take(4))
        if n != 1:
            raise BitstreamError(f"{name} is corrupt: latent {latent} has {n} strings, expected 1 (one image)")
        (length,) = _U32.unpack(take(4))
        if length < 8 or length % 4:
            raise BitstreamError(
                f"{name} is corrupt: the {latent} string has {length} bytes; an rANS string is a "
                "whole number of 4-byte words, at least 2"
            )
        strings.append([bytes(take(length))])
    if pos != len(body):
        raise BitstreamError(f"{name} is corrupt: {len(body) - pos} bytes follow the string table in the body")
    return strings
