"""Official checkpoints → ours (``dic convert`` and ``scripts/convert_official.py``).

The official releases were written with a CompressAI 1.1 fork, possibly under DataParallel.
Their keys differ from ours in three ways only (docs/models.md §3):

- a ``module.`` prefix (DataParallel), removed;
- the entropy bottleneck's ``_matrix{i}``, ``_bias{i}``, ``_factor{i}`` parameters, which
  CompressAI 1.2 names ``matrices.{i}``, ``biases.{i}``, ``factors.{i}``;
- snr-decomp only: the flat per-stage modules of :data:`SNR_MODULES`, which we group into one
  ``snr_block_{stage}`` module per stage (names inside them are the official ones).

``g_a_block{1,2}``, ``denoise_module_{1,2}`` and every Cheng2020-anchor module keep their names.
Which of the ICME 2024 release's two snr-decomp networks a file holds (the MSE tree's or the
MS-SSIM / SIDD trees', docs/models.md §3) is read from its shapes (:func:`infer_hparams`).
Training checkpoints (a dict with ``state_dict``, ``optimizer``, …) and evaluation checkpoints
(a bare state dict) are both accepted.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

import torch.nn as nn
from compressai.zoo.pretrained import rename_key
from torch import Tensor

from ..errors import ArgumentError, CheckpointError
from ..models.factory import create_model
from ..models.layers import BRANCH_WIDTHS, branch_channels
from .io import is_dic_checkpoint, load_state_dict_checked

ARCHS = ("snr-decomp", "multiscale-decomp", "cheng2020-anchor")
DEFAULT_HEAD_DIM = 64
# snr-decomp keys whose shapes tell the network apart: the first fusion's input width (the
# branch width) and the first query projection (heads·head width × token width)
_FUSION_IN = "snr_block_1.fusion.mlp_shared.0.weight"
_FIRST_QUERY = "snr_block_1.transformer.layer_stack.0.slf_attn.w_qs.weight"

# official module (first key component) → ours, for both stages of snr-decomp
SNR_MODULES: Dict[str, str] = {
    f"{official.format(s=s)}": f"snr_block_{s}.{ours}"
    for s in (1, 2)
    for official, ours in (
        ("local_feature_extraction_{s}", "local_branch"),
        ("local_feature_extraction_{s}_CC", "local_proj"),
        ("non_local_feature_extraction_{s}", "nonlocal_branch"),
        ("non_local_feature_extraction_{s}_CC", "nonlocal_proj"),
        ("transformer_enhance_{s}", "transformer"),
        ("feature_fusion_{s}", "fusion"),
    )
}
_SNR_MODULES_INV = {ours: official for official, ours in SNR_MODULES.items()}

# CompressAI 1.1 entropy-bottleneck parameter names ↔ 1.2 ParameterList names
_EB_OLD = re.compile(r"^entropy_bottleneck\._(matrix|bias|factor)(\d+)$")
_EB_NEW = re.compile(r"^entropy_bottleneck\.(matrices|biases|factors)\.(\d+)$")
_EB_LISTS = {"matrix": "matrices", "bias": "biases", "factor": "factors"}
_EB_SINGLE = {v: k for k, v in _EB_LISTS.items()}


def official_to_ours(key: str, arch: str) -> str:
    """Our state-dict name of official key ``key`` of an ``arch`` checkpoint. CompressAI's own
    renames of older files (``module.``, ``downsample`` → ``skip``, …) apply first."""
    key = rename_key(key)
    match = _EB_OLD.match(key)
    if match:
        return f"entropy_bottleneck.{_EB_LISTS[match[1]]}.{match[2]}"
    if arch == "snr-decomp":
        head, _, rest = key.partition(".")
        if head in SNR_MODULES:
            return f"{SNR_MODULES[head]}.{rest}"
    return key


def ours_to_official(key: str, arch: str) -> str:
    """Inverse of :func:`official_to_ours` (without a ``module.`` prefix): the official name of
    our state-dict key ``key``."""
    match = _EB_NEW.match(key)
    if match:
        return f"entropy_bottleneck._{_EB_SINGLE[match[1]]}{match[2]}"
    if arch == "snr-decomp" and key.startswith("snr_block_"):
        parts = key.split(".", 2)
        official = _SNR_MODULES_INV.get(".".join(parts[:2]))
        if official is not None and len(parts) == 3:
            return f"{official}.{parts[2]}"
    return key


def convert_state_dict(state_dict: Mapping[str, Tensor], arch: str) -> Tuple["OrderedDict[str, Tensor]", Dict[str, str]]:
    """Official state dict → ours. Also returns ours → official names, for error messages."""
    _check_arch(arch)
    converted: "OrderedDict[str, Tensor]" = OrderedDict()
    names: Dict[str, str] = {}
    for key, value in state_dict.items():
        ours = official_to_ours(key, arch)
        if ours in converted:
            raise CheckpointError(f"keys '{names[ours]}' and '{key}' both map to '{ours}'")
        converted[ours], names[ours] = value, key
    return converted, names


def to_official_state_dict(model: nn.Module, prefix: str = "") -> "OrderedDict[str, Tensor]":
    """``model``'s state dict under the official names (with ``prefix``, e.g. ``module.``)."""
    return OrderedDict((prefix + ours_to_official(k, model.name), v) for k, v in model.state_dict().items())


