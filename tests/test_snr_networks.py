"""The two snr-decomp networks of the ICME 2024 release (docs/models.md §3): the MSE tree's
(``branch_width: half``, the default) and the MS-SSIM / SIDD trees' (``branch_width: full``,
8 heads, ``*_CC`` convolutions present but unused). Sizes, the unused convolutions, official
files, the warm start and real coding (float and exact paths, both context models, the .dic
header) of the second one. Tiny widths (N=16, one transformer layer)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from compressai.models import Cheng2020Anchor

from dic import codec
from dic.apps.train.step import build_optimizers
from dic.checkpoints import load_model, load_pretrained, save_checkpoint, weights_fingerprint
from dic.checkpoints.official import to_official_state_dict
from dic.data.io import to_tensor
from dic.errors import ArgumentError, BitstreamError
from dic.metrics import quantize_8bit
from dic.models import count_parameters, create_model

from coding_models import coder_consistent

FULL = dict(N=16, num_layers=1, num_heads=2, head_dim=8, branch_width="full")
PROJECTIONS = ("local_proj", "nonlocal_proj")  # the official *_CC convolutions


def full_model(seed: int = 0, **extra):
    torch.manual_seed(seed)
    return create_model("snr-decomp", **{**FULL, **extra})


def projection_params(model):
    return {f"snr_block_{s}.{name}.{p}": getattr(getattr(model, f"snr_block_{s}"), name).get_parameter(p)
            for s in (1, 2) for name in PROJECTIONS for p in ("weight", "bias")}


def image(seed: int, h: int = 70, w: int = 90) -> np.ndarray:
    """A smooth noisy uint8 picture (gradients + noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=2) * 200 + 20
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ the network
def test_parameter_counts_of_both_networks():
    """docs/models.md §3 and docs/reproducing.md: the second network at N=192 is 562,642,220."""
    second = dict(branch_width="full", num_heads=8)
    assert count_parameters("snr-decomp", quality=6) == 202_572_716
    assert count_parameters("snr-decomp", quality=6, **second) == 562_642_220
    assert count_parameters("snr-decomp", quality=3) == 102_656_061
    assert count_parameters("snr-decomp", quality=3, **second) == 266_910_013


def test_full_width_shapes_and_hyper_parameters():
    model = full_model()
    block = model.snr_block_1
    assert not block.project
    assert block.local_proj.weight.shape == block.nonlocal_proj.weight.shape == (16, 16, 3, 3)
    assert block.transformer.layer_stack[0].slf_attn.w_qs.weight.shape == (16, 16 * 16)  # tokens of 16·N
    assert block.transformer.layer_stack[0].pos_ffn.w_1.weight.shape == (2 * 16 * 16, 16 * 16)
    assert block.fusion.mlp_shared[0].weight.shape == (32, 16, 3, 3)  # fusion takes N channels
    assert model.hparams["branch_width"] == "full" and model.hparams["num_heads"] == 2
    rebuilt = create_model("snr-decomp", **model.hparams)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    half = create_model("snr-decomp", N=16, num_layers=1, num_heads=2, head_dim=8)
    assert half.hparams.get("branch_width", "half") == "half"
    assert half.snr_block_1.local_proj.weight.shape == (8, 16, 3, 3) and half.snr_block_1.project
    with pytest.raises(ArgumentError, match="branch_width: expected one of half, full, got 'double'"):
        create_model("snr-decomp", N=16, branch_width="double")


def test_unused_projections_change_nothing_and_are_never_trained():
    """The *_CC weights of the second network do not take part: other values give the same
    outputs bit for bit, they get no gradient, and neither optimizer holds them."""
    model = full_model().train()
    noisy, gt = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    torch.manual_seed(3)
    before = model(noisy, gt)
    with torch.no_grad():
        for p in projection_params(model).values():
            p.normal_(0, 10)
    torch.manual_seed(3)
    after = model(noisy, gt)
    for key in ("x_hat", "y", "y_inter", "y_gt", "y_inter_gt"):
        assert torch.equal(before[key], after[key]), key
    after["x_hat"].sum().backward()
    assert all(not p.requires_grad and p.grad is None for p in projection_params(model).values())
    main, aux = build_optimizers(model, 1e-4, 1e-3)
    held = {id(p) for opt in (main, aux) for group in opt.param_groups for p in group["params"]}
    assert not held & {id(p) for p in projection_params(model).values()}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert len(held) == sum(1 for p in model.parameters() if p.requires_grad) and trainable > 0


