"""Seeded mutations of one ``.dic`` file for the decoder's fuzz campaign (:mod:`.fuzz`), in three
classes:

- ``file``: random damage to the whole file (bit flips, overwritten, inserted, deleted or
  appended bytes, truncation), the kind the CRCs catch;
- ``strings``: the rANS strings damaged and the file re-packed with consistent CRCs and an
  unchanged header (damage before the checksums were computed: a bad disk or copy inside a
  pipeline), the kind only the latent checksums catch;
- ``headers``: hand-made headers and string tables with valid CRCs (huge, zero, negative and
  inconsistent sizes and paddings, wrong string counts, absurd hyper-parameters, wrong types,
  unknown keys, other versions).

Version-1 files carry no latent checksums, so damage to their strings cannot be detected by
design; version-1 headers are crafted only to check that an inconsistent one is refused. (The
subject is a version-3 file, coded by the exact entropy path; relabelled as version 2 its
strings are read by the float path, and the latent checksums must catch the difference.)"""
from __future__ import annotations

import copy
import json
import random
import struct
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from dic.codec.format import pack, pack_raw, read_header, unpack
from dic.codec.header import FORMAT_VERSION, Header, padding_for

CLASSES = ("file", "strings", "headers")
Case = Tuple[str, str, bytes]  # class, kind, file bytes


def cases(data: bytes, count: int, seed: int = 0) -> Iterator[Case]:
    """``count`` mutated files of ``data``: 40 % whole-file, 40 % string, 20 % header cases,
    interleaved; the same ``seed`` and ``count`` give the same files."""
    rng = random.Random(seed)
    header, strings = unpack(data)
    record = json.loads(header.to_json())
    for i in range(count):
        slot = i % 5
        if slot in (0, 2):
            kind, out = _file_mutation(rng, data)
            yield "file", kind, out
        elif slot in (1, 3):
            kind, out = _string_mutation(rng, header, strings)
            yield "strings", kind, out
        else:
            kind, out = _header_case(rng, record, strings, data)
            yield "headers", kind, out


# ----------------------------------------------------------------------------- whole file


def _file_mutation(rng: random.Random, data: bytes) -> Tuple[str, bytes]:
    out = bytearray(data)
    kind = rng.choice(["flip", "flips", "overwrite", "truncate", "insert", "delete", "append", "duplicate"])
    pos = rng.randrange(len(out))
    if kind == "flip":
        out[pos] ^= 1 << rng.randrange(8)
    elif kind == "flips":
        _flip_bits(rng, out, rng.randint(2, 16))
    elif kind == "overwrite":
        n = rng.randint(1, 16)
        out[pos:pos + n] = _random_bytes(rng, len(out[pos:pos + n]))
    elif kind == "truncate":
        del out[pos:]
    elif kind == "insert":
        out[pos:pos] = _random_bytes(rng, rng.randint(1, 64))
    elif kind == "delete":
        del out[pos:pos + rng.randint(1, 64)]
    elif kind == "append":
        out += _random_bytes(rng, rng.randint(1, 64))
    else:
        n = rng.randint(1, 64)
        out[pos:pos] = out[pos:pos + n]
    return kind, bytes(out)


def _flip_bits(rng: random.Random, out: bytearray, count: int) -> None:
    """Flip ``count`` random bits of ``out`` in place (a byte, then a bit, per flip)."""
    for _ in range(count):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


# ----------------------------------------------------------------------------- strings


