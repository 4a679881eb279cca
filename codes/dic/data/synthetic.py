"""Clean photographs with synthetic read + shot noise (Flicker 2W training, Kodak / CLIC testing).

- ``synthetic`` in ``train`` mode: a random ``patch_size`` crop (flipped, rotated and
  recoloured at random when ``use_hflip`` / ``use_rot`` / ``channel_shuffle`` / ``channel_gain``
  say so) and fresh noise parameters from the training distribution (the papers', or the
  ``noise_log10_*`` ranges; or the fixed ``level``), all drawn from torch's global RNG. The
  training loader asks for items through :class:`dic.data.samplers.SeededItems`, which seeds
  that RNG per item from (run seed, epoch, position): an item is the same for any number of
  workers or processes and after a resume.
- ``synthetic`` in ``val`` mode: the centre ``patch_size`` crop, level ``i % 4 + 1`` for image
  ``i`` (or the fixed ``level``), noise from a generator seeded with ``i``.
- ``synthetic-test`` (in any mode) and ``synthetic`` in ``test`` mode: the whole image at ``level``
  1–4 with a generator seeded with 0 for every image.

Items are ``(gt, noisy)`` float32 3×H×W tensors in [0, 1]; validation and test noise is the same on
every run and for any number of workers. A training set with ``noise_on_device`` gives
``(gt, spec)`` instead: the clean crop and its noise specification (:data:`NOISE_SPEC_KEYS`, drawn
from the same item seed), which the training step turns into noise on its device
(:func:`dic.data.noise.add_noise_seeded`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..errors import ArgumentError, DataError
from .registry import register_dataset
from .common import (
    ImageDataset,
    PathLike,
    augment,
    center_crop_position,
    check_channel_gain,
    check_count,
    crop,
    find_image_folder,
    random_crop_position,
    scan_images,
    seeded_generator,
)
from .io import read_image, to_tensor
from .noise import (LEVELS, TRAIN_LOG10_READ, TRAIN_LOG10_SHOT, add_noise, check_log10_range, level_params,
                    sample_noise_params)

#: What a ``noise_on_device`` training item carries instead of the noisy image.
NOISE_SPEC_KEYS = ("sigma_read", "sigma_shot", "seed", "legacy_gamma")


@register_dataset("synthetic")
class SyntheticDataset(ImageDataset):
    """A folder of clean images; noise is synthesised per item (see the module docstring).

    Args:
        root: the image folder, or a folder holding it as ``<root>/<mode>`` (the official layout).
        mode: ``train``, ``val`` or ``test``.
        patch_size: side of the training and validation crops; images smaller than it are an
            error, or skipped with a warning when ``skip_small``.
        level: fixed noise level 1–4; None: the training distribution (train), level
            ``i % 4 + 1`` for image ``i`` (val). A test set needs one.
        legacy_gamma: synthesise noise with the official releases' sRGB curves.
        max_images: use only the first this many images (None: all).
        noise_on_device: training only: items are ``(gt, spec)``, the noise synthesised later on
            the training device from ``spec`` (see the module docstring).
        noise_log10_read, noise_log10_shot: training only: the ``[low, high]`` ranges of log10
            σ_read and log10 σ_shot, drawn uniformly (default: the papers' distribution).
        use_hflip, use_rot, channel_shuffle, channel_gain: training only: random mirror, quarter
            turns, colour-channel order and per-channel gains (up to ``exp(±channel_gain)``) of
            each crop (:func:`dic.data.common.augment`; the papers use none of them).
    """

    has_gt = True
    forced_mode: Optional[str] = None

    def __init__(
        self,
        root: PathLike,
        mode: str,
        patch_size: int = 256,
        level: Optional[int] = None,
        legacy_gamma: bool = False,
        skip_small: bool = False,
        max_images: Optional[int] = None,
        noise_on_device: bool = False,
        noise_log10_read: Sequence[float] = TRAIN_LOG10_READ,
        noise_log10_shot: Sequence[float] = TRAIN_LOG10_SHOT,
        use_hflip: bool = False,
        use_rot: bool = False,
        channel_shuffle: bool = False,
        channel_gain: float = 0.0,
    ):
        super().__init__(root, mode)
        subfolder, self.mode = self.mode, self.forced_mode or self.mode
        if noise_on_device and self.mode != "train":
            raise ArgumentError("only a training set synthesises its noise on the training device",
                                argument="noise_on_device")
        self.noise_on_device = bool(noise_on_device)
        self.augmentation = {"hflip": bool(use_hflip), "rot": bool(use_rot), "channel_shuffle": bool(channel_shuffle),
                             "channel_gain": check_channel_gain(channel_gain)}
        self.noise_log10_read = check_log10_range(noise_log10_read, "noise_log10_read")
        self.noise_log10_shot = check_log10_range(noise_log10_shot, "noise_log10_shot")
        self.patch_size = check_count("patch_size", patch_size)
        self.level = self._check_level(level)
        self.legacy_gamma = bool(legacy_gamma)
        folder = find_image_folder(self.root, subfolder)
        min_size = None if self.mode == "test" else self.patch_size
        max_images = check_count("max_images", max_images, optional=True)
        self.paths: List[Path]
        self.paths, self.sizes = scan_images(folder, min_size, skip_small, max_images)
        self.names = [p.stem for p in self.paths]

    def _check_level(self, level: Optional[int]) -> Optional[int]:
        if isinstance(level, (list, tuple)):
            raise ArgumentError(f"one data set takes one noise level, got {list(level)}; "
                                "make one data set per level", argument="level")
        if level is None:
            if self.mode == "test":
                raise ArgumentError("a synthetic test set needs a noise level 1–4", argument="level")
            return None
        level_params(level)
        return level

    def __len__(self) -> int:
        return len(self.paths)

    def noise_params(self, index: int) -> Tuple[Tuple[float, float], Optional[torch.Generator]]:
        """((σ_read, σ_shot), generator) for item ``index`` in this data set's mode."""
        if self.mode == "train":
            params = (LEVELS[self.level] if self.level else
                      sample_noise_params(log10_read=self.noise_log10_read, log10_shot=self.noise_log10_shot))
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
        if self.mode == "val":
            return to_tensor(crop(image, *center_crop_position(h, w, size), size))
        return to_tensor(augment(crop(image, *random_crop_position(h, w, size), size), **self.augmentation))

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Union[torch.Tensor, Dict[str, torch.Tensor]]]:
        gt = self._clean_patch(index)
        (sigma_read, sigma_shot), generator = self.noise_params(index)
        if self.noise_on_device:  # the crop and σs as in the loader's path; the noise's seed next
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            return gt, {"sigma_read": torch.tensor(sigma_read, dtype=torch.float64),
                        "sigma_shot": torch.tensor(sigma_shot, dtype=torch.float64),
                        "seed": torch.tensor(seed, dtype=torch.int64),
                        "legacy_gamma": torch.tensor(self.legacy_gamma)}
        noisy = add_noise(gt, sigma_read, sigma_shot, generator, self.legacy_gamma)
        return gt, noisy


@register_dataset("synthetic-test")
class SyntheticTestDataset(SyntheticDataset):
    """Whole clean images at one fixed ``level``, seed 0 per image, in any mode (Kodak, CLIC);
    ``mode`` only picks the ``<root>/<mode>`` subfolder of the official layout."""

    forced_mode = "test"
