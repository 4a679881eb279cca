"""Official checkpoints → ours: the key table against the published key lists (N=192), and
synthetic official-layout files (training and evaluation kinds) that must load strictly and
compute what the original weights compute."""
import argparse
import runpy
from pathlib import Path

import pytest
import torch

from dic.errors import CheckpointError
from dic.checkpoints import has_coding_tables, load_checkpoint, load_model
from dic.models import create_model, shape_only_model
from dic.apps.cli import run_convert as run
from dic.checkpoints.official import (convert_state_dict, infer_hparams, official_to_ours, ours_to_official,
                                      to_official_state_dict)

REPO = Path(__file__).resolve().parents[1]
# official key lists (docs/models.md §4): every official key with its shape at N=192
SPEC = Path(__file__).resolve().parent / "fixtures"
KEY_LISTS = {
    "snr-decomp": "official_keys_icme2024_snr_N192.tsv",
    "multiscale-decomp": "official_keys_eccv2022_multiscale_decomp_N192.tsv",
}
# the ICME 2024 release's two snr-decomp networks (docs/models.md §3): key table → (tree, hyper-parameters)
SNR_TABLES = {
    "official_keys_icme2024_snr_N192.tsv": ("MSE", {}),
    "official_keys_icme2024_snr_msssim_sidd_N192.tsv": ("MS-SSIM and SIDD", {"branch_width": "full", "num_heads": 8}),
}
# filled by update(): their sizes depend on the trained weights (docs/models.md §3)
CODER_TABLES = ("_offset", "_quantized_cdf", "_cdf_length", "scale_table")
TINY_SNR = dict(N=16, num_layers=1, num_heads=2, head_dim=8)



def read_key_list(arch, table=None):
    path = SPEC / (table or KEY_LISTS[arch])
    if not path.is_file():
        pytest.skip(f"{path} not available")
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return {key: tuple(int(d) for d in shape.split("x")) for key, shape, _ in rows}


@pytest.mark.parametrize("arch,table,hparams", [
    ("multiscale-decomp", KEY_LISTS["multiscale-decomp"], {}),
    *(("snr-decomp", table, hparams) for table, (_, hparams) in SNR_TABLES.items()),
], ids=["multiscale-decomp", "snr-decomp-mse-tree", "snr-decomp-msssim-sidd-trees"])
def test_official_keys_at_N192_map_onto_our_model(arch, table, hparams):
    official = read_key_list(arch, table)
    converted = {official_to_ours(k, arch): shape for k, shape in official.items()}
    assert len(converted) == len(official)
    ours = {k: tuple(v.shape) for k, v in shape_only_model(arch, quality=6, **hparams).state_dict().items()}
    assert sorted(set(converted) - set(ours)) == []
    assert sorted(set(ours) - set(converted)) == []
    wrong = {k: (converted[k], ours[k]) for k in ours
             if not k.endswith(CODER_TABLES) and converted[k] != ours[k]}
    assert wrong == {}
    # and back: the inverse table gives the official names
    assert {ours_to_official(k, arch) for k in ours} == set(official)


@pytest.mark.parametrize("table", list(SNR_TABLES))
def test_the_network_of_an_official_file_is_read_from_its_shapes(table):
    """Both trees' files at full size, as shapes only: the hyper-parameters come out of the
    shapes alone (heads of the default width 64), with no extra argument."""
    official = read_key_list("snr-decomp", table)
    state = {k: torch.empty(shape, device="meta") for k, shape in official.items()}
    converted, _ = convert_state_dict(state, "snr-decomp")
    expected = {"N": 192, "num_layers": 6, "num_heads": 12, "head_dim": 64, "token_patch": 4,
                "local_blocks": [2, 1], "nonlocal_blocks": 1, "branch_width": "half", **SNR_TABLES[table][1]}
    assert infer_hparams(converted, "snr-decomp") == expected


def test_an_snr_file_of_neither_network_is_a_clear_error():
    state = to_official_state_dict(randomised("snr-decomp", **TINY_SNR))
    state["feature_fusion_1.mlp_shared.0.weight"] = torch.zeros(32, 12, 3, 3)
    converted, _ = convert_state_dict(state, "snr-decomp")
    with pytest.raises(CheckpointError, match=r"'feature_fusion_1\.mlp_shared\.0\.weight' takes 12 channels, "
                                              r"neither N/2 nor N for N=16"):
        infer_hparams(converted, "snr-decomp", "x.pth", head_dim=8)


def test_key_renames():
    assert official_to_ours("module.entropy_bottleneck._matrix3", "snr-decomp") == "entropy_bottleneck.matrices.3"
    assert official_to_ours("entropy_bottleneck._bias4", "multiscale-decomp") == "entropy_bottleneck.biases.4"
    assert official_to_ours("entropy_bottleneck._factor0", "snr-decomp") == "entropy_bottleneck.factors.0"
    assert (official_to_ours("module.transformer_enhance_2.layer_stack.5.slf_attn.w_qs.weight", "snr-decomp")
            == "snr_block_2.transformer.layer_stack.5.slf_attn.w_qs.weight")
    assert official_to_ours("local_feature_extraction_1_CC.bias", "snr-decomp") == "snr_block_1.local_proj.bias"
    assert (official_to_ours("non_local_feature_extraction_2.0.conv1.weight", "snr-decomp")
            == "snr_block_2.nonlocal_branch.0.conv1.weight")
    assert official_to_ours("non_local_feature_extraction_1_CC.weight", "snr-decomp") == "snr_block_1.nonlocal_proj.weight"
    assert official_to_ours("feature_fusion_1.mlp_shared.0.weight", "snr-decomp") == "snr_block_1.fusion.mlp_shared.0.weight"
    assert official_to_ours("module.denoise_module_1.conv_b.3.weight", "multiscale-decomp") == "denoise_module_1.conv_b.3.weight"
    assert official_to_ours("g_a_block2.3.bias", "snr-decomp") == "g_a_block2.3.bias"
    with pytest.raises(CheckpointError, match="both map to"):
        convert_state_dict({"module.g_s.0.conv1.bias": torch.zeros(1), "g_s.0.conv1.bias": torch.zeros(1)}, "snr-decomp")


