"""Loss registry and the rate–distortion criterion: every term, raw and weighted, against
hand-computed values; λ from the quality table; alphas; guidance over the features present;
the criterion built from an option file's ``network`` section."""
import inspect
import math

import pytest
import torch

from dic.config.build import CRITERION_KEYS, build_criterion
from dic.config.schema import NETWORK
from dic.errors import ArgumentError, OptionError
from dic.losses import LAMBDAS, RateDistortionLoss, create_loss, default_lambda
from dic.metrics import ms_ssim
from dic.losses import LOSSES


def network(metric="mse", fea="l1", lam=None, lam_fea=3.0, quality=3, alphas=(1.0, 1.0)):
    return {"model": "cheng2020-anchor", "quality": quality,
            "criterions": {"criterion_metric": metric, "criterion_fea": fea},
            "lambdas": {"lambda_metric": lam, "lambda_fea": lam_fea},
            "alphas": {"alpha_metric": alphas[0], "alpha_fea": alphas[1]}}


def criterion(**kwargs):
    """The criterion of an option file's ``network`` section."""
    return build_criterion(network(**kwargs), "x.yml")


def fake_output(gt, with_inter=True, with_gt_features=True):
    g = torch.Generator().manual_seed(0)
    out = {
        "x_hat": (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1),
        "likelihoods": {"y": torch.rand(2, 4, 2, 2, generator=g) * 0.9 + 0.05,
                        "z": torch.rand(2, 4, 1, 1, generator=g) * 0.9 + 0.05},
        "y": torch.randn(2, 4, 2, 2, generator=g),
    }
    if with_gt_features:
        out["y_gt"] = torch.randn(2, 4, 2, 2, generator=g)
    if with_inter:
        out["y_inter"] = torch.randn(2, 4, 8, 8, generator=g)
        if with_gt_features:
            out["y_inter_gt"] = torch.randn(2, 4, 8, 8, generator=g)
    return out


@pytest.fixture
def gt():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_registry_names_and_values(gt):
    assert {"mse", "ms-ssim", "l1", "l2"} <= set(LOSSES.names())
    x = gt.flip(-1)
    assert create_loss("mse")(x, gt).item() == pytest.approx(((x - gt) ** 2).mean().item())
    assert create_loss("l2")(x, gt).item() == pytest.approx(((x - gt) ** 2).mean().item())
    assert create_loss("l1")(x, gt).item() == pytest.approx((x - gt).abs().mean().item())
    # MS-SSIM works on crops under 161 px and matches the validation metric
    assert create_loss("ms-ssim")(x, gt).item() == pytest.approx(1 - ms_ssim(x, gt), abs=1e-5)
    assert create_loss("ms-ssim")(gt, gt).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ArgumentError, match="^name: unknown loss 'l11' .*did you mean 'l1'"):
        create_loss("l11")
    with pytest.raises(ArgumentError, match="^feature_loss: unknown loss 'l11' .*did you mean 'l1'"):
        RateDistortionLoss("mse", 0.1, feature_loss="l11")
    with pytest.raises(OptionError, match=r"^x\.yml: network\.criterions\.criterion_fea: unknown loss 'l11' .*did you mean 'l1'"):
        criterion(fea="l11")


