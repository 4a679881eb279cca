"""Sequential baselines: the noise estimate, NLM, real JPEG/WebP files, and reports over a
ladder of qualities on the same inputs as the models."""
from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
import torch
import yaml

from dic.data.io import write_image
from dic.apps.evaluate import baselines, baselines_cmd
from dic.apps.evaluate.baselines import (ClassicalCoder, decode_classical, denoise_nlm, encode_classical,
                                         estimate_noise_sigma)
from dic.apps.evaluate.reports import read_csv
from dic.apps.evaluate.runner import evaluate
from dic.errors import OptionError
from dic.config import load_options



def photo(h=96, w=128):
    return np.ascontiguousarray(skimage.data.astronaut()[80:80 + h, 150:150 + w])


def psnr8(a, b):
    return 10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_noise_estimate_tracks_the_true_sigma():
    rng = np.random.default_rng(0)
    flat = np.full((128, 128, 3), 128.0)
    for sigma in (5.0, 15.0, 30.0):
        noisy = np.clip(np.round(flat + rng.normal(0, sigma, flat.shape)), 0, 255).astype(np.uint8)
        assert estimate_noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)
    assert estimate_noise_sigma(np.full((32, 32, 3), 7, np.uint8)) == 0.0


def test_nlm_removes_noise():
    clean = photo()
    rng = np.random.default_rng(1)
    noisy = np.clip(np.round(clean + rng.normal(0, 20, clean.shape)), 0, 255).astype(np.uint8)
    denoised = denoise_nlm(noisy)
    assert denoised.shape == clean.shape and denoised.dtype == np.uint8
    assert psnr8(denoised, clean) > psnr8(noisy, clean) + 2


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_real_files_and_rate_falls_with_quality(codec):
    image = photo()
    sizes = []
    for q in (10, 50, 90):
        data = encode_classical(image, codec, q)
        magic = data[:3] == b"\xff\xd8\xff" if codec == "jpeg" else (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        assert magic
        decoded = decode_classical(data, codec)
        assert decoded.shape == image.shape
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert psnr8(decode_classical(encode_classical(image, codec, 90), codec), image) > 30


def test_classical_coder_entries_follow_the_ladder():
    coder = ClassicalCoder("nlm-webp", [20, 60])
    noisy = torch.from_numpy(photo()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    coded = coder.code(noisy)
    assert [e.tag for e in coder.entries] == ["q20", "q60"]
    assert [c.num_bytes * 8 / (96 * 128) for c in coded] == pytest.approx([c.bpp for c in coded])
    assert coded[0].bpp < coded[1].bpp and all(c.x_hat.shape == noisy.shape for c in coded)


@pytest.fixture
def options(tmp_path):
    write_image(tmp_path / "images" / "a.png", photo())
    write_image(tmp_path / "images" / "b.png", np.ascontiguousarray(skimage.data.coffee()[100:200, 100:228]))

    def make(test, datasets=None):
        opt = {"name": "base", "path": {"root": str(tmp_path)}, "network": {"model": "cheng2020-anchor"},
               "datasets": datasets or {"kodak": {"name": "synthetic-test", "root": "images", "level": [4]}},
               "test": test}
        path = tmp_path / "base.yml"
        path.write_text(yaml.safe_dump(opt))
        return load_options(path, is_train=False)

    return make


def test_baseline_reports_over_a_ladder(options, tmp_path):
    ladder = [10, 30, 70]
    reports = evaluate(options({"baselines": ["nlm-jpeg", "nlm-webp", "jpeg"], "baseline_qualities": ladder}),
                       progress=False)
    assert set(reports) == {"kodak_level4"}
    for label, items in reports.items():
        by_name = {r["name"]: r for r in items}
        assert set(by_name) == {"nlm-jpeg", "nlm-webp", "jpeg"}
        for name, report in by_name.items():
            on_disk = json.loads((tmp_path / "results" / "base" / label / f"{name}.json").read_text())
            assert on_disk["results"] == report["results"]
            assert report["quality"] == ladder  # JPEG/WebP rate grows with quality: bpp order = ladder
            res = report["results"]
            assert all(len(res[k]) == 3 for k in ("bpp", "psnr", "ms-ssim", "ms-ssim-db", "encoding_time", "decoding_time"))
            assert all(b > 0 for b in res["bpp"]) and all(np.isfinite(res["psnr"]))
            rows = read_csv(tmp_path / "results" / "base" / label / f"{name}.csv")
            assert len(rows) == 2 * len(ladder)
            for k, q in enumerate(ladder):
                assert res["bpp"][k] == pytest.approx(np.mean([r["bpp"] for r in rows if r["quality"] == q]))
        # denoising first pays off on noisy input at the heaviest level: at the lowest quality the
        # NLM+JPEG file is smaller than JPEG of the noisy image and closer to the clean image
        nlm, raw = by_name["nlm-jpeg"]["results"], by_name["jpeg"]["results"]
        assert nlm["bpp"][0] < raw["bpp"][0] and nlm["psnr"][0] > raw["psnr"][0]


def test_baselines_on_images_without_ground_truth(options):
    reports = evaluate(options({"baselines": ["webp"], "baseline_qualities": [50]},
                               {"photos": {"name": "folder", "root": "images"}}), progress=False)
    report = reports["photos"][0]
    assert set(report["results"]) == {"bpp", "encoding_time", "decoding_time"}


def test_bad_baseline_options(options, monkeypatch):
    with pytest.raises(OptionError, match=r"test.baseline_qualities: got 0, expected integers in 1..100"):
        evaluate(options({"baselines": ["jpeg"], "baseline_qualities": [0, 50]}), progress=False)
    monkeypatch.setattr(baselines, "bm3d_available", lambda: False)
    with pytest.raises(OptionError, match=r"'bm3d-jpeg' needs the bm3d package"):
        evaluate(options({"baselines": ["bm3d-jpeg"]}), progress=False)


def test_baselines_command_runs_without_checkpoint(options, tmp_path, capsys):
    options({})  # writes base.yml
    code = baselines_cmd.main(["-opt", str(tmp_path / "base.yml"), "--methods", "webp", "--qualities", "20", "80",
                           "--set", "datasets.kodak.level=1", "--no-progress"])
    assert code == 0
    report = json.loads((tmp_path / "results" / "base" / "kodak" / "webp.json").read_text())
    assert report["quality"] == [20, 80]


def test_bm3d_when_installed():
    """BM3D is optional (the bm3d package is not a dependency); checked where it is installed."""
    pytest.importorskip("bm3d")
    clean = photo(64, 64)
    rng = np.random.default_rng(2)
    noisy = np.clip(np.round(clean + rng.normal(0, 20, clean.shape)), 0, 255).astype(np.uint8)
    denoised = baselines.denoise_bm3d(noisy)
    assert denoised.dtype == np.uint8 and psnr8(denoised, clean) > psnr8(noisy, clean) + 2
