"""Validation during training (rank 0): every loss term, bpp estimated from the likelihoods, PSNR
on 8-bit images and MS-SSIM, averaged over the validation set; the first images saved as noisy /
decoded / clean PNGs and shown in TensorBoard. Also the one-line summary of loss terms that the
training log uses (docs/options.md: ``logger``, ``train.<mode>.val_freq``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ...data.io import write_image
from ...losses import RateDistortionLoss
from ...metrics import ms_ssim, psnr, quantize_8bit
from .step import autocast


@torch.no_grad()
def validate(model: nn.Module, criterion: RateDistortionLoss, loader: DataLoader, device: torch.device, *,
             amp_dtype: Optional[torch.dtype] = None, out_dir: Optional[Path] = None, num_images: int = 0,
             tb: Any = None, counter: int = 0) -> Tuple[Dict[str, float], int]:
    """The metrics averaged over ``loader``'s images, and their number. The first ``num_images``
    are written to ``out_dir`` as ``<name>_{noisy,decoded,clean}.png`` and, with a TensorBoard
    writer ``tb``, shown side by side at ``counter``. The model is left in training mode."""
    sums: Dict[str, float] = {}
    count = 0
    model.eval()
    for gt, noisy in loader:
        gt, noisy = gt.to(device), noisy.to(device)
        with autocast(device, amp_dtype):
            out = model(noisy, gt if criterion.uses_guidance else None)
        terms = {k: float(v) for k, v in criterion(out, gt).items()}
        terms["aux_loss"] = float(model.aux_loss())
        x_hat = quantize_8bit(out["x_hat"].float())
        for j in range(gt.shape[0]):
            image = {"psnr": psnr(x_hat[j], gt[j]), "ms_ssim": ms_ssim(x_hat[j:j + 1], gt[j:j + 1]), **terms}
            for k, v in image.items():
                sums[k] = sums.get(k, 0.0) + v
            if count < num_images:
                trio = {"noisy": noisy[j], "decoded": x_hat[j], "clean": gt[j]}
                show_sample(loader.dataset.image_name(count), trio, out_dir, tb, counter)
            count += 1
    model.train()
    metrics = {k: v / count for k, v in sums.items()}
    metrics["bpp"] = metrics["bpp_loss"]
    return metrics, count


def show_sample(name: str, trio: Mapping[str, torch.Tensor], out_dir: Optional[Path], tb: Any, counter: int) -> None:
    """Write one validation image's noisy / decoded / clean versions, and show them side by side."""
    if out_dir is not None:
        for kind, image in trio.items():
            write_image(Path(out_dir) / f"{name}_{kind}.png", image.float().cpu())
    if tb is not None:
        tb.add_image(f"val_samples/{name}", torch.cat(list(trio.values()), dim=-1).float().clamp(0, 1).cpu(), counter)


def log_validation(metrics: Mapping[str, float], count: int, label: str, counter: int,
                   logger: logging.Logger, tb: Any = None) -> None:
    """``validation <label> N image(s): psnr ... | ms-ssim ... | loss ...`` and the ``val/`` scalars."""
    logger.info(f"validation <{label}> {count} image(s): psnr {metrics['psnr']:.3f} dB | ms-ssim "
                f"{metrics['ms_ssim']:.4f} | " + format_terms(metrics))
    if tb is not None:
        for k, v in metrics.items():
            tb.add_scalar(f"val/{k}", v, counter)


def format_terms(terms: Mapping[str, float]) -> str:
    """``loss 1.2345 | rd 1.1 | bpp 0.45 | mse 0.0012 (×λ 0.52) | fea 0.03 (×λ 0.09) | aux 12.3``."""
    parts = [f"loss {terms['loss']:.4f}", f"rd {terms['rd_loss']:.4f}", f"bpp {terms['bpp_loss']:.4f}"]
    for key, value in terms.items():
        if key.endswith("_loss") and f"weighted_{key}" in terms:
            parts.append(f"{key[:-5]} {value:.5g} (×λ {terms['weighted_' + key]:.4f})")
    if "aux_loss" in terms:
        parts.append(f"aux {terms['aux_loss']:.4g}")
    return " | ".join(parts)
