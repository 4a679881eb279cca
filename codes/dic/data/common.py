"""What every data set shares: option access with defaults and clear errors, phase handling,
start-up checks of image folders and sizes, and crops."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError, OptionError
from .io import image_size, list_images

logger = logging.getLogger(__name__)

#: Dataset option keys and their defaults (``root`` and ``name`` have none).
DATASET_DEFAULTS = {
    "patch_size": 256,
    "batch_size": 1,
    "n_workers": 0,
    "use_shuffle": None,  # None: shuffle in training only (the loader's decision)
    "level": None,
    "legacy_gamma": False,
    "crops_per_image": 60,
    "skip_small": False,
    "max_images": None,
}


def phase_kind(phase: str) -> str:
    """'train', 'val' or 'test': phases named ``train*`` and ``val*`` keep their kind, any other
    name (``test``, ``test_kodak``, ``kodak``...) is a test set."""
    phase = str(phase).lower()
    for kind in ("train", "val"):
        if phase.startswith(kind):
            return kind
    return "test"


class ImageDataset(Dataset):
    """Base class: holds the options, the phase and per-item names.

    Subclasses set ``has_gt`` and fill ``self.names`` (one report name per image).
    """

    has_gt: bool = True

    def __init__(self, dataset_opt: Mapping[str, Any], phase: str):
        self.opt = dict(dataset_opt)
        self.phase = str(phase)
        self.kind = phase_kind(phase)
        self.names: List[str] = []

    # ---- options -------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """The dotted option key for error messages, e.g. ``datasets.train.patch_size``."""
        return f"datasets.{self.phase}.{name}"

    def get(self, name: str, default: Any = None) -> Any:
        """Option ``name``; a missing or null value falls back to ``default``, then to the table."""
        value = self.opt.get(name)
        if value is not None:
            return value
        return default if default is not None else DATASET_DEFAULTS.get(name)

    def get_int(self, name: str, minimum: int = 1, default: Optional[int] = None) -> Optional[int]:
        """An integer option ≥ ``minimum`` (``None`` stays ``None``); OptionError otherwise."""
        value = self.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise OptionError(f"{self.key(name)}: expected an integer ≥ {minimum}, got {value!r}")
        return value

    def get_bool(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise OptionError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def root(self) -> Path:
        root = self.opt.get("root")
        if not root:
            raise OptionError(f"{self.key('root')}: a data folder or file is required")
        return Path(root)

    # ---- items ---------------------------------------------------------------------------
    def image_name(self, index: int) -> str:
        """The report name of item ``index`` (file stem or block id)."""
        return self.names[index % len(self.names)]

    def limit(self, items: Sequence) -> list:
        """The first ``max_images`` items (all when the option is null)."""
        n = self.get_int("max_images")
        return list(items if n is None else items[:n])


def find_image_folder(root: Path, kind: str, key: str) -> Path:
    """The folder holding the images: ``root`` itself, or ``root/<kind>`` when ``root`` holds no
    images but has that subfolder (the official layout ``root: data/flicker`` + phase)."""
    if not root.is_dir():
        raise DataError(f"{key}: image folder {root} does not exist")
    sub = root / kind
    if sub.is_dir() and not list_images(root):
        return sub
    return root


def scan_images(
    folder: Path,
    key: str,
    min_size: Optional[int] = None,
    skip_small: bool = False,
    max_images: Optional[int] = None,
) -> Tuple[List[Path], List[Tuple[int, int]]]:
    """Sorted images of ``folder`` and their (H, W), read from headers only. With ``min_size``
    an image smaller than that on either side is an error naming it, or with ``skip_small`` is
    skipped with a warning. An empty result is an error, never a zero-length epoch."""
    paths = list_images(folder)
    if max_images is not None:
        paths = paths[:max_images]
    if not paths:
        raise DataError(f"{key}: no images found in {folder} (looked for .png, .jpg, .jpeg, .bmp, .tif, .webp)")
    sizes = [image_size(p) for p in paths]
    if min_size is not None:
        small = [(p, s) for p, s in zip(paths, sizes) if min(s) < min_size]
        if small and not skip_small:
            listed = "; ".join(f"{p} is {h}×{w}" for p, (h, w) in small[:5])
            more = f" and {len(small) - 5} more" if len(small) > 5 else ""
            raise DataError(
                f"{key}: {len(small)} image(s) smaller than the patch size {min_size}×{min_size} "
                f"(H×W): {listed}{more}. Remove them, lower patch_size, or set skip_small: true "
                f"to skip them with a warning"
            )
        for p, (h, w) in small:
            logger.warning("skipping %s: %d×%d (H×W) is smaller than the patch size %d", p, h, w, min_size)
        kept = [(p, s) for p, s in zip(paths, sizes) if min(s) >= min_size]
        if not kept:
            raise DataError(f"{key}: every image in {folder} is smaller than the patch size {min_size}")
        paths, sizes = [p for p, _ in kept], [s for _, s in kept]
    return paths, sizes


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


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (validation: image index; test: 0)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
