"""A plain folder of real noisy photographs without ground truth (``name: folder``).

Each item is the whole noisy image, a float32 3×H×W tensor in [0, 1]; ``has_gt`` is False so the
evaluator reports rate only. Grey, RGBA, palette and 16-bit files are converted to 8-bit RGB.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ..errors import DataError
from ..registry import register_dataset
from .common import ImageDataset, scan_images
from .io import read_image, to_tensor


@register_dataset("folder")
class FolderDataset(ImageDataset):
    """Noisy images of ``root`` in sorted order, whole, no noise added."""

    has_gt = False

    def __init__(self, dataset_opt: Mapping[str, Any], phase: str):
        super().__init__(dataset_opt, phase)
        root = self.root()
        if not root.is_dir():
            raise DataError(f"{self.key('root')}: image folder {root} does not exist")
        self.paths, self.sizes = scan_images(root, self.key("root"), max_images=self.get_int("max_images"))
        self.names = [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_tensor(read_image(self.paths[index]))
