"""Image quality and rate measures shared by training, evaluation and the codec."""
from __future__ import annotations

import math
from typing import Dict, Iterable

import torch
from pytorch_msssim import ms_ssim as _ms_ssim


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] image to the 256 levels an 8-bit PNG can hold."""
    return x.clamp(0, 1).mul(255).round().div(255)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB between two images of the same shape, averaged over nothing: one number."""
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ms_ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """MS-SSIM of two B×3×H×W images. Images under 161 px a side fall back to fewer scales'
    worth of padding by reflect-padding, since pytorch_msssim needs 160+ px."""
    a, b = pad_for_msssim(a.float()), pad_for_msssim(b.float())
    return _ms_ssim(a, b, data_range=data_range, size_average=True).item()


def pad_for_msssim(x: torch.Tensor, minimum: int = 161) -> torch.Tensor:
    """``x`` padded (replicate, bottom and right) to at least ``minimum`` pixels a side: MS-SSIM's
    five scales with an 11-pixel window need 161; smaller images keep their own pixels."""
    h, w = x.shape[-2:]
    ph, pw = max(0, minimum - h), max(0, minimum - w)
    if ph == 0 and pw == 0:
        return x
    return torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB: −10·log10(1 − MS-SSIM)."""
    return float("inf") if value >= 1 else -10 * math.log10(1 - value)


def bpp_from_likelihoods(likelihoods: Dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Estimated bits per pixel: −Σ log2 p over every latent, divided by B·H·W."""
    return sum(torch.log(l).sum() for l in likelihoods.values()) / (-math.log(2) * num_pixels)


def bpp_from_strings(strings: Iterable, num_pixels: int) -> float:
    """Real bits per pixel: total bytes of every string (nested lists allowed) × 8 / (H·W)."""
    return 8 * _num_bytes(strings) / num_pixels


def _num_bytes(strings) -> int:
    if isinstance(strings, (bytes, bytearray)):
        return len(strings)
    return sum(_num_bytes(s) for s in strings)
