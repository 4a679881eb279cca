"""The ``.dic`` file: its byte format (:mod:`.format`) and the coding API (:mod:`.api`).

``dic compress`` / ``dic decompress`` (the command line over folders) live in
:mod:`dic.apps.codec_cmd`; this package knows no command line."""
from .api import (check_model, decode_bytes, decode_strings, device_warning, encode_image, load_codec_model,
                  prepare_model, resolve_checkpoint)
from .format import FORMAT_VERSION, MAGIC, SUFFIX, Header, pack, read_header, unpack

__all__ = [
    "FORMAT_VERSION", "MAGIC", "SUFFIX", "Header", "check_model", "decode_bytes", "decode_strings",
    "device_warning", "encode_image", "load_codec_model", "pack", "prepare_model", "read_header",
    "resolve_checkpoint", "unpack",
]
