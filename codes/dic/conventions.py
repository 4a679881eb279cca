"""Names and markers the library and the command line share, importable without torch (so
``dic compress`` can plan and refuse outputs, and ``--help`` can name them, before loading
anything): the ``.dic`` file's suffix and signature, the image file endings, and the
environment variables of the decoder, and the entropy models' spatial contexts."""
from typing import Literal, Tuple, get_args

#: The first eight bytes of every ``.dic`` file (docs/formats.md).
MAGIC = b"\x89DIC\r\n\x1a\n"
#: The file name ending of a ``.dic`` file.
SUFFIX = ".dic"
#: File name endings treated as images (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Folders, separated by the OS path separator, where ``dic decompress`` looks for checkpoints.
CHECKPOINT_PATH_ENV = "DIC_CHECKPOINT_PATH"
#: Raises the largest image a decoder accepts (pixels, once padded).
MAX_PIXELS_ENV = "DIC_MAX_IMAGE_PIXELS"

#: The spatial context of an entropy model: the papers' raster-order masked convolution, or
#: two checkerboard passes (docs/using_models.md).
Context = Literal["serial", "checkerboard"]
CONTEXTS: Tuple[str, ...] = get_args(Context)


def is_image_file(name: object) -> bool:
    """True when the (path or file) name ends with a known image extension."""
    return str(name).lower().endswith(IMAGE_EXTENSIONS)
