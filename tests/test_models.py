"""Models: shapes, guidance features, SNR map, masked attention, real bitstreams, factory,
parameter counts, checkpoints and warm start. Tiny widths (N=16, one transformer layer)."""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from compressai.models import Cheng2020Anchor

from dic.errors import ArgumentError, BitstreamError, CheckpointError, DataError
from dic.metrics import bpp_from_likelihoods, bpp_from_strings, psnr
from dic.checkpoints import load_checkpoint, load_model, load_pretrained, save_checkpoint, weights_fingerprint
from dic.models import count_parameters, create_model, crop_to_multiple, model_hparams, pad_to_multiple, shape_only_model, snr_map
from dic.models.layers import (MultiHeadSelfAttention, SNRAwareBlock, from_tokens, masked_attention,
                               to_tokens, token_key_mask)

TINY = {
    "snr-decomp": dict(N=16, num_layers=1, num_heads=2, head_dim=8),
    "multiscale-decomp": dict(N=16),
    "cheng2020-anchor": dict(N=16),
}
MODELS = list(TINY)



def tiny(name, seed=0):
    torch.manual_seed(seed)
    return create_model(name, **TINY[name])


def rand_image(h, w, b=1, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ forward
@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_and_guidance_only_with_gt(name):
    model = tiny(name)
    noisy, gt = rand_image(64, 96, b=2), rand_image(64, 96, b=2, seed=1)  # 96: padded to 128
    out = model(noisy)
    assert out["x_hat"].shape == noisy.shape
    assert out["y"].shape == out["likelihoods"]["y"].shape == (2, 16, 4, 8)
    assert out["likelihoods"]["z"].shape == (2, 16, 1, 2)
    joint = name != "cheng2020-anchor"
    assert ("y_inter" in out) == joint
    assert not {"y_gt", "y_inter_gt"} & set(out)
    if joint:
        assert out["y_inter"].shape == (2, 16, 16, 32)

    with_gt = model(noisy, gt)
    assert with_gt["y_gt"].shape == out["y"].shape
    assert ("y_inter_gt" in with_gt) == joint
    # guidance features depend on the clean image only, not on the noisy one
    other = model(rand_image(64, 96, b=2, seed=7), gt)
    assert torch.equal(other["y_gt"], with_gt["y_gt"])
    assert not torch.allclose(other["y"], with_gt["y"])


@pytest.mark.parametrize("name", ["snr-decomp", "multiscale-decomp"])
def test_guidance_path_shares_encoder_and_skips_denoisers(name):
    model = tiny(name).eval()
    gt = rand_image(64, 64, seed=3)
    with torch.no_grad():
        out = model(gt, gt)
        stage1 = model.g_a_block1(gt)
    assert torch.allclose(out["y_inter_gt"], stage1)
    assert torch.allclose(out["y_gt"], model.g_a_block2(stage1))
    assert not torch.allclose(out["y_inter"], stage1, atol=1e-4)  # the denoiser did something


def test_hparams_recorded_and_json_serialisable():
    model = tiny("snr-decomp")
    assert model.name == "snr-decomp"
    assert model.hparams == {"quality": None, "N": 16, "num_layers": 1, "num_heads": 2, "head_dim": 8,
                             "token_patch": 4, "local_blocks": [2, 1], "nonlocal_blocks": 1,
                             "context": "serial", "branch_width": "half"}
    assert json.loads(json.dumps(model.hparams)) == model.hparams
    rebuilt = create_model("snr-decomp", **model.hparams)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_input_checks():
    model = tiny("cheng2020-anchor")
    with pytest.raises(DataError, match=r"B×3×H×W"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(DataError, match="gt"):
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 32))


# ------------------------------------------------------------------------------ SNR map
def reference_snr(image_hwc: np.ndarray) -> np.ndarray:
    """docs/models.md §3 with OpenCV's blur, one H×W×3 float64 image."""
    blurred = cv2.blur(image_hwc, (5, 5))
    grey = lambda v: 0.299 * v[..., 0] + 0.587 * v[..., 1] + 0.114 * v[..., 2]
    noise = np.abs(grey(image_hwc) - grey(blurred))
    snr = grey(blurred) / (noise + 1e-4)
    return np.clip(snr / (snr.max() + 1e-4), 0, 1)


