"""The networks: ``snr-decomp`` (ICME 2024), ``multiscale-decomp`` (ECCV 2022) and the
``cheng2020-anchor`` baseline, plus checkpoints, official-checkpoint conversion and warm start.

Importing this package registers every model (the registry imports it lazily)."""
from . import cheng, multiscale, snr  # noqa: F401  (register the models)
from .base import PAD_MULTIPLE, crop_to_multiple, default_width, pad_to_multiple
from .checkpoint import load_checkpoint, load_model, save_checkpoint, weights_fingerprint
from .factory import count_parameters, create_model, model_hparams, shape_only_model
from .layers import snr_map
from .pretrained import load_pretrained

__all__ = [
    "PAD_MULTIPLE", "count_parameters", "create_model", "crop_to_multiple", "default_width",
    "load_checkpoint", "load_model", "load_pretrained", "model_hparams", "pad_to_multiple",
    "save_checkpoint", "shape_only_model", "snr_map", "weights_fingerprint",
]
