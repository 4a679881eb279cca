"""Evaluation: reports from tiny checkpoints, CSV/JSON agreement, protocols, SIDD submission
files, learned sequential baseline and the errors a user sees."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import yaml
from scipy.io import loadmat

from dic.apps.cli import main as dic_main
from dic.data import create_dataset
from dic.data.io import read_image, write_image
from dic.apps.evaluate.reports import read_csv
from dic.apps.evaluate.runner import evaluate
from dic.metrics import psnr
from dic.checkpoints import save_checkpoint
from dic.models import create_model
from dic.config import load_options


def main(argv):
    """``dic test ...`` (what test.py and dic-test run)."""
    return dic_main(["test", *argv])


TINY_SNR = dict(N=16, num_layers=1, num_heads=2, head_dim=16)
KEYS = ("psnr", "ms-ssim", "ms-ssim-db", "bpp", "encoding_time", "decoding_time")



@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Two small photographs (≤ 128 px) and two tiny snr-decomp checkpoints (q1, q2)."""
    root = tmp_path_factory.mktemp("eval")
    write_image(root / "images" / "astronaut.png", skimage.data.astronaut()[96:192, 128:256])  # 96×128
    write_image(root / "images" / "coffee.png", skimage.data.coffee()[60:160, 200:300])  # 100×100
    for q in (1, 2):
        torch.manual_seed(q)
        save_checkpoint(root / f"snr_q{q}.pth", create_model("snr-decomp", quality=q, **TINY_SNR))
    torch.manual_seed(3)
    save_checkpoint(root / "cheng.pth", create_model("cheng2020-anchor", quality=1, N=16))
    return root


def write_options(root: Path, name: str, datasets: dict, checkpoint=("snr_q1.pth", "snr_q2.pth"),
                  model="snr-decomp", test=None, filename=None) -> Path:
    opt = {"name": name, "path": {"root": str(root), "checkpoint": list(checkpoint)},
           "network": {"model": model}, "datasets": datasets, "test": test or {}}
    path = root / (filename or f"{name}.yml")
    path.write_text(yaml.safe_dump(opt))
    return path


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def test_report_keys_values_and_csv_agree(workspace):
    """Real coding, two checkpoints, a level list: one report per level with one entry per
    checkpoint; the CSV rows average to the JSON; saved PNGs reproduce the CSV's PSNR."""
    path = write_options(workspace, "real", {"kodak": {"name": "synthetic-test", "root": "images", "level": [1, 3]}},
                         test={"save_images": True})
    assert main(["-opt", str(path), "--no-progress"]) == 0
    out = workspace / "results" / "real"
    for level in (1, 3):
        report = load_json(out / f"kodak_level{level}" / "snr-decomp.json")
        assert report["name"] == "snr-decomp" and report["description"]
        assert report["level"] == level and report["estimation"] is False and report["protocol"] == "pad"
        res = report["results"]
        for key in KEYS:
            assert len(res[key]) == 2, key
        assert res["bpp"] == sorted(res["bpp"])  # entries sorted by rate
        assert sorted(report["quality"]) == [1, 2]
        assert all(b > 0 for b in res["bpp"])
        assert all(math.isfinite(p) and 0 < p < 100 for p in res["psnr"])
        assert all(0 < m <= 1 for m in res["ms-ssim"])
        assert res["ms-ssim-db"] == pytest.approx([np.mean([-10 * math.log10(1 - m) for m in ms])
                                                   for ms in _per_entry(out, level, "ms_ssim", report)])
        assert res["psnr-rgb"] == res["psnr"]  # CompressAI's plotting tool reads these names

        rows = read_csv(out / f"kodak_level{level}" / "snr-decomp.csv")
        assert len(rows) == 4 and {r["image"] for r in rows} == {"astronaut", "coffee"}
        assert {r["protocol"] for r in rows} == {"pad"}  # every row records its protocol
        for k, tag in enumerate(report["entries"]):
            mine = [r for r in rows if r["entry"] == tag]
            for key, col in (("psnr", "psnr"), ("ms-ssim", "ms_ssim"), ("bpp", "bpp"),
                             ("encoding_time", "encoding_time"), ("decoding_time", "decoding_time")):
                assert res[key][k] == pytest.approx(np.mean([r[col] for r in mine]), rel=1e-9)
        for r in rows:  # bpp comes from the real bytes
            assert r["bpp"] == pytest.approx(8 * r["bytes"] / (r["height"] * r["width"]))
            assert r["encoding_time"] > 0 and r["decoding_time"] > 0

        # the decoded image on disk gives the CSV's PSNR against the same clean image
        dataset = create_dataset("synthetic-test", str(workspace / "images"), "test", level=level)
        names = [dataset.image_name(i) for i in range(len(dataset))]
        gt = dataset[names.index("coffee")][0]
        row = next(r for r in rows if r["image"] == "coffee" and r["entry"] == report["entries"][0])
        decoded = read_image(out / f"kodak_level{level}" / "images" / "snr-decomp" / row["entry"] / "coffee.png")
        decoded = torch.from_numpy(decoded).permute(2, 0, 1).float() / 255
        assert psnr(decoded, gt) == pytest.approx(row["psnr"], abs=1e-6)


