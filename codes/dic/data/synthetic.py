"""Clean photographs with synthetic read + shot noise (Flicker 2W training, Kodak / CLIC testing).

- ``synthetic`` in a ``train*`` phase: a random ``patch_size`` crop and fresh noise parameters from
  the training distribution (or the fixed ``level`` if one is set), both drawn from torch's global
  RNG. DataLoader workers seed it from the global seed, so a run is reproducible given
  ``manual_seed``.
- ``synthetic`` in a ``val*`` phase: the centre ``patch_size`` crop, level ``i % 4 + 1`` for image
  ``i`` (or the fixed ``level``), noise from a generator seeded with ``i``.
- ``synthetic-test`` (and ``synthetic`` in any other phase): the whole image at ``level`` 1–4 with
  a generator seeded with 0 for every image.

Items are ``(gt, noisy)`` float32 3×H×W tensors in [0, 1]; validation and test noise is the same on
every run and for any number of workers.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import torch

from ..errors import DataError, OptionError
from ..registry import register_dataset
from .common import (
    ImageDataset,
    center_crop_position,
    crop,
    find_image_folder,
    random_crop_position,
    scan_images,
    seeded_generator,
)
from .io import read_image, to_tensor
from .noise import LEVELS, add_noise, level_params, sample_noise_params


@register_dataset("synthetic")
class SyntheticDataset(ImageDataset):
    """A folder of clean images; noise is synthesised per item (see the module docstring)."""

    has_gt = True
    forced_mode: Optional[str] = None

    def __init__(self, dataset_opt: Mapping[str, Any], phase: str):
        super().__init__(dataset_opt, phase)
        self.mode = self.forced_mode or self.kind
        self.legacy_gamma = self.get_bool("legacy_gamma")
        self.patch_size = self.get_int("patch_size")
        self.level = self._parse_level()
        folder = find_image_folder(self.root(), self.kind, self.key("root"))
        min_size = None if self.mode == "test" else self.patch_size
        self.paths, self.sizes = scan_images(
            folder, self.key("root"), min_size, self.get_bool("skip_small"), self.get_int("max_images")
        )
        self.names = [p.stem for p in self.paths]

    def _parse_level(self) -> Optional[int]:
        level = self.opt.get("level")
        if isinstance(level, (list, tuple)):
            raise OptionError(
                f"{self.key('level')}: one data set takes one level, got {list(level)}; "
                "dic.data.expand_levels splits a list into one data set per level"
            )
        if level is None:
            if self.mode == "test":
                raise OptionError(
                    f"{self.key('level')}: a synthetic test set needs a noise level 1–4 (or a list of them)"
                )
            return None
        level_params(level, self.key("level"))
        return level

    def __len__(self) -> int:
        return len(self.paths)

    def noise_params(self, index: int) -> Tuple[Tuple[float, float], Optional[torch.Generator]]:
        """((σ_read, σ_shot), generator) for item ``index`` in this data set's mode."""
        if self.mode == "train":
            params = LEVELS[self.level] if self.level else sample_noise_params()
            return params, None
        if self.mode == "val":
            return LEVELS[self.level or index % len(LEVELS) + 1], seeded_generator(index)
        return LEVELS[self.level], seeded_generator(0)

    def _clean_patch(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        image = read_image(path)
        h, w = image.shape[:2]
        if self.mode == "test":
            return to_tensor(image)
        size = self.patch_size
        if min(h, w) < size:
            raise DataError(f"image {path} decodes as {h}×{w} (H×W), smaller than patch_size {size}")
        place = random_crop_position if self.mode == "train" else center_crop_position
        return to_tensor(crop(image, *place(h, w, size), size))

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        gt = self._clean_patch(index)
        (sigma_read, sigma_shot), generator = self.noise_params(index)
        noisy = add_noise(gt, sigma_read, sigma_shot, generator, self.legacy_gamma)
        return gt, noisy


@register_dataset("synthetic-test")
class SyntheticTestDataset(SyntheticDataset):
    """Whole clean images at one fixed ``level``, seed 0 per image, in any phase (Kodak, CLIC)."""

    forced_mode = "test"