# ------------------------------------------------------------------------------ files
def test_official_file_of_the_second_network_loads_with_its_cc_weights(tmp_path):
    """An official-layout file (DataParallel names, CompressAI 1.1 bottleneck names) of the
    second network loads with no extra argument: the network is read from the shapes, the
    *_CC weights are loaded as stored, and the outputs are the original model's."""
    original = full_model(seed=4, num_heads=8, head_dim=64)  # the release's heads: 8 of 64
    with torch.no_grad():
        for p in original.parameters():
            p.add_(0.01 * torch.randn_like(p))
    original.eval().update(force=True)
    state = to_official_state_dict(original, prefix="module.")
    assert "module.local_feature_extraction_1_CC.weight" in state
    assert state["module.transformer_enhance_1.layer_stack.0.slf_attn.w_qs.weight"].shape == (512, 256)
    path = tmp_path / "msssim_q6.pth.tar"
    torch.save({"epoch": 3, "iter": 10, "state_dict": state}, path)
    loaded = load_model(path).eval()
    assert loaded.hparams == original.hparams
    assert loaded.hparams["branch_width"] == "full" and loaded.hparams["num_heads"] == 8
    for key, value in projection_params(loaded).items():
        assert torch.equal(value, projection_params(original)[key]), key
    noisy = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(noisy)["x_hat"], original(noisy)["x_hat"])
    assert loaded.compress(noisy)["strings"] == original.compress(noisy)["strings"]


def test_warm_start_from_cheng2020_anchor(tmp_path):
    torch.manual_seed(5)
    cheng = Cheng2020Anchor(N=16)
    path = tmp_path / "cheng2020_anchor-q6.pth.tar"
    torch.save(cheng.state_dict(), path)
    model = full_model()
    denoisers = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("snr_block_")}
    assert load_pretrained(model, str(path)) > 0
    state = model.state_dict()
    assert torch.equal(state["g_a_block1.0.conv1.weight"], cheng.g_a[0].conv1.weight)
    assert torch.equal(state["g_a_block2.3.weight"], cheng.g_a[6].weight)
    assert torch.equal(state["g_s.7.0.weight"], cheng.g_s[7][0].weight)
    assert all(torch.equal(state[k], v) for k, v in denoisers.items())


def checkpoint(path, context: str):
    """A tiny second-network model whose forward pass agrees with its coder (zero predicted
    means, a latent scaled up so that it is not all zeros, outputs shifted into (0, 1))."""
    save_checkpoint(path, coder_consistent(full_model(seed=1, context=context)))
    return path


@pytest.mark.filterwarnings("ignore:model snr-decomp stores no entropy-coder tables")
@pytest.mark.parametrize("context", ["serial", "checkerboard"])
def test_dic_round_trip_float_and_exact(tmp_path, context, one_thread):
    """.dic files of the second network, float coder (version 2) and exact coder (version 3):
    the header records the network, the decoded image is the forward pass's, and the first
    network's weights are refused."""
    path = checkpoint(tmp_path / f"full_{context}.pth", context)
    model, fingerprint = codec.load_codec_model(path)
    assert model.hparams["branch_width"] == "full" and model.hparams["context"] == context
    assert weights_fingerprint(load_model(path).eval()) == fingerprint
    picture = image(0)
    with torch.no_grad():
        expected = quantize_8bit(model(to_tensor(picture)[None])["x_hat"])[0]
    assert expected.std() > 0.02
    for version in (2, 3):
        data = codec.encode_image(model, picture, fingerprint=fingerprint, checkpoint=path, version=version)
        header = codec.read_header(data)
        assert header.version == version and header.hparams["branch_width"] == "full"
        decoded = codec.decode_bytes(data, checkpoint=path)
        diff = (to_tensor(decoded) - expected).abs().max().item() * 255
        assert diff <= 1.0 + 1e-4, f"version {version}: {diff} levels from the forward pass"
    first = create_model("snr-decomp", **{**FULL, "branch_width": "half", "context": context})
    first_fingerprint = codec.prepare_model(first)
    with pytest.raises(BitstreamError, match="branch_width"):
        codec.decode_bytes(data, first, fingerprint=first_fingerprint)