def test_snr_map_matches_opencv_blur():
    images = rand_image(37, 53, b=2, seed=4).double()  # odd sizes exercise the reflected borders
    images[1] *= 0.5  # a different maximum per image
    ours = snr_map(images)
    assert ours.shape == (2, 1, 37, 53)
    for i in range(2):
        expected = reference_snr(images[i].permute(1, 2, 0).numpy())
        np.testing.assert_allclose(ours[i, 0].numpy(), expected, atol=1e-9, rtol=1e-7)
    assert float(ours.amax()) <= 1 and float(ours.amin()) >= 0


# ------------------------------------------------------------------------------ attention
def reference_attention(q, k, v, keep):
    """The official computation: logits of excluded keys set to −1e9, then softmax."""
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~keep[:, None, None, :], -1e9)
    return logits.softmax(-1) @ v, logits.softmax(-1)


def test_masked_attention_matches_explicit_softmax():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 10, 8, generator=g, dtype=torch.float64) for _ in range(3))
    keep = torch.rand(3, 10, generator=g) > 0.5
    keep[0] = True
    keep[1, 1:] = False  # a single key kept
    ours = masked_attention(q, k, v, keep)
    expected, weights = reference_attention(q, k, v, keep)
    torch.testing.assert_close(ours, expected)
    assert torch.all(weights[~keep[:, None, None, :].expand_as(weights)] == 0)
    torch.testing.assert_close(ours[1], v[1, :, :1].expand(2, 10, 8))  # only key 0 counts


def test_all_keys_masked_gives_uniform_weights():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 6, 4, generator=g) * 50 for _ in range(3))  # large logits
    keep = torch.zeros(2, 6, dtype=torch.bool)
    keep[1, 2] = True
    out = masked_attention(q, k, v, keep)
    torch.testing.assert_close(out[0], v[0].mean(dim=-2, keepdim=True).expand(2, 6, 4))
    torch.testing.assert_close(out[1], v[1, :, 2:3].expand(2, 6, 4))
    expected, _ = reference_attention(q.double() / 50, k.double() / 50, v.double(), keep)
    torch.testing.assert_close(masked_attention(q / 50, k / 50, v, keep), expected.float())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masked_attention_in_half_precision(dtype):
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 2, 10, 8, generator=g) * 3 for _ in range(3))
    keep = torch.rand(2, 10, generator=g) > 0.5
    keep[1] = False  # −1e9 does not fit float16: no overflow to NaN allowed
    qh, kh, vh = (t.to(dtype).requires_grad_() for t in (q, k, v))
    out = masked_attention(qh, kh, vh, keep)
    out.float().sum().backward()
    assert not any(torch.isnan(t).any() for t in (out, qh.grad, kh.grad, vh.grad))
    torch.testing.assert_close(out.float(), masked_attention(q, k, v, keep), atol=0.2, rtol=0.05)
    assert torch.all(vh.grad[0, :, ~keep[0]] == 0)  # excluded keys' values receive no weight


def test_masked_tokens_get_no_attention_weight():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(dim=12, num_heads=2, head_dim=4).eval()
    x = torch.randn(1, 9, 12)
    keep = torch.tensor([[True, False, True, True, False, False, True, True, True]])
    changed = x.clone()
    changed[0, ~keep[0]] += 3 * torch.randn(int((~keep).sum()), 12)
    a, b = attn(x, keep), attn(changed, keep)
    torch.testing.assert_close(a[0, keep[0]], b[0, keep[0]])  # kept queries see only kept keys
    assert not torch.allclose(a[0, ~keep[0]], b[0, ~keep[0]])  # masked tokens still query
    moved = x.clone()
    moved[0, 0] += 3 * torch.randn(12)  # a kept key does influence the others
    assert not torch.allclose(attn(moved, keep)[0, 2], a[0, 2])


