"""``test.protocol: official``: the releases' measurement (truncated 8-bit PSNR, the blur of the
uncropped photo, float noisy input, bytes × 8 / cropped area), checked against hand computations
and against a small re-implementation of the releases' test loop on a converted official
checkpoint."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import yaml
from torchvision.transforms import ToPILImage

from dic.apps.evaluate.coders import ModelCoder, EntryInfo
from dic.apps.evaluate.protocol import measure, prepare_sample, release_blur
from dic.apps.evaluate.reports import read_csv
from dic.apps.evaluate.runner import evaluate
from dic.checkpoints.official import to_official_state_dict
from dic.config import load_options
from dic.data import create_dataset
from dic.data.io import read_image, write_image
from dic.errors import DataError
from dic.metrics import quantize_8bit
from dic.models import create_model, snr_map
from dic.models.layers import box_blur
from dic.models.snr import SNRDecomp

# head_dim 64 (the official width per head): an official file stores only heads × width
TINY_OFFICIAL = dict(N=16, num_layers=1, num_heads=1, head_dim=64)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Two photographs whose sides are not multiples of 64, and a synthetic official evaluation
    checkpoint (bare state dict in the release's key layout, coder tables filled)."""
    root = tmp_path_factory.mktemp("official")
    write_image(root / "images" / "astronaut.png", skimage.data.astronaut()[90:190, 120:270])  # 100×150
    write_image(root / "images" / "coffee.png", skimage.data.coffee()[60:160, 200:300])  # 100×100
    torch.manual_seed(5)
    model = create_model("snr-decomp", **TINY_OFFICIAL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval().update(force=True)
    torch.save(to_official_state_dict(model), root / "official_snr.pth")
    return root, model


def options(root: Path, name: str, protocol: str, **test):
    opt = {"name": name, "path": {"root": str(root), "checkpoint": ["official_snr.pth"]},
           "network": {"model": "snr-decomp"},
           "datasets": {"kodak": {"name": "synthetic-test", "root": "images", "level": 3}},
           "test": {"protocol": protocol, **test}}
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(opt))
    return load_options(path, is_train=False)


def dataset(root: Path):
    return create_dataset("synthetic-test", str(root / "images"), "test", level=3)


def centre(h: int, w: int):
    """The release's geometry: the centre (H − H mod 64) × (W − W mod 64) window."""
    ch, cw = h // 64 * 64, w // 64 * 64
    top, left = (h - ch) // 2, (w - cw) // 2
    return slice(top, top + ch), slice(left, left + cw)


def test_truncation_psnr_by_hand():
    """Half the pixels at k + 1.6 (truncated: k + 1, rounded: k + 2), half at k + 0.4 (both: k):
    MSE 0.5 by truncation, 2 by rounding, so the official PSNR is 10·log10(255² / 0.5) and
    exactly 10·log10(4) = 6.02 dB above the rounding protocols' figure on this pair."""
    rng = np.random.default_rng(0)
    k = rng.integers(0, 250, size=(3, 16, 16)).astype(np.float32)
    offset = np.full(3 * 16 * 16, 0.4, np.float32)
    offset[::2] = 1.6
    offset = offset.reshape(3, 16, 16)
    gt = torch.from_numpy(k / 255).unsqueeze(0)
    x_hat = torch.from_numpy((k + offset) / 255).unsqueeze(0)
    official = measure(x_hat, gt, "official")["psnr"]
    rounded = measure(x_hat, gt, "pad")["psnr"]
    assert official == pytest.approx(10 * math.log10(255**2 / 0.5), abs=1e-9)
    assert rounded == pytest.approx(10 * math.log10(255**2 / 2.0), abs=1e-6)
    assert official - rounded == pytest.approx(10 * math.log10(4), abs=1e-6)


def test_official_blurs_the_uncropped_image(workspace, monkeypatch):
    """The blur the model receives under ``official`` is cv2.blur of the whole noisy photo,
    cropped; blurring the crop instead differs exactly on its 2-pixel border."""
    root, _ = workspace
    seen = []
    original = SNRDecomp.denoise_context

    def recording(self, x, blur=None):
        context = original(self, x, blur)
        seen.append((x.clone(), None if blur is None else blur.clone(), context.clone()))
        return context

    monkeypatch.setattr(SNRDecomp, "denoise_context", recording)
    evaluate(options(root, "blur", "official"), progress=False)
    data = dataset(root)
    assert len(seen) == len(data) == 2
    for i, (x, blur, context) in enumerate(seen):
        _, noisy = data[i]
        full = noisy.permute(1, 2, 0).numpy()
        rows, cols = centre(*full.shape[:2])
        expected = cv2.blur(full * 255.0, (5, 5))[rows, cols] / 255.0
        np.testing.assert_array_equal(blur[0].permute(1, 2, 0).numpy(), expected)
        np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), full[rows, cols])  # float, not rounded
        of_crop = cv2.blur(np.ascontiguousarray(full[rows, cols]) * 255.0, (5, 5)) / 255.0
        differs = np.abs(of_crop - expected).max(axis=2) > 1e-6
        border = np.ones(differs.shape, bool)
        border[2:-2, 2:-2] = False
        assert differs[~border].sum() == 0 and differs[border].mean() > 0.9
        # and the model's SNR map is the one of that blur, not of its own
        assert torch.equal(context, snr_map(x, blur=blur)) and not torch.equal(context, snr_map(x))