def official_training_file(model, path):
    """What the official training script saves: DataParallel names, optimizer states etc."""
    params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    optimizer = torch.optim.Adam(params, 1e-4)
    aux_optimizer = torch.optim.Adam([model.entropy_bottleneck.quantiles], 1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [10, 20])
    torch.save({
        "epoch": 7, "iter": 1234, "loss": torch.tensor(1.5),
        "state_dict": to_official_state_dict(model, prefix="module."),
        "optimizer": optimizer.state_dict(), "aux_optimizer": aux_optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(), "aux_lr_scheduler": scheduler.state_dict(),
    }, path)


def randomised(name, **hparams):
    """A tiny model whose every weight differs from a fresh one (so a skipped key shows)."""
    torch.manual_seed(11)
    model = create_model(name, **hparams)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("arch,hparams", [("snr-decomp", TINY_SNR), ("snr-decomp", {**TINY_SNR, "branch_width": "full"}),
                                          ("multiscale-decomp", dict(N=16))])
def test_converted_training_checkpoint_loads_strictly_and_computes_the_same(tmp_path, arch, hparams):
    original = randomised(arch, **hparams)
    source, target = tmp_path / "official.pth.tar", tmp_path / "ours.pth"
    official_training_file(original, source)
    args = argparse.Namespace(input=str(source), output=str(target), arch=arch, quality=3, head_dim=8)
    assert run(args) == 0
    ckpt = load_checkpoint(target)
    assert ckpt["model"] == arch and ckpt["epoch"] == 7 and ckpt["iter"] == 1234
    assert ckpt["hparams"] == {**original.hparams, "quality": 3}
    assert ckpt["state_dict"].keys() == original.state_dict().keys()
    converted = load_model(target).eval()
    assert has_coding_tables(converted), "dic convert stores the coding tables (portable .dic files)"
    noisy, gt = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = original(noisy, gt), converted(noisy, gt)
    for key in ("x_hat", "y", "y_inter", "y_gt", "y_inter_gt"):
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)


def test_evaluation_checkpoint_loads_on_the_fly_with_coder_tables(tmp_path):
    original = randomised("snr-decomp", **TINY_SNR)
    original.update(force=True)
    path = tmp_path / "snr_q6_eval.pth"
    torch.save(to_official_state_dict(original), path)  # bare state dict, no prefix
    loaded = load_model(path, head_dim=8)  # architecture recognised from the keys
    assert loaded.name == "snr-decomp" and loaded.hparams == original.hparams
    assert loaded.gaussian_conditional.quantized_cdf.shape == original.gaussian_conditional.quantized_cdf.shape
    noisy = torch.rand(1, 3, 64, 64)
    assert loaded.eval().compress(noisy)["strings"] == original.compress(noisy)["strings"]
    # heads × head width is all the file stores: the default split (64) cannot fit 16 columns
    with pytest.raises(CheckpointError, match="heads × head width"):
        load_model(path)


def test_unknown_and_missing_keys_are_listed(tmp_path):
    state = to_official_state_dict(randomised("multiscale-decomp", N=16), prefix="module.")
    del state["module.denoise_module_2.conv_b.3.bias"]
    state["module.denoise_module_3.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": state, "epoch": 1}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path, arch="multiscale-decomp")
    message = str(info.value)
    assert "broken.pth" in message
    assert "missing keys (1): denoise_module_2.conv_b.3.bias" in message
    assert "unexpected keys (1): module.denoise_module_3.weight" in message
    with pytest.raises(CheckpointError, match="not a snr-decomp checkpoint"):
        load_model(path, arch="snr-decomp")


def test_convert_refuses_our_own_checkpoint_and_odd_files(tmp_path):
    from dic.checkpoints import save_checkpoint

    ours = tmp_path / "ours.pth"
    save_checkpoint(ours, create_model("cheng2020-anchor", N=8))
    args = argparse.Namespace(input=str(ours), output=str(tmp_path / "x.pth"), arch=None, quality=None, head_dim=64)
    with pytest.raises(CheckpointError, match="already a dic checkpoint"):
        run(args)
    odd = tmp_path / "odd.pth"
    torch.save([1, 2, 3], odd)
    with pytest.raises(CheckpointError, match="neither an official training checkpoint"):
        run(argparse.Namespace(**{**vars(args), "input": str(odd)}))


def test_script_and_dic_convert_command(tmp_path, capsys):
    original = randomised("multiscale-decomp", N=16)
    source = tmp_path / "official.pth.tar"
    official_training_file(original, source)
    script = runpy.run_path(str(REPO / "scripts" / "convert_official.py"), run_name="convert_official")
    assert script["main"]([str(source), str(tmp_path / "a.pth"), "--arch", "multiscale-decomp"]) == 0
    assert script["main"]([str(tmp_path / "missing.pth"), str(tmp_path / "b.pth")]) == 2
    assert "missing.pth does not exist" in capsys.readouterr().err
    from dic.apps.cli import main

    assert main(["convert", str(source), str(tmp_path / "c.pth")]) == 0
    a, c = load_checkpoint(tmp_path / "a.pth"), load_checkpoint(tmp_path / "c.pth")
    assert all(torch.equal(a["state_dict"][k], v) for k, v in c["state_dict"].items())