def _damage(rng: random.Random, s: bytes) -> Tuple[str, bytes]:
    """One kind of damage to one rANS string."""
    out = bytearray(s)
    kind = rng.choice(["flip", "flips", "overwrite", "zeros", "ones", "truncate", "extend", "random",
                       "shuffle words", "swap words"])
    pos = rng.randrange(len(out))
    if kind == "flip":
        out[pos] ^= 1 << rng.randrange(8)
    elif kind == "flips":
        _flip_bits(rng, out, rng.randint(2, 8))
    elif kind in ("overwrite", "zeros", "ones"):
        n = min(rng.randint(1, 16), len(out) - pos)
        out[pos:pos + n] = {"overwrite": _random_bytes(rng, n), "zeros": bytes(n), "ones": b"\xff" * n}[kind]
    elif kind == "truncate":
        del out[max(8, (pos // 4) * 4):]
        if len(out) == len(s):
            del out[-4:]
    elif kind == "extend":
        out += _random_bytes(rng, 4 * rng.randint(1, 16))
    elif kind == "random":
        out = bytearray(_random_bytes(rng, len(out)))
    else:
        words = [bytes(out[i:i + 4]) for i in range(0, len(out), 4)]
        if kind == "shuffle words":
            rng.shuffle(words)
        else:
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        out = bytearray(b"".join(words))
    return kind, bytes(out)


def _string_mutation(rng: random.Random, header: Header, strings: List[List[bytes]]) -> Tuple[str, bytes]:
    """Damage the y string, the z string or both (or swap them); re-pack with valid CRCs."""
    y, z = strings[0][0], strings[1][0]
    target = rng.choice(["y", "y", "z", "both", "swap"])
    if target == "swap":
        kind, y, z = "swap y and z", z, y
    else:
        kinds = []
        if target in ("y", "both"):
            k, y = _damage(rng, y)
            kinds.append(f"y: {k}")
        if target in ("z", "both"):
            k, z = _damage(rng, z)
            kinds.append(f"z: {k}")
        kind = ", ".join(kinds)
    return kind, pack(header, [[y], [z]])


# ----------------------------------------------------------------------------- headers


def _body(strings: List[List[bytes]], count: Optional[int] = None, per: Optional[List[int]] = None,
          lengths: Optional[List[int]] = None) -> bytes:
    """A string table, optionally with another latent count, string counts or declared lengths."""
    flat = [s for latent in strings for s in latent]
    count = len(strings) if count is None else count
    per = per or [len(latent) for latent in strings]
    parts, k = [bytes([count])], 0
    for n in per[:count] + [1] * max(0, count - len(per)):
        parts.append(struct.pack(">I", n))
        for _ in range(n):
            s = flat[k % len(flat)]
            length = len(s) if lengths is None else lengths[k % len(lengths)]
            parts += [struct.pack(">I", length), s]
            k += 1
    return b"".join(parts)


def _write(record: Dict[str, Any], body: bytes, version: int = FORMAT_VERSION) -> bytes:
    """Header JSON with ``body_bytes``/``body_crc32`` made to fit ``body`` unless the record
    overrides them, and valid CRCs."""
    record = dict(record)
    record.setdefault("body_bytes", len(body))
    record.setdefault("body_crc32", zlib.crc32(body))
    return pack_raw(json.dumps(record, sort_keys=True).encode("utf-8"), body, version)


_HUGE = [65536, 100000, 1 << 20, 1 << 31, 10 ** 12, 10 ** 30]
_ODD_VALUES = [0, -1, -64, 1, True, False, None, 1.5, float("nan"), "70", [70], {"h": 70}, 2 ** 64]


def _size_case(rng: random.Random, rec: Dict[str, Any]) -> str:
    """Change the size; sometimes make padding and latent shapes agree with it."""
    choice = rng.random()
    if choice < 0.4:
        h, w = rng.choice(_HUGE + [1, 2, 63, 64, 65]), rng.choice(_HUGE + [1, 70, 90, 4096])
    elif choice < 0.7:
        h, w = rng.randint(1, 5000), rng.randint(1, 5000)
    else:
        key = rng.choice(["height", "width"])
        rec[key] = rng.choice(_ODD_VALUES)
        return f"{key} = {rec[key]!r}"
    rec["height"], rec["width"] = h, w
    m = rec["pad_multiple"]
    if rng.random() < 0.7:
        rec["padding"] = list(padding_for(h, w, m))
        if rng.random() < 0.7:
            zh, zw = -(-h // m) * m // 64, -(-w // m) * m // 64
            rec["latents"]["y"]["shape"][1:] = [4 * zh, 4 * zw]
            rec["latents"]["z"]["shape"][1:] = [zh, zw]
            return f"size {h}×{w}, padding and latent shapes consistent"
        return f"size {h}×{w}, padding consistent"
    return f"size {h}×{w}, padding unchanged"


def _padding_case(rng: random.Random, rec: Dict[str, Any]) -> str:
    options = [[0, 0, 0, 0], [0, 58, 0, 38 + 64], [1, 57, 0, 38], [0, -6, 0, 38], [0, 58, 0], "0",
               [0, 58.0, 0, 38], [0, 58 + 64, 0, 38 + 64]]
    if rng.random() < 0.5:
        rec["padding"] = rng.choice(options)
        return f"padding = {rec['padding']!r}"
    m = rng.choice([0, -64, 32, 96, 128, 1 << 20, True, "64", 64.0])
    rec["pad_multiple"] = m
    if isinstance(m, int) and not isinstance(m, bool) and m > 0:
        rec["padding"] = list(padding_for(rec["height"], rec["width"], m))
    return f"pad_multiple = {m!r}"


def _hparams_case(rng: random.Random, rec: Dict[str, Any]) -> str:
    hp = rec["hparams"]
    options: List[Tuple[str, Callable[[], Any]]] = [
        ("N huge", lambda: {**hp, "N": 10 ** 9}), ("N zero", lambda: {**hp, "N": 0}),
        ("N negative", lambda: {**hp, "N": -16}), ("N string", lambda: {**hp, "N": "16"}),
        ("nested", lambda: {**hp, "N": {"value": 16}}), ("list of objects", lambda: {**hp, "local_blocks": [{}]}),
        ("missing N", lambda: {k: v for k, v in hp.items() if k != "N"}), ("extra key", lambda: {**hp, "depth": 3}),
        ("num_heads huge", lambda: {**hp, "num_heads": 2 ** 40}), ("not an object", lambda: [16]),
        ("null", lambda: None), ("empty", lambda: {}),
    ]
    kind, make = rng.choice(options)
    rec["hparams"] = make()
    return f"hparams: {kind}"


def _field_case(rng: random.Random, rec: Dict[str, Any]) -> str:
    """Wrong types and ranges in the other fields, and unknown or missing keys."""
    key = rng.choice(["model", "fingerprint", "checkpoint", "body_bytes", "body_crc32", "encoder", "latents",
                      "unknown", "missing"])
    if key == "unknown":
        rec[rng.choice(["comment", "latents2", "version", "extra"])] = rng.choice(_ODD_VALUES)
        return "unknown key"
    if key == "missing":
        victim = rng.choice(sorted(rec))
        del rec[victim]
        return f"missing {victim}"
    if key == "latents":
        lat = rec["latents"]
        which = rng.choice(["y", "z"])
        change = rng.choice(["checksum of another image", "bad hex", "shape", "missing", "extra"])
        if change == "checksum of another image":
            lat[which]["sha256"] = "%032x" % rng.getrandbits(128)
        elif change == "bad hex":
            lat[which]["sha256"] = rng.choice(["", "XYZ", lat[which]["sha256"].upper(), lat[which]["sha256"] * 2])
        elif change == "shape":
            lat[which]["shape"] = rng.choice([[16, 8, 9], [32, 8, 8], [16, 8], [0, 8, 8], [16, -8, 8], "16x8x8"])
        elif change == "missing":
            del lat[which]
        else:
            lat["w"] = lat["y"]
        return f"latents: {which} {change}"
    value = {
        "model": ["", "cheng2020-anchor", "multiscale-decomp", 7, "x" * 1000],
        "fingerprint": ["", "ab" * 31, "AB" * 32, "zz" * 32, "%064x" % rng.getrandbits(256), 12],
        "checkpoint": ["../../etc/passwd", "/abs/path/a.pth", "", ".", "a\\b.pth", 5, ["a.pth"]],
        "body_bytes": [-1, 0, 10 ** 12, True, "12"],
        "body_crc32": [-1, 1 << 32, None, 1.0],
        "encoder": [None, [], {"torch": 2}, "cpu"],
    }[key]
    rec[key] = rng.choice(value)
    return f"{key} = {rec[key]!r}"[:60]


def _table_case(rng: random.Random, strings: List[List[bytes]]) -> Tuple[str, bytes]:
    """A string table with other counts or lengths (CRC and body_bytes made to fit)."""
    y, z = strings[0][0], strings[1][0]
    options: List[Tuple[str, Callable[[], bytes]]] = [
        ("no latents", lambda: _body(strings, count=0)), ("one latent", lambda: _body(strings, count=1)),
        ("three latents", lambda: _body(strings, count=3)), ("255 latents", lambda: _body(strings, count=255)),
        ("no y string", lambda: _body(strings, per=[0, 1])), ("two y strings", lambda: _body(strings, per=[2, 1])),
        ("two z strings", lambda: _body(strings, per=[1, 2])),
        ("a million strings", lambda: bytes([2]) + struct.pack(">II", 10 ** 6, len(y)) + y),
        ("empty strings", lambda: _body([[b""], [b""]])), ("3-byte strings", lambda: _body([[y[:3]], [z[:3]]])),
        ("length past the end", lambda: _body(strings, lengths=[len(y) + 1000, len(z)])),
        ("length 2**32-1", lambda: _body(strings, lengths=[2 ** 32 - 1, len(z)])),
        ("trailing bytes", lambda: _body(strings) + b"\x00" * 8), ("empty body", lambda: b""),
    ]
    kind, make = rng.choice(options)
    return kind, make()


def _header_case(rng: random.Random, record: Dict[str, Any], strings: List[List[bytes]], data: bytes) -> Tuple[str, bytes]:
    rec = copy.deepcopy(record)
    for key in ("body_bytes", "body_crc32"):
        rec.pop(key)
    body = _body(strings)
    group = rng.choice(["size", "size", "padding", "hparams", "fields", "fields", "table", "json", "version"])
    if group == "size":
        kind = _size_case(rng, rec)
    elif group == "padding":
        kind = _padding_case(rng, rec)
    elif group == "hparams":
        kind = _hparams_case(rng, rec)
    elif group == "fields":
        kind = _field_case(rng, rec)
    elif group == "table":
        kind, body = _table_case(rng, strings)
    elif group == "json":
        return _json_case(rng, data)
    else:
        return _version_case(rng, rec, body)
    return kind, _write(rec, body)


def _json_case(rng: random.Random, data: bytes) -> Tuple[str, bytes]:
    """Header bytes that are not a valid header object, with valid CRCs."""
    header = read_header(data)
    meta = data[14:header.body_offset - 4]
    body = data[header.body_offset:]
    options = [
        ("truncated JSON", meta[: rng.randrange(len(meta))]), ("a JSON list", b"[1, 2]"), ("a number", b"7"),
        ("not UTF-8", b'{"model": "\xff\xfe"}'), ("deeply nested", b"[" * 100000 + b"]" * 100000),
        ("NaN size", meta.replace(b'"height":', b'"height":NaN,"h0":', 1)),
        ("duplicate key", meta[:-1] + b',"height":1}'), ("empty", b""),
    ]
    kind, out = rng.choice(options)
    return kind, pack_raw(out, body)


def _version_case(rng: random.Random, rec: Dict[str, Any], body: bytes) -> Tuple[str, bytes]:
    choice = rng.choice(["v2 relabelled", "v1 with latents", "v1 huge", "v0", "v4", "v65535"])
    if choice == "v1 huge":
        rec.pop("latents")
        rec["height"] = rec["width"] = 100000
        rec["padding"] = list(padding_for(100000, 100000, rec["pad_multiple"]))
        return choice, _write(rec, body, version=1)
    version = {"v2 relabelled": 2, "v1 with latents": 1, "v0": 0, "v4": 4, "v65535": 65535}[choice]
    return choice, _write(rec, body, version=version)