def test_tokens_order_and_key_mask_from_patch_means():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(1, 2, 8, 8)
    tokens = to_tokens(x, 4)
    assert tokens.shape == (1, 4, 32)
    # token 1 = patch at rows 0–3, columns 4–7; channel-major, then the 16 positions
    assert tokens[0, 1, 16 + 5].item() == x[0, 1, 1, 5].item()
    assert torch.equal(from_tokens(tokens, (8, 8), 4), x)
    snr = torch.zeros(1, 1, 8, 8)
    snr[..., :4, :4] = 0.6
    snr[..., :4, 4:] = 0.5  # mean exactly 0.5: excluded
    snr[..., 4:, :4] = torch.tensor([1.0, 0.0]).repeat(8)[:16].view(4, 4) * 0.9  # mean 0.45
    snr[..., 4:, 4:] = torch.tensor([1.0, 0.2]).repeat(8).view(4, 4)  # mean 0.6
    assert token_key_mask(snr, 4).tolist() == [[True, False, False, True]]


def test_snr_block_mixes_local_where_snr_high_and_transformer_where_low():
    torch.manual_seed(0)
    block = SNRAwareBlock(8, local_blocks=1, num_layers=1, num_heads=2, head_dim=4).eval()
    f = torch.randn(1, 8, 8, 8)
    outputs = {}
    for level in (0.0, 1.0):
        snr = torch.full((1, 1, 32, 32), level)
        before = block(f, snr)
        with torch.no_grad():
            saved = [p.clone() for p in block.transformer.parameters()] + [p.clone() for p in block.local_branch.parameters()]
            for p in block.transformer.parameters():
                p.add_(torch.randn_like(p))
            changed_transformer = block(f, snr)
            for p, s in zip(block.transformer.parameters(), saved):
                p.copy_(s)
            for p in block.local_branch.parameters():
                p.add_(torch.randn_like(p))
            changed_local = block(f, snr)
            for p, s in zip(block.local_branch.parameters(), saved[len(list(block.transformer.parameters())):]):
                p.copy_(s)
        outputs[level] = (before, changed_transformer, changed_local)
    before, t, l = outputs[1.0]  # high SNR everywhere: local branch only
    assert torch.allclose(before, t) and not torch.allclose(before, l)
    before, t, l = outputs[0.0]  # low SNR everywhere: transformer branch only
    assert torch.allclose(before, l) and not torch.allclose(before, t)


# ------------------------------------------------------------------------------ bitstreams
def zero_means(model):
    """Make the context model predict zero means: eval-mode forward then rounds y exactly as the
    autoregressive coder does, so both reconstructions must agree to float rounding."""
    last = model.entropy_parameters[-1]
    with torch.no_grad():
        last.weight[model.N:] = 0
        last.bias[model.N:] = 0
    return model


@pytest.mark.parametrize("name,size", [("snr-decomp", (64, 64)), ("snr-decomp", (72, 100)),
                                       ("multiscale-decomp", (72, 100)), ("cheng2020-anchor", (50, 70))])
def test_round_trip_equals_forward_reconstruction(name, size):
    model = zero_means(tiny(name)).eval()
    model.update()
    noisy = rand_image(*size, seed=2)
    with torch.no_grad():
        expected = model(noisy)["x_hat"].clamp(0, 1)
    packed = model.compress(noisy)
    assert packed["shape"] == size
    assert all(isinstance(s, bytes) and s for strings in packed["strings"] for s in strings)
    decoded = model.decompress(packed["strings"], packed["shape"])["x_hat"]
    assert decoded.shape == noisy.shape
    torch.testing.assert_close(decoded, expected, atol=1e-5, rtol=0)

    # the decoder needs the strings, the shape and the weights: nothing from the encoder side
    fresh = create_model(name, **TINY[name]).eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.decompress(packed["strings"], size)["x_hat"], decoded)