def _per_entry(out, level, col, report):
    rows = read_csv(out / f"kodak_level{level}" / "snr-decomp.csv")
    return [[r[col] for r in rows if r["entry"] == tag] for tag in report["entries"]]


def test_estimation_and_crop_protocol(workspace):
    """Estimation uses forward (no bytes, no decoding time); crop codes 64-multiples only."""
    path = write_options(workspace, "est", {
        "est": {"name": "synthetic-test", "root": "images", "level": 2, "estimation": True},
        "real": {"name": "synthetic-test", "root": "images", "level": 2}},
        checkpoint=["snr_q1.pth"], test={"protocol": "crop"})
    reports = evaluate(load_options(path, is_train=False), progress=False)
    est, real = reports["est"][0], reports["real"][0]
    assert est["estimation"] is True and real["estimation"] is False
    assert "decoding_time" not in est["results"] and est["results"]["bpp"][0] > 0
    # the same model and images: estimated and real rates agree roughly, distortion closely
    assert est["results"]["bpp"][0] == pytest.approx(real["results"]["bpp"][0], rel=0.5)
    assert est["results"]["psnr"][0] == pytest.approx(real["results"]["psnr"][0], abs=0.5)
    rows = read_csv(Path(est["_csv"]))
    assert {(r["height"], r["width"]) for r in rows} == {(64.0, 128.0), (64.0, 64.0)}
    assert all(r["bytes"] is None for r in rows)


def test_sidd_benchmark_submission_layout(workspace):
    """Blocks without ground truth: the decoded blocks go into a cell array N×B with the time
    per megapixel and the bpp beside them; the report holds rate and times only."""
    img = skimage.data.chelsea()
    scenes = ["0009_001_S6_00800_00350_3200_L", "0010_001_S6_00800_00350_3200_N"]
    for s, scene in enumerate(scenes):
        for b in range(3):
            write_image(workspace / "sidd" / scene / f"{scene[:4]}_NOISY_SRGB_{b:02d}.png",
                        img[64 * b: 64 * b + 64, 64 * s: 64 * s + 64])
    path = write_options(workspace, "sidd", {"benchmark": {"name": "sidd", "root": "sidd"}},
                         checkpoint=["snr_q1.pth"], test={"save_images": True})
    report = evaluate(load_options(path, is_train=False), progress=False)["benchmark"][0]
    assert set(report["results"]) == {"bpp", "encoding_time", "decoding_time"}
    mat = loadmat(report["sidd_submission"][0])
    cells = mat["DenoisedBlocksSrgb"]
    assert cells.shape == (2, 3)
    rows = {r["image"]: r for r in read_csv(Path(report["_csv"]))}
    assert len(rows) == 6
    for s, scene in enumerate(scenes):
        for b in range(3):
            block = cells[s, b]
            assert block.shape == (64, 64, 3) and block.dtype == np.uint8
            decoded = read_image(Path(report["_json"]).parent / "images" / "snr-decomp" / "q1" / f"{scene[:4]}_{b:02d}.png")
            np.testing.assert_array_equal(block, decoded)
    assert mat["TimeMPSrgb"].item() > 0
    assert mat["OptionalData"]["Bpp"][0, 0].item() == pytest.approx(report["results"]["bpp"][0])


def test_learned_sequential_and_codec_only(workspace):
    """A model's reconstruction coded by cheng2020-anchor: the rate is the codec's bytes of
    the denoised image, so it differs from the codec applied to the noisy image directly."""
    data = {"kodak": {"name": "synthetic-test", "root": "images", "level": 4, "max_images": 1}}
    seq = write_options(workspace, "seq", data, checkpoint=["cheng.pth"], model="cheng2020-anchor",
                        test={"denoiser": "snr_q1.pth"})
    only = write_options(workspace, "codec_only", data, checkpoint=["cheng.pth"], model="cheng2020-anchor")
    r_seq = evaluate(load_options(seq, is_train=False), progress=False)["kodak"][0]
    r_only = evaluate(load_options(only, is_train=False), progress=False)["kodak"][0]
    assert r_seq["name"] == "snr-decomp+cheng2020-anchor" and r_only["name"] == "cheng2020-anchor"
    assert r_seq["results"]["bpp"][0] > 0 and r_only["results"]["bpp"][0] > 0
    assert r_seq["results"]["psnr"] != r_only["results"]["psnr"]


