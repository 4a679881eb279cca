"""``context: checkerboard`` (dic.models.checkerboard, docs/models.md §5): exact two-pass coding
for all three models and odd sizes, ``forward`` computing the coder's two-pass context, the
same symbols as CompressAI's own checkerboard codec, the .dic round trip with its checksums,
and the refusal of serial (official) weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from compressai.models import Cheng2020Anchor

from dic import codec
from dic.checkpoints import load_model, load_pretrained, save_checkpoint
from dic.checkpoints.io import load_state_dict_checked
from dic.checkpoints.official import model_from_official, to_official_state_dict
from dic.config.build import build_model
from dic.errors import CheckpointError, DicError, OptionError
from dic.models import create_model
from dic.models.checkerboard import (CheckerboardCoder, CompressAICheckerboardCoder, anchor_mask,
                                     checkerboard_entropy_parameters, join_strings, split_strings)
from dic.models.latent_codec import LatentCodec, guard_string

SNR = dict(N=16, num_layers=1, num_heads=2, head_dim=8, token_patch=4, local_blocks=[1, 1], nonlocal_blocks=1)
MODELS = {"cheng2020-anchor": dict(N=16), "multiscale-decomp": dict(N=16), "snr-decomp": SNR}


def _model(name: str = "snr-decomp", seed: int = 0, context: str = "checkerboard", **kwargs):
    """A tiny random model in eval mode with its coder tables, its latent scaled up so that
    symbols are not all zero."""
    torch.manual_seed(seed)
    model = create_model(name, context=context, **{**MODELS[name], **kwargs})
    with torch.no_grad():
        last = model.g_a[-1] if name == "cheng2020-anchor" else model.g_a_block2[-1]
        last.weight *= 8
    model.eval().update(force=True)
    return model


def _latents(model, h: int, w: int, seed: int = 1):
    """A latent the entropy model predicts well: scales moved to ≈1–4 and y drawn from the
    predicted Gaussians, the non-anchors given the rounded anchors, as the coder sees them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        last = model.entropy_parameters[-1]
        last.weight.mul_(0.1)
        last.bias[: model.M] = 2.0
    model.update(force=True)
    hyper = torch.randn(1, 2 * model.M, h, w, generator=g)
    anchors = anchor_mask(h, w)
    with torch.no_grad():  # the anchors' parameters do not depend on y
        _, scales, means = checkerboard_entropy_parameters(model, torch.zeros(1, model.M, h, w), hyper)
        y = torch.where(anchors, means + scales.clamp_min(0.11) * torch.randn(y_shape := means.shape, generator=g), 0.0)
        _, scales, means = checkerboard_entropy_parameters(model, y, hyper)  # non-anchors: from the anchors
        y = torch.where(anchors, y, means + scales.clamp_min(0.11) * torch.randn(y_shape, generator=g))
    return y, hyper


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("size", [(70, 90), (33, 129)])
def test_round_trip_is_exact_for_every_model(name, size):
    model = _model(name)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(2))
    out = model.compress(x)
    assert model.hparams["context"] == "checkerboard" and len(out["strings"][0]) == 1
    assert out["symbols"][0].abs().max() > 0  # not a trivial all-zero latent
    dec = model.decompress(out["strings"], out["shape"])
    assert torch.equal(dec["symbols"][0], out["symbols"][0]) and torch.equal(dec["symbols"][1], out["symbols"][1])
    assert dec["x_hat"].shape[-2:] == size
    # forward (eval) rounds as the coder does: the same picture up to float rounding
    with torch.no_grad():
        fwd = model(x)["x_hat"].clamp(0, 1)
    assert (fwd - dec["x_hat"]).abs().max() < 1e-4


@pytest.mark.parametrize("h, w", [(5, 7), (1, 1), (4, 6), (7, 3)])
def test_coder_is_exact_on_odd_latents(h, w):
    model = _model("cheng2020-anchor", seed=3)
    y, hyper = _latents(model, h, w)
    coder = CheckerboardCoder(model)
    string, y_hat, symbols = coder.compress(y[0], hyper[0])
    decoded, dec_symbols = CheckerboardCoder(model).decompress(guard_string(string, y[0].numel()), hyper[0])
    assert torch.equal(decoded, y_hat) and torch.equal(dec_symbols, symbols)
    assert (y_hat - y[0]).abs().max() <= 0.5 + 1e-5  # ŷ = round(y − μ) + μ
    # forward's eval path computes the coder's means and ŷ
    _, _, means = checkerboard_entropy_parameters(model, y, hyper)
    assert torch.equal(torch.round(y - means)[0].int(), symbols)
    assert (y_hat - (symbols + means[0])).abs().max() < 1e-5


