"""What every data set shares: modes, argument checks naming the argument, start-up checks of
image folders and sizes, and crops. Data sets take plain arguments; their defaults equal the
option schema's (dic.config.options), which supplies every value when a data set comes from an
option file."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ArgumentError, DataError
from .io import image_size, list_images

logger = logging.getLogger(__name__)

#: What a data set is read for: random crops (train), fixed crops (val) or whole images (test).
MODES = ("train", "val", "test")

PathLike = Union[str, Path]


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`; an ArgumentError otherwise."""
    if mode not in MODES:
        raise ArgumentError(f"expected one of {', '.join(MODES)}, got {mode!r}", argument="mode")
    return mode


def check_count(argument: str, value: Any, optional: bool = False) -> Optional[int]:
    """``value`` if it is an integer ≥ 1 (or None when ``optional``); an ArgumentError naming
    ``argument`` otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"expected an integer ≥ 1, got {value!r}", argument=argument)
    return value


class ImageDataset(Dataset):
    """Base class: holds ``root``, the ``mode`` and per-item names.

    Subclasses set ``has_gt`` and fill ``self.names`` (one report name per image).
    """

    has_gt: bool = True

    def __init__(self, root: PathLike, mode: str):
        self.root = Path(root)
        self.mode = check_mode(mode)
        self.names: List[str] = []

    def image_name(self, index: int) -> str:
        """The report name of item ``index`` (file stem or block id)."""
        return self.names[index % len(self.names)]


def find_image_folder(root: Path, mode: str) -> Path:
    """The folder holding the images: ``root`` itself, or ``root/<mode>`` when ``root`` holds no
    images but has that subfolder (the official layout ``root: data/flicker`` + phase)."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist", argument="root")
    sub = root / mode
    if sub.is_dir() and not list_images(root):
        return sub
    return root


def scan_images(
    folder: Path,
    min_size: Optional[int] = None,
    skip_small: bool = False,
    max_images: Optional[int] = None,
) -> Tuple[List[Path], List[Tuple[int, int]]]:
    """Sorted images of ``folder`` (the first ``max_images``) and their (H, W), read from headers
    only. With ``min_size`` an image smaller than that on either side is an error naming it, or
    with ``skip_small`` is skipped with a warning. An empty result is an error, never a
    zero-length epoch."""
    paths = list_images(folder)
    if max_images is not None:
        paths = paths[:max_images]
    if not paths:
        raise DataError(f"no images found in {folder} (looked for .png, .jpg, .jpeg, .bmp, .tif, .webp)",
                        argument="root")
    sizes = [image_size(p) for p in paths]
    if min_size is None:
        return paths, sizes
    small = [(p, s) for p, s in zip(paths, sizes) if min(s) < min_size]
    if small and not skip_small:
        listed = "; ".join(f"{p} is {h}×{w}" for p, (h, w) in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise DataError(
            f"{len(small)} image(s) smaller than the patch size {min_size}×{min_size} (H×W): "
            f"{listed}{more}. Remove them, lower patch_size, or set skip_small to skip them with a warning",
            argument="patch_size",
        )
    for p, (h, w) in small:
        logger.warning("skipping %s: %d×%d (H×W) is smaller than the patch size %d", p, h, w, min_size)
    kept = [(p, s) for p, s in zip(paths, sizes) if min(s) >= min_size]
    if not kept:
        raise DataError(f"every image in {folder} is smaller than the patch size {min_size}", argument="patch_size")
    return [p for p, _ in kept], [s for _, s in kept]


def random_crop_position(h: int, w: int, size: int) -> Tuple[int, int]:
    """A uniform random (top, left) for a ``size`` crop, drawn from torch's global RNG (seeded per
    DataLoader worker from the global seed, so training is reproducible)."""
    top = int(torch.randint(0, h - size + 1, (1,)))
    left = int(torch.randint(0, w - size + 1, (1,)))
    return top, left


def center_crop_position(h: int, w: int, size: int) -> Tuple[int, int]:
    """(top, left) of the centre crop, rounded as torchvision's ``CenterCrop`` rounds."""
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))


def crop(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return image[top : top + size, left : left + size]


def check_channel_gain(value: Any) -> float:
    """``channel_gain`` as a float in [0, 1] (the log of the largest gain), or an ArgumentError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ArgumentError(f"expected a number in [0, 1] (log of the largest gain), got {value!r}",
                            argument="channel_gain")
    return float(value)


def augment(image: np.ndarray, hflip: bool = False, rot: bool = False, channel_shuffle: bool = False,
            channel_gain: float = 0.0) -> np.ndarray:
    """A randomly flipped, rotated and recoloured view of an H×W×C uint8 crop (docs/data.md §1).

    ``hflip``: mirror left–right with probability ½; ``rot``: one of the four quarter turns with
    a possible top–bottom flip (with ``hflip``: all eight symmetries of the square);
    ``channel_shuffle``: one of the six orders of the colour channels; ``channel_gain`` g > 0:
    each channel multiplied by its own ``exp(U(−g, g))`` (a white-balance shift, clipped to
    0–255), so that grey photographs carry a colour cast the model has to keep. Draws come from
    torch's global RNG, and only for the options set, so a run without them draws as before.
    """
    if hflip and int(torch.randint(0, 2, (1,))):
        image = image[:, ::-1]
    if rot:
        if int(torch.randint(0, 2, (1,))):
            image = image[::-1]
        image = np.rot90(image, int(torch.randint(0, 4, (1,))))
    if channel_shuffle:
        image = image[:, :, torch.randperm(image.shape[2]).numpy()]
    if channel_gain > 0:
        gains = torch.exp((torch.rand(image.shape[2], dtype=torch.float64) * 2 - 1) * channel_gain).numpy()
        image = np.clip(np.rint(image * gains), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (validation: image index; test: 0)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
