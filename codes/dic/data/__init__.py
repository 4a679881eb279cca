"""Data sets by registry name, noise synthesis and image I/O.

``create_dataset(name, root, mode, **kwargs)`` builds the data set registered as ``name``:
``synthetic`` / ``synthetic-test`` (clean images + synthetic noise), ``sidd`` (real noise, from
tiles or blocks) and ``folder`` (noisy images without ground truth), for ``mode`` ``train``,
``val`` or ``test``. Every data set has ``has_gt`` and ``image_name(index)``; items are
``(gt, noisy)`` float32 3×H×W tensors in [0, 1], or ``noisy`` alone when ``has_gt`` is False.
Data sets take plain arguments; :mod:`dic.config.build` makes them from option files.
"""
from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from .registry import DATASETS
from .common import MODES, PathLike
from .folder import FolderDataset  # importing each data set's module registers it
from .io import list_images, read_image, write_image
from .sidd import SIDDDataset
from .synthetic import SyntheticDataset, SyntheticTestDataset

__all__ = [
    "DATASETS",
    "MODES",
    "FolderDataset",
    "SIDDDataset",
    "SyntheticDataset",
    "SyntheticTestDataset",
    "create_dataset",
    "list_images",
    "read_image",
    "write_image",
]


def create_dataset(name: str, root: PathLike, mode: str, **kwargs: Any) -> Dataset:
    """The data set registered as ``name`` over ``root`` for ``mode`` (``train``, ``val`` or
    ``test``), with the keyword arguments of its class. An unknown name or a refused value is an
    :class:`~dic.errors.ArgumentError` naming the argument; unusable data a DataError."""
    return DATASETS.get(name)(root, mode, **kwargs)
