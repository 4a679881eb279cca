"""The training-step timing of ``dic bench``: :class:`dic.apps.train.step.TrainStep`, the step
``dic train`` runs (forward with the guidance branch, rate–distortion loss, backward, gradient
clipping, both Adam steps, context masks re-applied), on a fixed synthetic batch.

Variants (:data:`TRAIN_VARIANTS`), each on its own copy of the weights with its own optimizers,
each the trainer's own switches (``train.*``, docs/options.md):

- ``ours``: the model as it is, float32;
- ``official-style``: :class:`.official.OfficialStyleSNRDecomp` (explicit attention, SNR map on
  the host; snr-decomp only), float32;
- ``bf16``: bf16 autocast, the entropy model in float32 (``train.amp: bf16``);
- ``channels-last``: the model and batch in ``torch.channels_last`` (see
  :data:`CHANNELS_LAST_CPU_SKIP`);
- ``compile``: the forward pass through ``torch.compile`` (inductor);
- ``fast``: all of them together with fused Adam and the sync-free loss cap.

All but the first two run on CUDA only (on the CPU autocast, channels_last's backward and
inductor's minutes of compilation are not what a GPU trainer meets).

The loss cap is off (``loss_cap=inf``): random weights give losses far above ``dic train``'s
default cap, and a capped step would skip the backward pass and the updates being timed."""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ...config.build import build_criterion
from ...models.base import JointCodecBase
from ..train.step import TrainStep, build_optimizers
from .arguments import TRAIN_VARIANTS
from .inputs import make_noisy, synthetic_image
from .official import OfficialStyleSNRDecomp, has_official_style
from .timing import summary, time_interleaved

#: Each variant's TrainStep switches (and ``fused`` Adam).
SWITCHES: Dict[str, Dict[str, Any]] = {
    "bf16": {"amp_dtype": torch.bfloat16},
    "channels-last": {"channels_last": True},
    "compile": {"compile": True},
    "fast": {"amp_dtype": torch.bfloat16, "channels_last": True, "compile": True, "fused": True,
             "sync_free_cap": True, "loss_cap_mode": "zero_grad"},
}
CUDA_ONLY = ("bf16", "channels-last", "compile", "fast")
LR, LR_AUX = 1e-5, 1e-4
TRAIN_NOISE_LEVEL = 3
#: The quality whose λ the criterion uses when the model has none (λ does not change the work).
DEFAULT_QUALITY = 6

# torch 2.14.1 on the CPU crashes (heap corruption) in the backward pass of a 1×1 stride-2
# convolution with 3 input channels in channels_last, the skip path of CompressAI's first
# ResidualBlockWithStride; so the channels_last step is measured on CUDA only.
CHANNELS_LAST_CPU_SKIP = ("skipped on the CPU: torch crashes in the backward pass of the first block's "
                          "1x1 stride-2 convolution (3 input channels) in channels_last")


def train_variants(model: nn.Module, device: torch.device, wanted: Optional[Sequence[str]] = None) -> List[str]:
    """The training variants (of ``wanted``, default all) that apply to ``model`` on ``device``."""
    names = [v for v in TRAIN_VARIANTS if (wanted is None or v in wanted)
             and (v != "official-style" or has_official_style(model))]
    return [v for v in names if v not in CUDA_ONLY or device.type == "cuda"]


def training_batch(batch: int, size: int, seed: int, device: torch.device,
                   memory_format: torch.memory_format = torch.contiguous_format) -> Tuple[torch.Tensor, torch.Tensor]:
    """(clean, noisy) batches of ``batch`` synthetic ``size``² pictures (noise level 3)."""
    gt = torch.cat([synthetic_image(size, size, seed + i) for i in range(batch)])
    noisy = make_noisy(gt, TRAIN_NOISE_LEVEL, seed)
    return (gt.to(device).contiguous(memory_format=memory_format),
            noisy.to(device).contiguous(memory_format=memory_format))


def criterion_for(model: nn.Module) -> nn.Module:
    """``dic train``'s criterion for ``model``: MSE with its quality's λ, plus the L1 feature
    guidance (λ_fea 3) for the joint networks, built from a minimal ``network`` section."""
    joint = isinstance(model, JointCodecBase)
    network = {
        "model": model.name, "quality": model.hparams.get("quality") or DEFAULT_QUALITY,
        "criterions": {"criterion_metric": "mse", "criterion_fea": "l1" if joint else None},
        "lambdas": {"lambda_metric": None, "lambda_fea": 3.0 if joint else 0.0},
    }
    return build_criterion(network, "dic bench")


def variant_model(model: nn.Module, name: str, copy_model: bool = True) -> nn.Module:
    """The model of training variant ``name`` in train mode: for ``ours`` and ``channels-last``
    ``model`` itself (a deep copy when ``copy_model``), for ``official-style`` a new
    :class:`OfficialStyleSNRDecomp` with ``model``'s weights."""
    if name not in TRAIN_VARIANTS:
        raise ValueError(f"unknown training variant {name!r}; expected one of {TRAIN_VARIANTS}")
    if name == "official-style":
        return OfficialStyleSNRDecomp.from_model(model).train()
    out = copy.deepcopy(model) if copy_model else model
    if SWITCHES.get(name, {}).get("channels_last"):
        out.to(memory_format=torch.channels_last)
    return out.train()


class VariantStep:
    """One training variant, ready to time: its model, optimizers, :class:`TrainStep` and the
    fixed batch; calling it runs one step. ``capped`` counts steps the trainer refused (a
    non-finite loss), which then did no backward pass."""

    def __init__(self, model: nn.Module, name: str, batch: int, size: int, seed: int,
                 device: torch.device, copy_model: bool = True):
        self.name = name
        self.model = variant_model(model, name, copy_model).to(device)
        switches = dict(SWITCHES.get(name, {}))
        optimizer, aux_optimizer = build_optimizers(self.model, LR, LR_AUX, fused=switches.pop("fused", False))
        self.step = TrainStep(self.model, criterion_for(self.model), optimizer, aux_optimizer,
                              device=device, loss_cap=math.inf, **switches)
        fmt = torch.channels_last if switches.get("channels_last") else torch.contiguous_format
        self.gt, self.noisy = training_batch(batch, size, seed, device, fmt)
        self.capped = 0

    def __call__(self) -> None:
        result = self.step(self.gt, self.noisy)
        if result.capped:  # (the sync-free variant's flag is not read: that would synchronise)
            self.capped += 1


def bench_train(model: nn.Module, batch: int, size: int, seed: int, repeats: int, warmup: int,
                device: torch.device, wanted: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Step times of every variant (of ``wanted``) that applies, interleaved round by round;
    ``model`` itself is left untouched. ``{"batch", "size", variant: {"step_s": summary}}``.
    Compiled variants compile in their first (warm-up) step; give ``warmup`` ≥ 1."""
    out: Dict[str, Any] = {"batch": batch, "size": size}
    if device.type == "cpu":
        for v in CUDA_ONLY:
            if wanted is None or v in wanted:
                out[v] = {"skipped": CHANNELS_LAST_CPU_SKIP if v == "channels-last" else "CUDA only"}
    if repeats > 0:
        steps: Dict[str, VariantStep] = {
            v: VariantStep(model, v, batch, size, seed, device) for v in train_variants(model, device, wanted)
        }
        times = time_interleaved(steps, repeats, warmup, device)
        for v, step in steps.items():
            out[v] = {"step_s": summary(times[v])}
            if step.capped:
                out[v]["capped_steps"] = step.capped
    return out