def test_forward_likelihoods_give_the_coded_rate():
    model = _model("cheng2020-anchor", seed=4)
    y, hyper = _latents(model, 16, 24)
    string, _, symbols = CheckerboardCoder(model).compress(y[0], hyper[0])
    with torch.no_grad():
        _, scales, means = checkerboard_entropy_parameters(model, y, hyper)
        _, likelihoods = model.gaussian_conditional(y, scales, means=means)
    estimated = float(-torch.log2(likelihoods).sum()) / 8
    assert symbols.abs().max() >= 3 and len(string) > 1000
    assert abs(len(string) - estimated) / estimated < 0.02  # rANS costs what the likelihoods say


def test_anchors_see_no_context_and_non_anchors_only_anchors():
    model = _model("cheng2020-anchor", seed=5)
    y, hyper = _latents(model, 6, 8)
    anchors = anchor_mask(6, 8)

    def likelihoods(mod):
        with torch.no_grad():
            _, scales, means = checkerboard_entropy_parameters(mod, y, hyper)
            return mod.gaussian_conditional(y, scales, means=means)[1]

    before = likelihoods(model)
    with torch.no_grad():
        model.context_prediction.weight.add_(torch.randn_like(model.context_prediction.weight))
        model.context_prediction.bias.add_(1.0)
    after = likelihoods(model)
    assert torch.equal(before[..., anchors], after[..., anchors])  # zero context, bias included
    assert not torch.equal(before[..., ~anchors], after[..., ~anchors])
    # training (noise): changing y at the non-anchors moves no position's Gaussian parameters
    model.train()
    changed = torch.where(anchors, y, y + 3.0)
    params = []
    for latent in (y, changed):
        torch.manual_seed(0)
        with torch.no_grad():
            params.append(checkerboard_entropy_parameters(model, latent, hyper)[1:])
    assert all(torch.equal(a, b) for a, b in zip(*params))


def test_compressai_checkerboard_codec_codes_the_same_symbols():
    model = _model("cheng2020-anchor", seed=6)
    y, hyper = _latents(model, 6, 8)
    _, y_hat, symbols = CheckerboardCoder(model).compress(y[0], hyper[0])
    reference = CompressAICheckerboardCoder(model)
    string, ref_hat, ref_symbols = reference.compress(y[0], hyper[0])
    assert torch.equal(ref_symbols, symbols) and (ref_hat - y_hat).abs().max() < 1e-5
    assert torch.equal(reference.decompress(string, hyper[0])[1], symbols)
    # through the models' switch: CompressAI's path decodes to the same image
    model = _model("snr-decomp", seed=6)
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    ours = model.compress(x, exact=False)
    model.fast_coding = False
    theirs = model.compress(x, exact=False)
    assert torch.equal(theirs["symbols"][0], ours["symbols"][0])
    assert torch.equal(model.decompress(theirs["strings"], theirs["shape"], exact=False)["symbols"][0],
                       ours["symbols"][0])
    assert split_strings(join_strings([b"ab", b"", b"c"]) + bytes(9), 3) == [b"ab", b"", b"c"]


def test_dic_file_round_trip_and_checksum(tmp_path):
    model = _model("snr-decomp", seed=7)
    path = tmp_path / "cb.pth"
    save_checkpoint(path, model)
    loaded, fingerprint = codec.load_codec_model(path)
    assert loaded.context == "checkerboard"
    image = np.random.default_rng(0).integers(0, 256, (45, 77, 3), dtype=np.uint8)
    data = codec.encode_image(loaded, image, fingerprint=fingerprint, checkpoint=path)
    header = codec.read_header(data)
    assert header.hparams["context"] == "checkerboard"
    decoded = codec.decode_bytes(data, checkpoint=path)
    assert decoded.shape == image.shape
    # the y latent's checksum covers the checkerboard path: a serial model of the same
    # weights (other context, same shapes) is refused before anything is decoded
    serial = create_model("snr-decomp", **SNR)
    with pytest.raises(DicError, match="context"):
        codec.decode_bytes(data, serial, fingerprint=fingerprint)
    # damaged y strings decode to other symbols, which the y checksum rejects
    header, strings = codec.unpack(data)
    damaged = [[bytes(b ^ 0x5A for b in strings[0][0])], strings[1]]
    with pytest.raises(DicError, match="decoded y latent does not match"):
        codec.decode_strings(loaded, header, damaged)