def test_decompress_rejects_malformed_strings():
    model = tiny("cheng2020-anchor").eval()
    model.update()
    with pytest.raises(BitstreamError, match="two string lists"):
        model.decompress([[b"x"]], (64, 64))
    with pytest.raises(BitstreamError, match="as many"):
        model.decompress([[b"x", b"y"], [b"z"]], (64, 64))
    with pytest.raises(BitstreamError, match="shape"):
        model.decompress([[b"x"], [b"z"]], (0, 64))


@pytest.fixture(scope="module")
def trained_snr():
    """snr-decomp trained 60 steps (its quantiles as many aux steps) on one noise-rich image."""
    torch.manual_seed(0)
    model = create_model("snr-decomp", **TINY["snr-decomp"])
    image = rand_image(64, 64, seed=9)
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    opt, aux_opt = torch.optim.Adam(main, 3e-3), torch.optim.Adam(aux, 1e-1)
    first = None
    for _ in range(60):
        out = model(image, image)
        loss = bpp_from_likelihoods(out["likelihoods"], 64 * 64) + 0.5 * 255**2 * torch.mean((out["x_hat"] - image) ** 2)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        aux_loss = model.aux_loss()
        aux_opt.zero_grad()
        aux_loss.backward()
        aux_opt.step()
    assert loss.item() < first  # it did train
    model.eval()
    model.update(force=True)
    return model


def test_bitstream_rate_matches_likelihood_estimate(trained_snr):
    noisy = rand_image(256, 256, seed=5)
    with torch.no_grad():
        estimate = bpp_from_likelihoods(trained_snr(noisy)["likelihoods"], 256 * 256).item()
    real = bpp_from_strings(trained_snr.compress(noisy)["strings"], 256 * 256)
    assert abs(real / estimate - 1) < 0.05, (real, estimate)


def test_trained_round_trip_close_to_forward(trained_snr):
    noisy = rand_image(72, 100, seed=6)
    with torch.no_grad():
        expected = trained_snr(noisy)["x_hat"].clamp(0, 1)
    packed = trained_snr.compress(noisy)
    decoded = trained_snr.decompress(packed["strings"], packed["shape"])["x_hat"]
    # forward rounds y around 0 with parallel context; the coder rounds around the serially
    # predicted means: close, not identical
    assert psnr(decoded, expected) > 20


def test_padding_and_official_crop():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (2, 3, 8, 8)
    assert torch.equal(padded[..., :5, :7], x)
    assert torch.equal(padded[..., 7, 7], x[..., 4, 6]) and torch.equal(padded[..., 6, :7], x[..., 4, :])
    image = torch.rand(1, 3, 150, 200)
    cropped = crop_to_multiple(image)
    assert cropped.shape == (1, 3, 128, 192)
    assert torch.equal(cropped, image[..., 11:139, 4:196])
    with pytest.raises(DataError, match="smaller than 64"):
        crop_to_multiple(torch.rand(1, 3, 40, 100))


# ------------------------------------------------------------------------------ factory
def test_create_model_arguments():
    """The library names the argument it refuses (config.build turns it into file and key)."""
    with pytest.raises(ArgumentError, match=r"^num_layer: unknown hyper-parameter for model 'snr-decomp' "
                                            r"\(did you mean 'num_layers'\?\); its hyper-parameters: quality, N, "):
        create_model("snr-decomp", num_layer=2)
    with pytest.raises(ArgumentError, match=r"^name: unknown model 'snr-decom' \(did you mean 'snr-decomp'\?\); "
                                            r"registered models: cheng2020-anchor, multiscale-decomp, snr-decomp"):
        create_model("snr-decom")
    with pytest.raises(ArgumentError, match=r"^quality: expected an integer 1–6, got 7$"):
        create_model("cheng2020-anchor", quality=7)
    with pytest.raises(ArgumentError, match=r"^local_blocks: expected two non-negative integers \[stage 1, stage 2\], "
                                            r"got \[2\]$"):
        create_model("snr-decomp", N=16, local_blocks=[2])
    with pytest.raises(ArgumentError, match=r"^N: snr-decomp needs an even width, got 15$"):
        create_model("snr-decomp", N=15)
    with pytest.raises(ValueError, match=r"^N: expected a positive integer, got -4$"):  # a ValueError too
        create_model("multiscale-decomp", N=-4)


