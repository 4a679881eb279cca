"""What ``dic bench`` measures on: the model (random weights or a checkpoint) and the test image
(synthetic, or a real picture centre-cropped), with the noise of one test level."""
from __future__ import annotations

import argparse
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from ...data.io import read_image, to_tensor
from ...data.noise import add_noise, level_params
from ...errors import ArgumentError, DataError, OptionError
from ...models import apply_context_masks, create_model
from ...checkpoints import load_for_inference


def parse_size(text: str) -> Tuple[int, int]:
    """``'768x512'`` → (height 512, width 768)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise OptionError(f"--size: expected WIDTHxHEIGHT such as 768x512, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise OptionError(f"--size: expected positive sizes, got {text!r}")
    return h, w


def parse_hparams(items: Sequence[str]) -> Dict[str, Any]:
    """``["num_layers=1", "local_blocks=[1, 1]"]`` → ``{"num_layers": 1, "local_blocks": [1, 1]}``
    (values read as YAML)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--hparam: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise OptionError(f"--hparam {item!r}: the value is not valid YAML ({e})") from None
    return out


def build_model(args: argparse.Namespace) -> nn.Module:
    """The model to measure, in eval mode with its entropy-coder tables built, on the CPU.
    Random weights are seeded by ``--seed`` and stored with the context taps masked, as
    training leaves them."""
    if args.checkpoint:
        return load_for_inference(args.checkpoint, arch=args.model)
    torch.manual_seed(args.seed)
    hparams = parse_hparams(args.hparam)
    if args.N is not None:
        hparams["N"] = args.N
    try:
        model = create_model(args.model, args.quality, **hparams)
    except ArgumentError as e:  # name the command-line option that fed the refused argument
        raise OptionError(f"{_option_of(e.argument, args)}: {e.detail}") from None
    apply_context_masks(model)
    model.update(force=True)
    return model.eval()


def _option_of(argument: Optional[str], args: argparse.Namespace) -> str:
    """The option of ``dic bench`` that set the model argument ``argument``."""
    if argument in (None, "name"):
        return "--model"
    if argument == "quality" or (argument == "N" and args.N is not None):
        return f"--{argument}"
    return f"--hparam {argument}"


def synthetic_image(height: int, width: int, seed: int) -> torch.Tensor:
    """A clean 1×3×H×W test picture in [0, 1] with smooth regions, edges and texture, so that
    the SNR map (hence the transformer's key mask) varies as on a photograph."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(2 * math.pi * (f * xx + 0.7 * f * yy) + p)
                        for f, p in ((1.0, 0.0), (1.5, 1.0), (0.7, 2.0))])
    blobs = F.interpolate(torch.rand(1, 3, height // 32 + 1, width // 32 + 1, generator=g),
                          size=(height, width), mode="bicubic", align_corners=False)[0]
    texture = (torch.rand(3, height, width, generator=g) - 0.5) * (xx > 0.5).float() * 0.3
    edges = ((xx * 8).floor() % 2) * (yy < 0.3).float() * 0.3
    return (0.5 * base + 0.5 * blobs + texture + edges).clamp(0, 1).unsqueeze(0)


def load_image(path: str, height: int, width: int, seed: int) -> Tuple[torch.Tensor, str]:
    """The clean test image (1×3×H×W) and where it came from: the picture at ``path``
    centre-cropped to H×W, or a synthetic one when ``path`` is empty."""
    if not path:
        return synthetic_image(height, width, seed), "synthetic"
    image = to_tensor(read_image(path)).unsqueeze(0)
    h, w = image.shape[-2:]
    if h < height or w < width:
        raise DataError(f"--image {path}: {w}x{h} px is smaller than --size {width}x{height}")
    top, left = (h - height) // 2, (w - width) // 2
    return image[..., top : top + height, left : left + width].contiguous(), str(path)


def make_noisy(gt: torch.Tensor, level: int, seed: int) -> torch.Tensor:
    """``gt`` with the noise of test level ``level`` (1–4), drawn from ``seed + 1``."""
    try:
        sigma_read, sigma_shot = level_params(level)
    except ArgumentError as e:
        raise OptionError(f"--noise-level: {e.detail}") from None
    return add_noise(gt, sigma_read, sigma_shot, generator=torch.Generator().manual_seed(seed + 1))