def test_missing_checkpoint_is_a_clear_error(workspace, capsys):
    path = write_options(workspace, "missing", {"kodak": {"name": "synthetic-test", "root": "images", "level": 1}},
                         checkpoint=["snr_q1.pth", "nope_q9.pth"])
    assert main(["-opt", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "path.checkpoint" in err and "nope_q9.pth does not exist" in err
    assert not (workspace / "results" / "missing" / "kodak").exists()  # failed before any work

    path = write_options(workspace, "wrongarch", {"kodak": {"name": "synthetic-test", "root": "images", "level": 1}},
                         checkpoint=["cheng.pth"])  # network.model says snr-decomp
    assert main(["-opt", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cheng.pth holds a 'cheng2020-anchor' model, not 'snr-decomp'" in err


def test_unknown_dataset_and_missing_root_are_clear_errors(workspace, capsys):
    path = write_options(workspace, "bad", {"kodak": {"name": "synthetic-tst", "root": "images", "level": 1}})
    assert dic_main(["test", "-opt", str(path)]) == 2
    err = capsys.readouterr().err
    assert "datasets.kodak.name" in err and "unknown dataset 'synthetic-tst'" in err
    assert "did you mean 'synthetic-test'" in err

    path = write_options(workspace, "noroot", {"kodak": {"name": "synthetic-test", "root": "no_such_folder", "level": 1}})
    assert main(["-opt", str(path)]) == 2
    err = capsys.readouterr().err
    assert "datasets.kodak.root" in err and "no_such_folder does not exist" in err


def test_bad_baseline_and_no_checkpoint_messages(workspace, capsys):
    data = {"kodak": {"name": "synthetic-test", "root": "images", "level": 1}}
    path = write_options(workspace, "nobase", data, test={"baselines": ["nlm-jpg"]})
    assert main(["-opt", str(path)]) == 2
    err = capsys.readouterr().err
    assert "test.baselines: unknown baseline 'nlm-jpg'" in err and "did you mean 'nlm-jpeg'" in err

    path = write_options(workspace, "nockpt", data, checkpoint=[])
    assert main(["-opt", str(path), "--set", "path.checkpoint=null"]) == 2
    assert "path.checkpoint: missing" in capsys.readouterr().err


def test_example_option_files_load():
    """Every conf/test file is a valid evaluation option file (paths need not exist yet)."""
    conf = Path(__file__).resolve().parents[1] / "conf" / "test"
    files = sorted(conf.glob("*.yml"))
    assert len(files) >= 8
    for path in files:
        opt = load_options(path, is_train=False)
        assert opt["datasets"], path
        assert opt["path"]["checkpoint"] or opt["test"]["baselines"], path


def test_precision_is_applied_checked_and_recorded(workspace, capsys):
    """test.precision reaches the models' transforms and the report; one the device cannot run
    is refused naming the key; float32 is what the report of the default says."""
    datasets = {"kodak": {"name": "synthetic-test", "root": "images", "level": 2, "max_images": 1}}
    path = write_options(workspace, "bf16", datasets, checkpoint=["snr_q1.pth"], test={"precision": "bfloat16"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 may be emulated (slow) on this CPU: said once per process
        assert main(["-opt", str(path), "--no-progress"]) == 0
    bf16 = load_json(workspace / "results" / "bf16" / "kodak" / "snr-decomp.json")
    path = write_options(workspace, "f32", datasets, checkpoint=["snr_q1.pth"])
    assert main(["-opt", str(path), "--no-progress"]) == 0
    f32 = load_json(workspace / "results" / "f32" / "kodak" / "snr-decomp.json")
    assert bf16["precision"] == "bfloat16" and f32["precision"] == "float32"
    assert bf16["results"]["bpp"] != f32["results"]["bpp"] or bf16["results"]["psnr"] != f32["results"]["psnr"]
    assert abs(bf16["results"]["psnr"][0] - f32["results"]["psnr"][0]) < 0.5
    path = write_options(workspace, "f16", datasets, checkpoint=["snr_q1.pth"], test={"precision": "float16"})
    assert main(["-opt", str(path), "--no-progress"]) == 2
    assert "f16.yml: test.precision: float16 runs on CUDA only" in capsys.readouterr().err
