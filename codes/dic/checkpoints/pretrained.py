"""Warm start from CompressAI's Cheng2020-anchor weights (docs/models.md §2):
every weight the plain codec has is copied in, ``g_a.0..2`` into ``g_a_block1`` and ``g_a.3..6``
into ``g_a_block2`` for the joint models; the denoisers keep their initialisation."""
from __future__ import annotations

import os
import re
from typing import Any, Dict, Mapping, Union

import torch
import torch.nn as nn
from torch import Tensor

from ..errors import CheckpointError
from ..models.base import JointCodecBase
from .io import read_checkpoint_file
from .official import official_to_ours

METRICS = ("mse", "ms-ssim")
# Entropy-coder tables are rebuilt by update() after training; copying them would leave stale
# tables in place when update() is later called without force.
CODER_TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
# The context model's mask is the model's own (serial or checkerboard, docs/models.md §5): a
# checkerboard model warm-starts from the serial weights, masked its own way.
CONTEXT_MASK = "context_prediction.mask"
_G_A = re.compile(r"^g_a\.(\d+)\.(.+)$")


def load_pretrained(model: nn.Module, source: Union[str, os.PathLike, bool], metric: str = "mse") -> int:
    """Copy Cheng2020-anchor weights, or a training checkpoint of ``model``'s own kind (a λ ladder
    fine-tuned from one rate point), into ``model``; return how many tensors were copied.

    ``source``: a path to a CompressAI Cheng2020-anchor checkpoint (a state dict as CompressAI's
    zoo stores it, or a training checkpoint with a ``state_dict`` entry), or ``True`` /
    ``'compressai'`` for CompressAI's downloadable weights of ``model``'s quality and
    ``metric`` (needs internet). Missing files, failed downloads and weights of another width
    raise a CheckpointError."""
    if source is True or source == "compressai":
        state_dict = _download(model, metric)
        what = f"CompressAI's cheng2020-anchor (quality {model.hparams['quality']}, {metric})"
    else:
        obj = read_checkpoint_file(source)
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"pretrained checkpoint {source} is not a state dict")
        state_dict, what = obj, f"pretrained checkpoint {source}"
    return _copy_into(model, _to_model_names(model, state_dict), what)


def _download(model: nn.Module, metric: str) -> Mapping[str, Tensor]:
    quality = model.hparams.get("quality")
    if quality is None:
        raise CheckpointError("CompressAI's pretrained weights need the model's quality (1–6) to pick the file")
    if metric not in METRICS:
        raise CheckpointError(f"CompressAI has pretrained weights for metric mse or ms-ssim, not {metric!r}")
    from compressai.zoo import cheng2020_anchor  # loaded on demand: only this path downloads

    try:
        return cheng2020_anchor(quality, metric=metric, pretrained=True, progress=False).state_dict()
    except Exception as e:  # no network, proxy, corrupt download ...
        raise CheckpointError(
            f"could not fetch CompressAI's cheng2020-anchor weights (quality {quality}, {metric}): "
            f"{type(e).__name__}: {e}. Without internet, place the file in torch's hub cache or pass its "
            "path instead (docs/reproducing.md §1, warm start without internet)"
        ) from None


def _to_model_names(model: nn.Module, state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Cheng2020-anchor keys → ``model``'s keys: CompressAI's renames, then ``g_a`` split in two."""
    joint = isinstance(model, JointCodecBase)
    out: Dict[str, Any] = {}
    for key, value in state_dict.items():
        name = official_to_ours(key, "cheng2020-anchor")
        if name.rsplit(".", 1)[-1] in CODER_TABLES or name == CONTEXT_MASK:
            continue
        match = _G_A.match(name)
        if joint and match:
            index = int(match[1])
            name = f"g_a_block1.{index}.{match[2]}" if index < 3 else f"g_a_block2.{index - 3}.{match[2]}"
        out[name] = value
    return out


def _copy_into(model: nn.Module, weights: Mapping[str, Any], what: str) -> int:
    target = model.state_dict()
    unknown = [k for k in weights if k not in target]
    if unknown:
        raise CheckpointError(
            f"{what} is neither a Cheng2020-anchor checkpoint nor one of '{model.name}': keys {', '.join(unknown[:8])}"
            f"{' …' if len(unknown) > 8 else ''} have no place in '{model.name}'"
        )
    for key, value in weights.items():
        if not torch.is_tensor(value) or tuple(value.shape) != tuple(target[key].shape):
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise CheckpointError(
                f"{what}: '{key}' has shape {shape}, the model expects {tuple(target[key].shape)} "
                f"(model N={model.N}; CompressAI uses N=128 for quality 1–3 and 192 for 4–6)"
            )
    with torch.no_grad():
        for key, value in weights.items():
            target[key].copy_(value)
    return len(weights)
