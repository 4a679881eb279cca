"""The training-step timing of ``dic bench``: :class:`dic.apps.train.step.TrainStep`, the step
``dic train`` runs (forward with the guidance branch, rate–distortion loss, backward, gradient
clipping, both Adam steps, context masks re-applied), on a fixed synthetic batch.

Variants (:data:`TRAIN_VARIANTS`), each on its own copy of the weights with its own optimizers:

- ``ours``: the model as it is;
- ``official-style``: :class:`.official.OfficialStyleSNRDecomp` (explicit attention, SNR map on
  the host; snr-decomp only);
- ``channels-last``: the model and batch in ``torch.channels_last`` (CUDA only, see
  :data:`CHANNELS_LAST_CPU_SKIP`).

The loss cap is off (``loss_cap=inf``): random weights give losses far above ``dic train``'s
default cap, and a capped step would skip the backward pass and the updates being timed."""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Tuple

import torch
import torch.nn as nn

from ...config.build import build_criterion
from ...models.base import JointCodecBase
from ..train.step import TrainStep, build_optimizers
from .inputs import make_noisy, synthetic_image
from .official import OfficialStyleSNRDecomp, has_official_style
from .timing import summary, time_interleaved

TRAIN_VARIANTS = ("ours", "official-style", "channels-last")
LR, LR_AUX = 1e-5, 1e-4
TRAIN_NOISE_LEVEL = 3
#: The quality whose λ the criterion uses when the model has none (λ does not change the work).
DEFAULT_QUALITY = 6

# torch 2.14.1 on the CPU crashes (heap corruption) in the backward pass of a 1×1 stride-2
# convolution with 3 input channels in channels_last, the skip path of CompressAI's first
# ResidualBlockWithStride; so the channels_last step is measured on CUDA only.
CHANNELS_LAST_CPU_SKIP = ("skipped on the CPU: torch crashes in the backward pass of the first block's "
                          "1x1 stride-2 convolution (3 input channels) in channels_last")


def train_variants(model: nn.Module, device: torch.device) -> List[str]:
    """The training variants that apply to ``model`` on ``device``."""
    names = [v for v in TRAIN_VARIANTS if v != "official-style" or has_official_style(model)]
    return [v for v in names if v != "channels-last" or device.type == "cuda"]


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
    if name == "channels-last":
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
        optimizer, aux_optimizer = build_optimizers(self.model, LR, LR_AUX)
        self.step = TrainStep(self.model, criterion_for(self.model), optimizer, aux_optimizer,
                              device=device, loss_cap=math.inf)
        fmt = torch.channels_last if name == "channels-last" else torch.contiguous_format
        self.gt, self.noisy = training_batch(batch, size, seed, device, fmt)
        self.capped = 0

    def __call__(self) -> None:
        if self.step(self.gt, self.noisy).capped:
            self.capped += 1


def bench_train(model: nn.Module, batch: int, size: int, seed: int, repeats: int, warmup: int,
                device: torch.device) -> Dict[str, Any]:
    """Step times of every variant that applies, interleaved round by round; ``model`` itself
    is left untouched. ``{"batch", "size", variant: {"step_s": summary}}``."""
    out: Dict[str, Any] = {"batch": batch, "size": size}
    if device.type == "cpu":
        out["channels-last"] = {"skipped": CHANNELS_LAST_CPU_SKIP}
    if repeats > 0:
        steps: Dict[str, VariantStep] = {
            v: VariantStep(model, v, batch, size, seed, device) for v in train_variants(model, device)
        }
        times = time_interleaved(steps, repeats, warmup, device)
        for v, step in steps.items():
            out[v] = {"step_s": summary(times[v])}
            if step.capped:
                out[v]["capped_steps"] = step.capped
    return out
