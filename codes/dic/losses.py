"""Training criteria: distortion and feature losses by registry name, and the rate–distortion
criterion of both official releases (``bpp + λ·D + λ_fea·guidance``).

Registered losses (``dic list losses``), each an ``nn.Module`` called as ``loss(prediction, target)``:
``mse`` (mean squared error), ``ms-ssim`` (``1 − MS-SSIM``, data range 1), ``l1``, ``l2`` (= mse,
the official name for the feature loss).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_msssim import ms_ssim

from .errors import ArgumentError
from .metrics import bpp_from_likelihoods, pad_for_msssim
from .registry import Registry

LOSSES = Registry("loss")
register_loss = LOSSES.register

#: λ by quality level 1–6 for each distortion metric (CompressAI's standard table, docs/models.md).
LAMBDAS = {
    "mse": (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483),
    "ms-ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50),
}

#: How each distortion metric is scaled before λ: MSE on a 0–255 scale (λ·255²·MSE), MS-SSIM as is.
DISTORTION_SCALE = {"mse": 255.0**2, "ms-ssim": 1.0}


@register_loss("mse")
class MSELoss(nn.Module):
    """Mean squared error over every element."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction, target)


@register_loss("l2")
class L2Loss(MSELoss):
    """The official feature-loss name for the mean squared error."""


@register_loss("l1")
class L1Loss(nn.Module):
    """Mean absolute error over every element."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(prediction, target)


@register_loss("ms-ssim")
class MSSSIMLoss(nn.Module):
    """``1 − MS-SSIM`` of two B×3×H×W images in [0, 1], averaged over the batch.

    ``pytorch_msssim`` needs 161+ px a side for its five scales; smaller crops are
    replicate-padded first, as :func:`dic.metrics.ms_ssim` does, so the loss and the
    validation metric agree.
    """

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prediction, target = pad_for_msssim(prediction), pad_for_msssim(target)
        return 1.0 - ms_ssim(prediction, target, data_range=1.0, size_average=True)


def create_loss(name: str, argument: str = "name") -> nn.Module:
    """An instance of the loss registered as ``name``; an ArgumentError about ``argument`` (the
    caller's parameter that held the name) otherwise."""
    return LOSSES.get(name, argument=argument)()


def default_lambda(metric: str, quality: Optional[int]) -> float:
    """λ of the standard table for ``metric`` at ``quality`` (1–6)."""
    if metric not in LAMBDAS:
        raise ArgumentError(f"no standard λ table for {metric!r} (tables: {', '.join(LAMBDAS)}); give λ itself",
                            argument="metric")
    if isinstance(quality, bool) or quality not in range(1, 7):
        raise ArgumentError(f"the standard λ table needs a quality 1–6, got {quality!r}", argument="quality")
    return LAMBDAS[metric][quality - 1]


def _term_name(metric: str) -> str:
    """'mse' → 'mse_loss', 'ms-ssim' → 'ms_ssim_loss' (the official log names)."""
    return metric.replace("-", "_") + "_loss"


class RateDistortionLoss(nn.Module):
    """``loss = bpp + α·λ·D(x̂, gt) + α_fea·λ_fea·Σ ℓ(feature, clean feature)``.

    ``D`` is ``255²·MSE`` or ``1 − MS-SSIM``; the guidance sum runs over ``(y, y_gt)`` and
    ``(y_inter, y_inter_gt)``, whichever the model returned. The result holds every term raw
    (``bpp_loss``, ``mse_loss`` / ``ms_ssim_loss``, ``fea_loss``) and weighted (``weighted_…``),
    ``loss`` (what is minimised) and ``rd_loss = bpp + α·λ·D`` (no guidance: what picks the
    best checkpoint). All terms are computed in float32 whatever the autocast state.

    Args:
        metric: the distortion loss ``D`` by registry name (``mse`` or ``ms-ssim``).
        lmbda: λ; :func:`default_lambda` gives the standard one for a quality level.
        feature_loss: the guidance loss ``ℓ`` by registry name (``l1``, ``l2``); None: no guidance.
        lambda_fea: λ_fea.
        alpha_metric, alpha_fea: extra factors α and α_fea on the distortion and guidance
            terms, our own (default 1: no effect). Not the papers': the releases' option files
            have keys of these names, but their criterion never reads them, so the paper
            files leave them out (docs/reproducing.md).
    """

    def __init__(
        self,
        metric: str,
        lmbda: float,
        feature_loss: Optional[str] = "l1",
        lambda_fea: float = 3.0,
        alpha_metric: float = 1.0,
        alpha_fea: float = 1.0,
    ):
        super().__init__()
        self.metric = metric
        self.distortion = create_loss(metric, "metric")
        self.scale = DISTORTION_SCALE.get(metric, 1.0)
        self.lmbda = float(lmbda)
        self.alpha_metric = float(alpha_metric)
        self.feature = create_loss(feature_loss, "feature_loss") if feature_loss is not None else None
        self.lambda_fea = float(lambda_fea)
        self.alpha_fea = float(alpha_fea)

    @property
    def uses_guidance(self) -> bool:
        """Whether the model must run its clean-image guidance branch (``forward(noisy, gt)``)."""
        return self.feature is not None

    def forward(self, out_net: Mapping[str, Any], gt: torch.Tensor) -> Dict[str, torch.Tensor]:
        gt = gt.float()
        b, _, h, w = gt.shape
        likelihoods = {k: v.float() for k, v in out_net["likelihoods"].items()}
        out: Dict[str, torch.Tensor] = {"bpp_loss": bpp_from_likelihoods(likelihoods, b * h * w)}
        name = _term_name(self.metric)
        out[name] = self.distortion(out_net["x_hat"].float(), gt)
        out["weighted_" + name] = self.alpha_metric * self.lmbda * self.scale * out[name]
        out["rd_loss"] = out["bpp_loss"] + out["weighted_" + name]
        out["loss"] = out["rd_loss"]
        if self.feature is not None:
            out["fea_loss"] = self.guidance(out_net)
            out["weighted_fea_loss"] = self.alpha_fea * self.lambda_fea * out["fea_loss"]
            out["loss"] = out["loss"] + out["weighted_fea_loss"]
        return out

    def guidance(self, out_net: Mapping[str, Any]) -> torch.Tensor:
        """Σ ℓ(noisy-path feature, clean-path feature) over the pairs the model returned."""
        pairs = [(k, k + "_gt") for k in ("y", "y_inter") if k in out_net and k + "_gt" in out_net]
        if not pairs:
            raise ArgumentError("set, but the model returned no clean-branch features (y_gt); was it called "
                                "with the clean image? Without a feature loss there is no guidance term",
                                argument="feature_loss")
        return sum(self.feature(out_net[a].float(), out_net[b].float()) for a, b in pairs)