def test_mse_terms_raw_and_weighted(gt):
    out = fake_output(gt)
    terms = RateDistortionLoss("mse", 0.0067, feature_loss="l1", lambda_fea=3.0)(out, gt)
    assert criterion(metric="mse", quality=3)(out, gt) == terms  # the option file's q3 λ is the table's
    pixels = 2 * 32 * 32
    bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / pixels
    mse = ((out["x_hat"] - gt) ** 2).mean()
    fea = (out["y"] - out["y_gt"]).abs().mean() + (out["y_inter"] - out["y_inter_gt"]).abs().mean()
    assert terms["bpp_loss"].item() == pytest.approx(bpp.item(), rel=1e-5)
    assert terms["mse_loss"].item() == pytest.approx(mse.item(), rel=1e-5)
    assert terms["weighted_mse_loss"].item() == pytest.approx(0.0067 * 255**2 * mse.item(), rel=1e-5)
    assert terms["fea_loss"].item() == pytest.approx(fea.item(), rel=1e-5)
    assert terms["weighted_fea_loss"].item() == pytest.approx(3.0 * fea.item(), rel=1e-5)
    assert terms["rd_loss"].item() == pytest.approx((bpp + 0.0067 * 255**2 * mse).item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx((bpp + 0.0067 * 255**2 * mse + 3 * fea).item(), rel=1e-5)


def test_ms_ssim_lambda_table_and_alphas(gt):
    out = fake_output(gt)
    terms = criterion(metric="ms-ssim", quality=5, alphas=(2.0, 0.5))(out, gt)
    d = 1 - ms_ssim(out["x_hat"], gt)
    assert terms["ms_ssim_loss"].item() == pytest.approx(d, abs=1e-5)
    assert terms["weighted_ms_ssim_loss"].item() == pytest.approx(2.0 * 31.73 * d, rel=1e-4)
    assert terms["weighted_fea_loss"].item() == pytest.approx(0.5 * 3.0 * terms["fea_loss"].item(), rel=1e-6)
    assert terms["rd_loss"].item() == pytest.approx(terms["bpp_loss"].item() + terms["weighted_ms_ssim_loss"].item(), rel=1e-6)
    for metric, table in LAMBDAS.items():  # the whole table, and an explicit λ wins over it
        assert [criterion(metric=metric, quality=q).lmbda for q in range(1, 7)] == list(table)
        assert [default_lambda(metric, q) for q in range(1, 7)] == list(table)
    assert criterion(metric="mse", lam=0.5).lmbda == 0.5


def test_guidance_variants(gt):
    # cheng2020-anchor returns y / y_gt only; criterion_fea: null trains without guidance
    out = fake_output(gt, with_inter=False)
    terms = RateDistortionLoss("mse", 0.1, feature_loss="l2")(out, gt)
    assert terms["fea_loss"].item() == pytest.approx(((out["y"] - out["y_gt"]) ** 2).mean().item(), rel=1e-5)
    plain = RateDistortionLoss("mse", 0.1, feature_loss=None)
    assert not plain.uses_guidance and not criterion(fea=None).uses_guidance
    terms = plain(fake_output(gt, with_gt_features=False), gt)
    assert "fea_loss" not in terms and torch.equal(terms["loss"], terms["rd_loss"])
    with pytest.raises(ArgumentError, match="^feature_loss: set, but the model returned no clean-branch"):
        RateDistortionLoss("mse", 0.1)(fake_output(gt, with_gt_features=False), gt)


def test_lambda_needs_quality_or_value():
    with pytest.raises(OptionError, match=r"^x\.yml: network\.lambdas\.lambda_metric: null .* needs network\.quality"):
        criterion(quality=None)
    with pytest.raises(OptionError, match=r"^x\.yml: network\.criterions\.criterion_metric: no standard λ table "
                                          r"for 'l1' .*set network\.lambdas\.lambda_metric"):
        criterion(metric="l1")
    assert criterion(metric="l1", lam=0.2).lmbda == 0.2
    with pytest.raises(ArgumentError, match="^quality: the standard λ table needs a quality 1–6, got None"):
        default_lambda("mse", None)
    with pytest.raises(ArgumentError, match="^metric: no standard λ table for 'l1'"):
        default_lambda("l1", 3)


def test_bad_metric_names_argument_or_key():
    with pytest.raises(ArgumentError, match=r"^metric: unknown loss 'msssim' \(did you mean 'ms-ssim'\?\)"):
        RateDistortionLoss("msssim", 1.0)
    with pytest.raises(OptionError, match=r"^x\.yml: network\.criterions\.criterion_metric: unknown loss 'msssim'"):
        criterion(metric="msssim", lam=1.0)


def test_constructor_defaults_are_the_schema_defaults():
    """Every criterion argument with a default defaults to its option key's schema default."""
    schema = {**NETWORK["criterions"], **NETWORK["lambdas"], **NETWORK["alphas"]}
    params = [p for p in inspect.signature(RateDistortionLoss).parameters.values() if p.default is not p.empty]
    assert [p.name for p in params] == ["feature_loss", "lambda_fea", "alpha_metric", "alpha_fea"]
    for p in params:
        assert p.default == schema[CRITERION_KEYS[p.name].rsplit(".", 1)[1]].default, p.name


def test_terms_are_float32_under_half_inputs(gt):
    out = fake_output(gt)
    out = {**out, "x_hat": out["x_hat"].half(), "likelihoods": {k: v.half() for k, v in out["likelihoods"].items()}}
    terms = criterion()(out, gt)
    assert all(v.dtype == torch.float32 and math.isfinite(v.item()) for v in terms.values())
