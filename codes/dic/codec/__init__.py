"""The ``.dic`` file: its byte format (:mod:`.format`) and header checks (:mod:`.header`), the
coding API (:mod:`.api`) and the search for a file's weights (:mod:`.search`). The fuzz
campaign that tests the decoder is test tooling (``tests/fuzzing/``).

``dic compress`` / ``dic decompress`` (the command line over folders) live in
:mod:`dic.apps.codec_cmd`; this package knows no command line."""
from .api import (check_model, decode_bytes, decode_strings, decode_warnings, encode_image, latent_shapes,
                  load_codec_model, load_for_header, prepare_model)
from ..conventions import CHECKPOINT_PATH_ENV, MAGIC, MAX_PIXELS_ENV, SUFFIX
from .format import FORMAT_VERSION, pack, read_header, unpack
from .header import DEFAULT_MAX_PIXELS, Header, latent_checksum, max_image_pixels
from .search import find_checkpoint

__all__ = [
    "CHECKPOINT_PATH_ENV", "DEFAULT_MAX_PIXELS", "FORMAT_VERSION", "MAGIC", "MAX_PIXELS_ENV", "SUFFIX", "Header",
    "check_model", "decode_bytes", "decode_strings", "decode_warnings", "encode_image", "find_checkpoint",
    "latent_checksum", "latent_shapes", "load_codec_model", "load_for_header", "max_image_pixels", "pack",
    "prepare_model", "read_header", "unpack",
]