def test_checkpoint_whose_hyper_parameters_build_no_model(tmp_path):
    """load_model turns the model's refusal into a CheckpointError naming the file."""
    path = tmp_path / "tiny.pth"
    save_checkpoint(path, create_model("cheng2020-anchor", N=8))
    ckpt = torch.load(path, weights_only=False)
    ckpt["hparams"]["N"] = -4
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"tiny\.pth: its hyper-parameters do not build a model: "
                                              r"N: expected a positive integer, got -4"):
        load_model(path)
    assert shape_only_model("multiscale-decomp", quality=2).N == 128
    assert shape_only_model("multiscale-decomp", quality=4).N == 192
    assert shape_only_model("multiscale-decomp").hparams == {"quality": 6, "N": 192, "context": "serial"}
    assert shape_only_model("multiscale-decomp", N=64).hparams == {"quality": None, "N": 64, "context": "serial"}
    assert model_hparams("snr-decomp") == {"quality": None, "N": None, "num_layers": 6, "num_heads": 12,
                                           "head_dim": 64, "token_patch": 4, "local_blocks": [2, 1],
                                           "nonlocal_blocks": 1, "context": "serial", "branch_width": "half"}
    assert model_hparams("cheng2020-anchor") == {"quality": None, "N": None, "context": "serial"}


def test_parameter_counts_match_models_md():
    assert count_parameters("snr-decomp", quality=6) == 202_572_716
    assert count_parameters("multiscale-decomp", quality=6) == 28_115_372
    assert count_parameters("cheng2020-anchor", quality=6) == sum(
        p.numel() for p in shape_only_model("cheng2020-anchor", quality=6).parameters()
    )
    # the token size at N=192 is 16·96 = 1536 (docs/models.md)
    model = shape_only_model("snr-decomp", quality=6)
    assert model.snr_block_1.transformer.layer_stack[0].slf_attn.w_qs.weight.shape == (768, 1536)


def test_larger_token_patch_pads_further():
    model = create_model("snr-decomp", N=8, num_layers=1, num_heads=1, head_dim=8, token_patch=8)
    assert model.pad_multiple == 128
    out = model(rand_image(64, 72))
    assert out["x_hat"].shape == (1, 3, 64, 72) and out["y"].shape[-2:] == (8, 8)


# ------------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_and_fingerprint(tmp_path):
    model = tiny("snr-decomp").eval()
    model.update()
    path = tmp_path / "sub" / "model.pth"
    save_checkpoint(path, model, epoch=3, optimizer={"state": {}, "param_groups": []})
    assert [p.name for p in path.parent.iterdir()] == ["model.pth"]  # no temporary file left
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == "dic-checkpoint" and ckpt["version"] == 1 and ckpt["epoch"] == 3
    assert ckpt["model"] == "snr-decomp" and ckpt["hparams"] == model.hparams
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.hparams == model.hparams
    assert weights_fingerprint(loaded) == weights_fingerprint(model)
    noisy = rand_image(64, 64)
    assert loaded.compress(noisy)["strings"] == model.compress(noisy)["strings"]
    with torch.no_grad():
        loaded.g_s[0].conv1.bias[0] += 1e-3
    assert weights_fingerprint(loaded) != weights_fingerprint(model)
    with pytest.raises(CheckpointError, match="holds a 'snr-decomp' model, not 'cheng2020-anchor'"):
        load_model(path, arch="cheng2020-anchor")


class NotATensor:
    pass