def test_serial_and_official_weights_are_refused(tmp_path):
    serial = _model("snr-decomp", context="serial")
    official = to_official_state_dict(serial, prefix="module.")
    with pytest.raises(CheckpointError, match="serial context model and load only with context 'serial'"):
        model_from_official(official, "snr-decomp", context="checkerboard")
    path = tmp_path / "official.pth"
    torch.save(official, path)
    assert load_model(path, head_dim=8).context == "serial"  # still loads into the serial variant
    with pytest.raises(CheckpointError, match="official.pth: official checkpoints hold"):
        load_model(path, head_dim=8, context="checkerboard")
    checkerboard = _model("snr-decomp")
    with pytest.raises(CheckpointError, match=r"context 'checkerboard': its 'context_prediction.mask' is a serial"):
        load_state_dict_checked(checkerboard, serial.state_dict(), "checkpoint s.pth")
    with pytest.raises(CheckpointError, match=r"context 'serial': its 'context_prediction.mask' is a checkerboard"):
        load_state_dict_checked(serial, checkerboard.state_dict(), "checkpoint c.pth")
    with pytest.raises(CheckpointError, match="trained with another context model"):
        checkerboard.load_state_dict(serial.state_dict())  # even without the checked loader
    # a warm start copies Cheng2020-anchor's weights but keeps the checkerboard mask
    cheng = Cheng2020Anchor(N=16)
    torch.save(cheng.state_dict(), tmp_path / "cheng.pth")
    mask = checkerboard.context_prediction.mask.clone()
    load_pretrained(checkerboard, str(tmp_path / "cheng.pth"))
    assert torch.equal(checkerboard.context_prediction.mask, mask)
    assert torch.equal(checkerboard.entropy_parameters[0].weight, cheng.entropy_parameters[0].weight)


def test_context_option_and_training_step():
    network = {"model": "cheng2020-anchor", "N": 16, "context": "checkerboard"}
    model = build_model(network, "x.yml")
    assert model.context == "checkerboard" and model.hparams["context"] == "checkerboard"
    assert build_model({"model": "cheng2020-anchor", "N": 16}, "x.yml").hparams["context"] == "serial"
    with pytest.raises(OptionError, match=r"x.yml: network.context: expected one of serial, checkerboard, got 'raster'"):
        build_model({**network, "context": "raster"}, "x.yml")
    # it trains: the rate term back-propagates through both passes into the context model
    model.train()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    out = model(x)
    bits = sum(-torch.log2(l).sum() for l in out["likelihoods"].values())
    bits.backward()
    assert model.context_prediction.weight.grad.abs().sum() > 0


def test_latent_codec_picks_the_coder_by_context():
    model = _model("cheng2020-anchor", seed=8)
    y = torch.randn(2, model.M, 4, 8)  # z: 1×2
    strings, symbols = LatentCodec(model).compress(y)
    assert len(strings[0]) == 2
    y_hat, decoded = LatentCodec(model).decompress(strings, (1, 2))
    assert torch.equal(decoded[0], symbols[0]) and y_hat.shape == y.shape


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_encoding_decodes_on_the_cpu_to_the_same_symbols(name):
    """The analysis runs on CUDA, the two passes on the CPU on both sides: a CPU decoder reads
    the same symbols (what the .dic checksums verify)."""
    model = _model(name, seed=9)
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(3))
    out = model.to("cuda").compress(x.cuda())
    dec = model.cpu().decompress(out["strings"], out["shape"])
    assert torch.equal(dec["symbols"][0], out["symbols"][0]) and torch.equal(dec["symbols"][1], out["symbols"][1])