def test_default_protocol_keeps_the_model_blur(workspace, monkeypatch):
    """``pad`` and ``crop`` pass no blur: the model blurs what it codes, as before."""
    root, _ = workspace
    seen = []
    original = SNRDecomp.denoise_context
    monkeypatch.setattr(SNRDecomp, "denoise_context", lambda self, x, *blur: seen.append(blur) or original(self, x))
    evaluate(options(root, "crop_blur", "crop"), progress=False)
    assert seen == [(), ()]


def test_official_codes_the_float_noisy_input(workspace):
    """The noisy input is not rounded: the coded result equals coding the float crop, and
    rounding it first would have given another result."""
    root, model = workspace
    gt, noisy = dataset(root)[1]  # coffee, 100×100 → 64×64
    sample = prepare_sample((gt, noisy), True, "official", "coffee")
    rows, cols = centre(100, 100)
    assert torch.equal(sample.noisy[0], noisy[:, rows, cols])
    assert not torch.equal(sample.noisy, quantize_8bit(sample.noisy))
    coder = ModelCoder(model, EntryInfo("q"), "snr-decomp", False, torch.device("cpu"))
    coded = coder.code(sample.noisy, sample.blur)[0]
    as_float = model.compress(sample.noisy, blur=sample.blur)
    x_float = model.decompress(as_float["strings"], as_float["shape"])["x_hat"].clamp(0, 1)
    assert torch.equal(coded.x_hat, x_float)
    assert coded.num_bytes == sum(len(s[0]) for s in as_float["strings"])
    # rounding would change what the encoder computes (this tiny model's latents are too small
    # for it to change the quantised symbols, so compare the latent itself)
    with torch.no_grad():
        y_float = model(sample.noisy, blur=sample.blur)["y"]
        y_8bit = model(quantize_8bit(sample.noisy), blur=sample.blur)["y"]
    assert not torch.equal(y_float, y_8bit)
    # the pad protocol, by contrast, rounds the input
    assert torch.equal(prepare_sample((gt, noisy), True, "pad", "coffee").noisy[0], quantize_8bit(noisy))
    assert torch.equal(release_blur(noisy.unsqueeze(0))[..., rows, cols], sample.blur)


def test_converted_official_checkpoint_matches_the_release_loop(workspace):
    """Per image, the evaluator's PSNR, bpp and saved PNG under ``official`` equal the release's
    test loop written out here: crop, blur the uncropped image, compress / decompress with the
    original weights, ToPILImage (truncation) of both images, PSNR on the 8-bit arrays,
    bytes × 8 / cropped area."""
    root, original = workspace
    report = evaluate(options(root, "release", "official", save_images=True), progress=False)["kodak"][0]
    assert report["protocol"] == "official"
    rows = {r["image"]: r for r in read_csv(Path(report["_csv"]))}
    assert {r["protocol"] for r in rows.values()} == {"official"}
    data = dataset(root)
    to_pil = ToPILImage()
    for i in range(len(data)):
        gt, noisy = data[i]
        name = data.image_name(i)
        full = noisy.permute(1, 2, 0).numpy()
        blur = cv2.blur(full * 255.0, (5, 5)) / 255.0
        r, c = centre(*full.shape[:2])
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a[r, c].transpose(2, 0, 1))).unsqueeze(0)
        enc = original.compress(as_tensor(full), blur=as_tensor(blur))
        x_hat = original.decompress(enc["strings"], enc["shape"])["x_hat"].clamp(0, 1)
        decoded = np.array(to_pil(x_hat[0]), dtype=np.float64)
        clean = np.array(to_pil(gt[:, r, c]), dtype=np.float64)
        psnr = 10 * math.log10(255**2 / np.mean((decoded - clean) ** 2))
        h, w = x_hat.shape[-2:]
        bpp = 8 * sum(len(s) for strings in enc["strings"] for s in strings) / (h * w)
        row = rows[name]
        assert (row["height"], row["width"]) == (h, w)
        assert row["psnr"] == pytest.approx(psnr, abs=1e-9)
        assert row["bpp"] == bpp
        saved = read_image(Path(report["_json"]).parent / "images" / "snr-decomp" / row["entry"] / f"{name}.png")
        np.testing.assert_array_equal(saved, decoded.astype(np.uint8))
    assert report["results"]["psnr"][0] == pytest.approx(np.mean([r["psnr"] for r in rows.values()]))


def test_the_model_own_blur_given_explicitly_changes_no_byte(workspace):
    """``compress(x, blur=box_blur(x))`` is ``compress(x)``: the new argument only replaces the
    blur the model computes itself; a blur of the wrong shape is refused."""
    _, model = workspace
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(4))
    assert model.compress(x, blur=box_blur(x))["strings"] == model.compress(x)["strings"]
    with pytest.raises(DataError, match=r"blur: shape \(1, 3, 64, 64\) differs from noisy \(1, 3, 64, 128\)"):
        model.compress(x, blur=x[..., :64])


def test_measure_differences_script_prints_every_block(tmp_path):
    """scripts/measure_differences.py (the figures of docs/reproducing.md §6) runs on any folder."""
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate(((100, 130), (64, 64))):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    script = Path(__file__).resolve().parents[1] / "scripts" / "measure_differences.py"
    out = subprocess.run([sys.executable, str(script), "--root", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for block in ("truncation", "rounded to 8 bits", "uncropped", "sRGB curves", "level 4"):
        assert block in out.stdout
    assert "100×130 → 64×128" in out.stdout
    empty = subprocess.run([sys.executable, str(script), "--root", str(tmp_path / "none")], capture_output=True, text=True)
    assert empty.returncode == 2 and "no images" in empty.stderr
