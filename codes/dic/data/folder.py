"""A plain folder of real noisy photographs without ground truth (``name: folder``).

Each item is the whole noisy image, a float32 3×H×W tensor in [0, 1]; ``has_gt`` is False so the
evaluator reports rate only. Grey, RGBA, palette and 16-bit files are converted to 8-bit RGB.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import DataError
from .registry import register_dataset
from .common import ImageDataset, PathLike, check_count, scan_images
from .io import read_image, to_tensor


@register_dataset("folder")
class FolderDataset(ImageDataset):
    """Noisy images of ``root`` in sorted order (the first ``max_images``; None: all), whole, no
    noise added. ``mode`` changes nothing: every item is a whole image."""

    has_gt = False

    def __init__(self, root: PathLike, mode: str = "test", max_images: Optional[int] = None):
        super().__init__(root, mode)
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root} does not exist", argument="root")
        max_images = check_count("max_images", max_images, optional=True)
        self.paths, self.sizes = scan_images(self.root, max_images=max_images)
        self.names = [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_tensor(read_image(self.paths[index]))
