"""Data sets by YAML name, noise synthesis and image I/O.

``create_dataset(opt, phase)`` builds the data set registered as ``opt["name"]``:
``synthetic`` / ``synthetic-test`` (clean images + synthetic noise), ``sidd`` (real noise, from
tiles or blocks) and ``folder`` (noisy images without ground truth). Every data set has
``has_gt`` and ``image_name(index)``; items are ``(gt, noisy)`` float32 3×H×W tensors in [0, 1],
or ``noisy`` alone when ``has_gt`` is False.
"""
from __future__ import annotations

import copy
from typing import Any, List, Mapping, Tuple

from torch.utils.data import Dataset

from ..errors import OptionError
from ..registry import DATASETS
from . import folder, noise, sidd, synthetic  # noqa: F401  (register the data sets)
from .common import DATASET_DEFAULTS, phase_kind
from .io import list_images, read_image, write_image

__all__ = [
    "DATASET_DEFAULTS",
    "create_dataset",
    "expand_levels",
    "list_images",
    "phase_kind",
    "read_image",
    "write_image",
]


def create_dataset(dataset_opt: Mapping[str, Any], phase: str) -> Dataset:
    """Build the data set named by ``dataset_opt["name"]`` for ``phase`` (``train*``, ``val*``,
    anything else is a test set). Paths in ``dataset_opt`` are used as given."""
    name = dataset_opt.get("name")
    if not name:
        raise OptionError(f"datasets.{phase}.name: a data set name is required; one of {', '.join(DATASETS.names())}")
    cls = DATASETS.get(name, key=f"datasets.{phase}.name")
    return cls(dataset_opt, phase)


def expand_levels(dataset_opt: Mapping[str, Any]) -> List[Tuple[str, dict]]:
    """One ``(suffix, options)`` per noise level: a list ``level: [1, 2]`` gives
    ``[("_level1", {..., level: 1}), ("_level2", {..., level: 2})]``; a single or no level gives
    ``[("", options)]``. The evaluator reports each as its own data set."""
    level = dataset_opt.get("level")
    if not isinstance(level, (list, tuple)):
        return [("", dict(dataset_opt))]
    if not level:
        raise OptionError("level: an empty list of noise levels; give 1–4 or a list of them")
    out = []
    for lv in level:
        opt = copy.deepcopy(dict(dataset_opt))
        opt["level"] = lv
        out.append((f"_level{lv}", opt))
    return out