def split_official(obj: Any, source: str = "checkpoint") -> Tuple[Mapping[str, Tensor], Dict[str, Any]]:
    """(state dict, training info) of an official training checkpoint (dict with ``state_dict``,
    ``epoch``, ``iter``, …) or evaluation checkpoint (a bare state dict)."""
    if is_dic_checkpoint(obj):
        raise CheckpointError(f"{source} is already a dic checkpoint; nothing to convert")
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        info = {k: obj[k] for k in ("epoch", "iter") if isinstance(obj.get(k), int)}
        return obj["state_dict"], info
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj) and all(
        hasattr(v, "shape") for v in obj.values()
    ):
        return obj, {}
    raise CheckpointError(
        f"{source} is neither an official training checkpoint (a dict with 'state_dict') nor an "
        "evaluation checkpoint (a state dict of tensors)"
    )


def detect_arch(state_dict: Mapping[str, Any]) -> Optional[str]:
    """The architecture an official (or CompressAI) state dict belongs to, from its keys."""
    keys = [k[len("module."):] if k.startswith("module.") else k for k in state_dict]
    if any(k.startswith("transformer_enhance_1.") for k in keys):
        return "snr-decomp"
    if any(k.startswith("denoise_module_1.") for k in keys):
        return "multiscale-decomp"
    if "g_a.0.conv1.weight" in keys:
        return "cheng2020-anchor"
    return None