def test_checkpoint_errors(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match="nope.pth does not exist"):
        load_checkpoint(missing)
    with pytest.raises(CheckpointError, match="nope.pth does not exist"):
        load_model(missing)
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pth is not a dic checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="cannot tell which architecture"):
        load_model(foreign)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "obj": NotATensor()}, unsafe)
    with pytest.raises(CheckpointError, match="NotATensor.*not loaded"):
        load_model(unsafe)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pth is not a readable PyTorch file"):
        load_checkpoint(garbage)
    # hyper-parameters that do not match the weights: the shapes are named
    model = tiny("cheng2020-anchor")
    path = tmp_path / "c.pth"
    save_checkpoint(path, model)
    ckpt = torch.load(path, weights_only=True)
    ckpt["hparams"]["N"] = 8
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"c.pth does not fit model 'cheng2020-anchor' \(N=8\)"):
        load_model(path)


# ------------------------------------------------------------------------------ warm start
def test_pretrained_cheng_weights_fill_both_stages(tmp_path):
    torch.manual_seed(5)
    cheng = Cheng2020Anchor(N=16)
    path = tmp_path / "cheng2020_anchor-q6.pth.tar"
    torch.save(cheng.state_dict(), path)
    model = tiny("snr-decomp")
    snr_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("snr_block_")}
    copied = load_pretrained(model, str(path))
    state = model.state_dict()
    assert torch.equal(state["g_a_block1.0.conv1.weight"], cheng.g_a[0].conv1.weight)
    assert torch.equal(state["g_a_block1.2.gdn.gamma"], cheng.g_a[2].gdn.gamma)
    assert torch.equal(state["g_a_block2.0.conv2.bias"], cheng.g_a[3].conv2.bias)
    assert torch.equal(state["g_a_block2.3.weight"], cheng.g_a[6].weight)
    assert torch.equal(state["g_s.7.0.weight"], cheng.g_s[7][0].weight)
    assert torch.equal(state["entropy_bottleneck.matrices.2"], cheng.entropy_bottleneck.matrices[2])
    assert all(torch.equal(state[k], v) for k, v in snr_before.items())  # denoisers keep their init
    assert copied == len([k for k in cheng.state_dict() if not k.endswith(("_quantized_cdf", "_offset", "_cdf_length", "scale_table"))
                          and k != "context_prediction.mask"])  # the model's own mask stays
    # the plain codec takes the same file as it is
    base = tiny("cheng2020-anchor")
    load_pretrained(base, path)
    assert torch.equal(base.g_a[6].weight, cheng.g_a[6].weight)


@pytest.mark.parametrize("name", ["snr-decomp", "cheng2020-anchor"])
def test_pretrained_from_a_training_checkpoint_of_the_same_model(tmp_path, name):
    """A λ ladder starts its outer rate points from the middle one: every learned tensor is
    copied (the coder tables are rebuilt by update())."""
    source, target = tiny(name, seed=0), tiny(name, seed=1)
    key = "entropy_bottleneck.quantiles"
    source.state_dict()[key].add_(1.0)  # a value no fresh model has
    assert not all(torch.equal(a, b) for a, b in zip(source.parameters(), target.parameters()))
    path = tmp_path / "anchor.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    load_pretrained(target, str(path))
    for key, value in source.named_parameters():
        assert torch.equal(value, dict(target.named_parameters())[key]), key


def test_pretrained_errors(tmp_path, monkeypatch):
    model = tiny("multiscale-decomp")
    with pytest.raises(CheckpointError, match="missing.pth does not exist"):
        load_pretrained(model, str(tmp_path / "missing.pth"))
    wide = tmp_path / "wide.pth"
    torch.save(Cheng2020Anchor(N=24).state_dict(), wide)
    with pytest.raises(CheckpointError, match=r"shape .*model N=16"):
        load_pretrained(model, str(wide))
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="neither a Cheng2020-anchor checkpoint nor one of 'multiscale-decomp'"):
        load_pretrained(model, str(other))

    import compressai.zoo

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(compressai.zoo, "cheng2020_anchor", offline)
    with pytest.raises(CheckpointError, match="could not fetch CompressAI's cheng2020-anchor weights.*unreachable"):
        load_pretrained(create_model("multiscale-decomp", quality=6, N=16), "compressai")
    with pytest.raises(CheckpointError, match="need the model.s quality"):
        load_pretrained(create_model("cheng2020-anchor", N=16), True)
