"""The test protocols (``test.protocol``): which pixels a coder gets and how its output is measured.

- ``pad`` (default): the whole image; the model pads it to a multiple of 64 and crops back.
- ``crop``: every image centre-cropped to multiples of 64 before coding.
- Under both, the noisy input and the ground truth are rounded to 8 bits (as photo files would
  be), PSNR is computed on the 8-bit rounded decoded image and MS-SSIM on it too (data range 1).
- ``official``: the measurement of the releases' test scripts, exactly (docs/reproducing.md):
  the centre crop of ``crop``, but the 5×5 blur ``snr-decomp`` needs is computed on the
  *uncropped* noisy image (``cv2.blur`` on 0–255 floats, border reflect-101) and then cropped;
  the noisy input stays float; the decoded and clean images go to 8 bits by ``mul(255).byte()``
  (truncation, what ``ToPILImage`` does) for PSNR and the saved images; MS-SSIM is computed on
  the float ``x_hat`` (data range 1).

Everywhere the rate is 8 × total bytes / (H × W) of the coded (cropped) image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

import cv2
import numpy as np
import torch

from ...data.io import to_uint8
from ...errors import DataError
from ...metrics import ms_ssim, ms_ssim_db, psnr, quantize_8bit
from ...models import crop_to_multiple

PROTOCOLS = ("pad", "crop", "official")
BLUR_SIZE = 5  # snr-decomp's mean filter (docs/models.md, SNR map)


@dataclass
class Sample:
    """One test image as the coders get it: 1×3×H×W tensors."""

    gt: Optional[torch.Tensor]  # None without ground truth
    noisy: torch.Tensor
    blur: Optional[torch.Tensor] = None  # the protocol's precomputed 5×5 blur of noisy (official)


def prepare_sample(item: Any, has_gt: bool, protocol: str, name: str) -> Sample:
    """The (gt, noisy) item of a data set prepared under ``protocol`` (module docstring)."""
    gt, noisy = (item if has_gt else (None, item))
    noisy = noisy.unsqueeze(0) if noisy.dim() == 3 else noisy
    gt = None if gt is None else (gt.unsqueeze(0) if gt.dim() == 3 else gt)
    if protocol == "official":
        return _crop(Sample(gt, noisy, release_blur(noisy)), name, protocol)
    sample = Sample(None if gt is None else quantize_8bit(gt), quantize_8bit(noisy))
    return _crop(sample, name, protocol) if protocol == "crop" else sample


def _crop(sample: Sample, name: str, protocol: str) -> Sample:
    try:
        return Sample(*(None if t is None else crop_to_multiple(t) for t in (sample.gt, sample.noisy, sample.blur)))
    except DataError as e:
        raise DataError(f"image {name}: {e} (test.protocol: {protocol})") from None


def release_blur(noisy: torch.Tensor, size: int = BLUR_SIZE) -> torch.Tensor:
    """The official test loader's blur of a 1×3×H×W noisy image: ``cv2.blur`` (reflect-101
    border) on the 0–255 float image, divided by 255."""
    hwc = np.ascontiguousarray(noisy[0].permute(1, 2, 0).float().numpy()) * 255.0
    blurred = cv2.blur(hwc, (size, size)) / 255.0
    return torch.from_numpy(np.ascontiguousarray(blurred.transpose(2, 0, 1))).unsqueeze(0)


def truncate_8bit(x: torch.Tensor) -> np.ndarray:
    """A 1×3×H×W / 3×H×W image in [0, 1] as H×W×3 uint8 by ``mul(255).byte()``: truncation, as
    torchvision's ``ToPILImage`` converts float tensors."""
    x = x[0] if x.dim() == 4 else x
    return x.detach().cpu().mul(255).byte().permute(1, 2, 0).numpy()


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (peak 255) of two uint8 arrays, computed in float64."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def to_8bit(x_hat: torch.Tensor, protocol: str) -> np.ndarray:
    """The decoded image as saved (PNG, SIDD submission): truncated under ``official``,
    rounded otherwise. H×W×3 uint8."""
    return truncate_8bit(x_hat) if protocol == "official" else to_uint8(x_hat)


def measure(x_hat: torch.Tensor, gt: Optional[torch.Tensor], protocol: str) -> Dict[str, Optional[float]]:
    """PSNR, MS-SSIM (data range 1) and MS-SSIM dB of a decoded image against the clean one."""
    if gt is None:
        return {"psnr": None, "ms_ssim": None, "ms_ssim_db": None}
    if protocol == "official":
        value = ms_ssim(x_hat, gt, data_range=1.0)
        return {"psnr": psnr_uint8(truncate_8bit(x_hat), truncate_8bit(gt)), "ms_ssim": value,
                "ms_ssim_db": ms_ssim_db(value)}
    x_hat = quantize_8bit(x_hat)
    value = ms_ssim(x_hat, gt, data_range=1.0)
    return {"psnr": psnr(x_hat, gt), "ms_ssim": value, "ms_ssim_db": ms_ssim_db(value)}