def infer_hparams(
    state_dict: Mapping[str, Tensor],
    arch: str,
    source: str = "checkpoint",
    head_dim: Optional[int] = None,
    num_heads: Optional[int] = None,
) -> Dict[str, Any]:
    """Hyper-parameters of a converted state dict, read from its shapes. For snr-decomp the
    branch width (which of the release's two networks, docs/models.md §3) is the fusion's input
    width; the attention width is stored only as heads × head width: ``head_dim`` (default 64)
    or ``num_heads`` splits it."""

    def shape(key: str) -> Tuple[int, ...]:
        if key not in state_dict:
            raise CheckpointError(f"{source} has no '{ours_to_official(key, arch)}': not a {arch} checkpoint")
        return tuple(state_dict[key].shape)

    if arch == "cheng2020-anchor":
        return {"N": shape("g_a.0.conv1.weight")[0]}
    hparams: Dict[str, Any] = {"N": shape("g_a_block1.0.conv1.weight")[0]}
    if arch != "snr-decomp":
        return hparams
    width, branch_width = _branch_width(shape(_FUSION_IN)[1], hparams["N"], source)
    inner, dim = shape(_FIRST_QUERY)
    patch = math.isqrt(dim // width)
    if patch * patch * width != dim:
        raise CheckpointError(f"{source}: token width {dim} of '{ours_to_official(_FIRST_QUERY, arch)}' is not "
                              f"d·patch² for the branch width d={width} (N={hparams['N']}, branch_width {branch_width})")
    hparams["num_layers"] = _count(state_dict, r"snr_block_1\.transformer\.layer_stack\.\d+\.slf_attn\.w_qs\.weight")
    hparams.update(_split_heads(inner, head_dim, num_heads, source))
    hparams.update(
        token_patch=patch,
        local_blocks=[_count(state_dict, rf"snr_block_{s}\.local_branch\.\d+\.conv1\.weight") for s in (1, 2)],
        nonlocal_blocks=_count(state_dict, r"snr_block_1\.nonlocal_branch\.\d+\.conv1\.weight"),
        branch_width=branch_width,
    )
    return hparams


def _branch_width(channels: int, N: int, source: str) -> Tuple[int, str]:
    """(channels, ``branch_width``) of an snr-decomp file whose first fusion takes ``channels``:
    N/2 in the MSE tree's network, N in the MS-SSIM and SIDD trees' network."""
    for value in BRANCH_WIDTHS:
        if branch_channels(N, value) == channels:
            return channels, value
    raise CheckpointError(f"{source}: '{ours_to_official(_FUSION_IN, 'snr-decomp')}' takes {channels} channels, "
                          f"neither N/2 nor N for N={N}")


def _split_heads(inner: int, head_dim: Optional[int], num_heads: Optional[int], source: str) -> Dict[str, int]:
    """``num_heads`` and ``head_dim`` of an attention ``inner`` wide: one of them given, or
    heads of 64."""
    if num_heads is None:
        head_dim = DEFAULT_HEAD_DIM if head_dim is None else head_dim
        num_heads = inner // head_dim
    else:
        head_dim = inner // num_heads
    if num_heads * head_dim != inner:
        raise CheckpointError(f"{source}: attention width {inner} is not heads × head width "
                              f"({num_heads} × {head_dim}); give the right head_dim or num_heads")
    return {"num_heads": num_heads, "head_dim": head_dim}


def _count(state_dict: Mapping[str, Any], pattern: str) -> int:
    """How many keys of ``state_dict`` match ``pattern`` in full."""
    return sum(1 for k in state_dict if re.fullmatch(pattern, k))


def model_from_official(
    obj: Any,
    arch: Optional[str] = None,
    *,
    source: str = "checkpoint",
    quality: Optional[int] = None,
    head_dim: Optional[int] = None,
    num_heads: Optional[int] = None,
    context: str = "serial",
) -> nn.Module:
    """Our model holding the weights of an official training or evaluation checkpoint ``obj``
    (already unpickled), loaded strictly; unknown or missing keys are listed in the error.
    The releases' models have the papers' serial context model: asking for another
    ``context`` (``checkerboard``) is a CheckpointError."""
    if context != "serial":
        raise CheckpointError(
            f"{source}: official checkpoints hold the papers' serial context model and load only with "
            f"context 'serial', not {context!r}; train a checkerboard model instead (it may warm-start from "
            "their weights)")
    state_dict, _ = split_official(obj, source)
    detected = detect_arch(state_dict)
    if arch is None:
        if detected is None:
            raise CheckpointError(f"cannot tell which architecture {source} is; pass --arch ({', '.join(ARCHS)})")
        arch = detected
    _check_arch(arch)
    converted, names = convert_state_dict(state_dict, arch)
    hparams = infer_hparams(converted, arch, source, head_dim, num_heads)
    try:
        model = create_model(arch, quality, **hparams)
    except ArgumentError as e:
        raise CheckpointError(f"{source}: its shapes give no valid {arch} model: {e}") from None
    load_state_dict_checked(model, converted, source, names)
    return model


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise CheckpointError(f"unknown architecture '{arch}'; expected one of {', '.join(ARCHS)}")
