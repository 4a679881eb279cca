"""The networks: ``snr-decomp`` (ICME 2024), ``multiscale-decomp`` (ECCV 2022) and the
``cheng2020-anchor`` baseline (docs/architecture.md, docs/models.md).

Importing this package registers every model in :data:`MODELS`. Checkpoints,
official-checkpoint conversion and warm start live in :mod:`dic.checkpoints`."""
from . import cheng, multiscale, snr  # noqa: F401  (register the models)
from .base import PAD_MULTIPLE, apply_context_masks, crop_to_multiple, default_width, pad_to_multiple
from .factory import (HParam, complete_hparams, count_parameters, create_model, hparam_specs, model_hparams,
                      shape_only_model)
from .layers import snr_map
from .registry import MODELS, register_model

__all__ = [
    "MODELS", "register_model", "HParam",
    "PAD_MULTIPLE", "apply_context_masks", "complete_hparams", "count_parameters", "create_model",
    "crop_to_multiple", "default_width", "hparam_specs", "model_hparams", "pad_to_multiple", "shape_only_model", "snr_map",
]
