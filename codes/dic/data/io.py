"""Image files: read any common format as 8-bit RGB, write PNGs atomically, list and size folders.

Reading uses OpenCV with ``IMREAD_UNCHANGED`` so 16-bit PNGs keep their precision until they are
rounded to 8 bits here (Pillow would clip them), and EXIF orientation is ignored, as the official
releases' Pillow loader did, which also keeps decoded sizes equal to the header sizes
``imagesize`` reports.

Every image becomes 8-bit RGB: a grey image is repeated into three equal channels (so it is
coded, and decoded, as an RGB image whose channels are equal), an alpha channel is dropped
(``read_image(..., warn_alpha=True)`` says so with an :class:`AlphaDroppedWarning`: ``dic
compress`` asks for it), and 16-bit samples are rounded to 8 bits.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List, Tuple, Union

import cv2
import imagesize
import numpy as np
import torch

from ..conventions import is_image_file
from ..errors import DataError
from ..fileio import atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)

PathLike = Union[str, os.PathLike]


class AlphaDroppedWarning(UserWarning):
    """An image had an alpha (transparency) channel, which reading it as RGB dropped."""


def list_images(folder: PathLike, recursive: bool = False) -> List[Path]:
    """Image files in ``folder`` sorted by path; hidden files (``.name``) are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist or is not a folder")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in candidates if p.is_file() and is_image_file(p.name) and not p.name.startswith(".")
    )


def image_size(path: PathLike) -> Tuple[int, int]:
    """(height, width) read from the file header without decoding; DataError if unreadable."""
    try:
        width, height = imagesize.get(str(path))
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except Exception as exc:  # imagesize raises assorted errors on truncated headers
        raise DataError(f"cannot read the size of image {path}: {exc}") from None
    if width <= 0 or height <= 0:
        raise DataError(
            f"cannot read the size of image {path}: not a readable PNG/JPEG/BMP/TIFF/WebP header"
        )
    return int(height), int(width)


def _to_rgb8(image: np.ndarray, path: PathLike) -> np.ndarray:
    """OpenCV's decoded array (grey, grey+alpha, BGR, BGRA; 8/16-bit) → H×W×3 uint8 RGB."""
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"image {path} has {image.dtype} samples; expected 8- or 16-bit integers")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    channels = image.shape[2]
    if channels in (1, 2):  # grey, grey + alpha
        return np.repeat(image[:, :, :1], 3, axis=2)
    if channels in (3, 4):  # BGR, BGRA: drop alpha
        return np.ascontiguousarray(image[:, :, 2::-1])
    raise DataError(f"image {path} has {channels} channels; expected 1 to 4")


def has_alpha(image: np.ndarray) -> bool:
    """Whether OpenCV's decoded array carries an alpha channel (grey + alpha, or BGRA)."""
    return image.ndim == 3 and image.shape[2] in (2, 4)


def read_image(path: PathLike, *, warn_alpha: bool = False) -> np.ndarray:
    """Decode an image file as an H×W×3 uint8 RGB array. Grey, RGBA, palette and 16-bit images are
    converted (module docstring); a missing or undecodable file raises :class:`DataError`
    naming it. With ``warn_alpha``, dropping an alpha channel issues an
    :class:`AlphaDroppedWarning` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(f"cannot decode image {path}: the file is empty, truncated or not an image")
    if warn_alpha and has_alpha(image):
        warnings.warn(AlphaDroppedWarning(f"{path} has an alpha (transparency) channel, which is dropped: "
                                          "dic codes RGB"), stacklevel=2)
    return _to_rgb8(image, path)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float32 in [0, 1] (what ``torchvision``'s ``ToTensor`` gives)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)


def to_uint8(image: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """A CHW / 1×CHW float tensor in [0, 1] or an H×W(×C) uint8 array → H×W×C uint8 array."""
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu().float()
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise ValueError(f"write_image takes one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.dim() == 3:
            t = t.permute(1, 2, 0)
        return t.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_image takes uint8 arrays or float tensors, got {image.dtype}")
    return image


def write_image(path: PathLike, image: Union[np.ndarray, torch.Tensor]) -> None:
    """Save an RGB (or grey) image atomically; the format follows the extension (PNG normally).
    Accepts an H×W×3 / H×W uint8 array or a CHW / 1×CHW float tensor in [0, 1]."""
    path = Path(path)
    array = to_uint8(image)
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[:, :, ::-1]  # OpenCV encodes BGR
    elif not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1)):
        raise ValueError(f"write_image takes grey or RGB images, got shape {array.shape}")
    ok, encoded = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(array))
    if not ok:
        raise DataError(f"cannot encode an image as {path.suffix!r} for {path}")
    atomic_write_bytes(path, encoded.tobytes())
