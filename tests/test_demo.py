"""The demo (docs/demo.md): held-out photograph lists, the classical envelope, the verdict, the
shipped weights, and a short end-to-end run of scripts/demo.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dic.apps.evaluate.envelope import (GridCoder, config_tag, envelope_report, parse_tag, run_config,
                                        upper_envelope)
from dic.apps.evaluate.rd import bd_psnr, bd_rate, curve
from dic.apps.evaluate.showcase import format_verdict, verdict_rows
from dic.checkpoints.io import TABLE_BUFFERS, has_coding_tables, load_checkpoint
from dic.checkpoints.loading import load_model
from dic.config import build_model, load_options
from dic.config.build import criterion_lambda
from dic.data.prepare import SAMPLES, read_photograph, skimage_data_dir, strip_png_chunks
from repo_scripts import load_script

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights" / "demo"


# ---- photographs ----------------------------------------------------------------------------

def test_sample_lists_are_disjoint_and_installed():
    names = [n for split in SAMPLES.values() for n in split]
    assert len(names) == len(set(names))
    stems = [Path(n).stem for n in names]
    assert len(stems) == len(set(stems))  # one PNG per photograph in data/samples
    assert all((skimage_data_dir() / n).is_file() for n in names)
    assert set(SAMPLES) == {"train", "val", "test"} and all(SAMPLES[s] for s in SAMPLES)
    # the stereo pair is one scene: both halves on the same side
    assert {"motorcycle_left.png", "motorcycle_right.png"} <= set(SAMPLES["train"])


def test_photographs_are_read_without_libpng_warnings():
    src = skimage_data_dir() / "astronaut.png"
    raw = src.read_bytes()
    assert b"iCCP" in raw and b"iCCP" not in strip_png_chunks(raw)
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'codes')!r}); from pathlib import Path; "
            f"from dic.data.prepare import read_photograph; print(read_photograph(Path({str(src)!r})).shape)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "(512, 512, 3)" in proc.stdout
    assert "libpng" not in proc.stderr
    plain = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(read_photograph(src), plain)  # same pixels, only the profile is gone


# ---- the envelope ---------------------------------------------------------------------------

def test_upper_envelope_is_monotone_and_never_below_a_raw_point():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rates = rng.uniform(0.05, 2.0, 60)
        quality = 20 + 5 * np.log(rates) + rng.normal(0, 1.5, 60) - 2 * (rates > 1)  # over-coding drops
        kept = upper_envelope(rates, quality)
        r, q = rates[kept], quality[kept]
        assert np.all(np.diff(r) > 0) and np.all(np.diff(q) > 0)
        inside = (rates >= r[0]) & (rates <= r[-1])
        assert np.all(np.interp(rates[inside], r, q) >= quality[inside] - 1e-12)
        assert r[0] == rates.min()  # the lowest rate is always covered
        bd_rate(r, q, r * 0.9, q)  # runs: the envelope is a valid anchor


def grid_report(points):
    tags = [config_tag(c, m, q) for c, m, q, _, _ in points]
    return {"name": "classical-grid", "dataset": "x", "entries": tags, "quality": [p[2] for p in points],
            "num_images": [1] * len(points), "level": 3, "protocol": "pad",
            "results": {"bpp": [p[3] for p in points], "psnr": [p[4] for p in points]}}


def test_envelope_report_keeps_raw_points_and_works_with_bd():
    points = [("webp", 0.0, 5, 0.30, 24.0), ("webp", 1.0, 5, 0.10, 25.0), ("webp", 1.0, 30, 0.50, 24.5),
              ("jpeg", 1.0, 5, 0.20, 25.5), ("jpeg", 0.5, 30, 0.60, 26.0), ("webp", 0.5, 90, 1.5, 23.0)]
    grid = grid_report(points)
    env = envelope_report(grid, ("jpeg", "webp"), "classical-envelope")
    assert env["entries"] == ["webp-nlm1-q5", "jpeg-nlm1-q5", "jpeg-nlm0.5-q30"]
    assert env["raw"]["entries"] == grid["entries"] and env["raw"]["bpp"] == grid["results"]["bpp"]
    webp = envelope_report(grid, ("webp",), "classical-envelope-webp")
    assert webp["entries"] == ["webp-nlm1-q5"]
    assert parse_tag("jpeg-none-q30") == ("jpeg", 0.0, 30)
    r, q = curve(env)
    assert bd_psnr(r, q, r, q + 1.0) == pytest.approx(1.0)


def test_grid_coder_codes_every_configuration_really():
    image = np.ascontiguousarray(cv2.resize(read_photograph(skimage_data_dir() / "chelsea.png"), (96, 64)))
    noisy = np.clip(image + np.random.default_rng(1).normal(0, 15, image.shape), 0, 255).astype(np.uint8)
    coder = GridCoder((0.0, 1.0), codecs=("jpeg", "webp"), qualities=(10, 60))
    coded = coder.code(torch.from_numpy(noisy).permute(2, 0, 1).float().div(255).unsqueeze(0))
    assert len(coded) == len(coder.entries) == 8
    for entry, c in zip(coder.entries, coded):
        decoded, size = run_config(noisy, entry.tag)  # the demo's sheets re-run one configuration
        assert size == c.num_bytes and c.bpp == pytest.approx(8 * size / (96 * 64))
        assert np.array_equal((c.x_hat[0].permute(1, 2, 0) * 255).round().byte().numpy(), decoded)


def test_verdict_reports_missing_overlap_instead_of_crashing():
    env = {"name": "classical-envelope", "level": 3, "results": {"bpp": [0.1, 0.2, 0.3], "psnr": [24, 25, 26]}}
    joint = {"name": "snr-decomp", "level": 3, "results": {"bpp": [0.5, 0.7, 0.9], "psnr": [20, 21, 22]}}
    codec = {"name": "cheng2020-anchor", "level": 3, "results": {"bpp": [0.1, 0.3, 0.6], "psnr": [19, 20, 21]}}
    rows = verdict_rows({"samples_level3": [env, joint, codec]}, "snr-decomp", "cheng2020-anchor")
    assert rows[0]["envelope"].psnr is None and rows[0]["envelope"].psnr_note == "no overlap"
    assert rows[0]["codec"].psnr is not None and rows[0]["met"] is False
    text = format_verdict(rows, "snr-decomp", "cheng2020-anchor")
    assert "no overlap" in text and "NOT MET" in text


# ---- shipped weights ------------------------------------------------------------------------

def check_weights(path: Path) -> None:
    """A demo weight file loads strictly, is the model, hyper-parameters and λ of its option file,
    and carries its coding tables."""
    opt_file = REPO / "conf" / "train" / f"{path.stem}.yml"
    assert opt_file.is_file(), f"{path} has no option file {opt_file}"
    opt = load_options(opt_file)
    ckpt = load_checkpoint(path)
    model = load_model(path)  # strict: missing / unexpected keys or shapes raise
    expected = build_model(opt.network, str(opt_file))
    assert ckpt["model"] == opt.network.model == model.name
    assert dict(model.hparams) == dict(expected.hparams)
    weights = {k: v.shape for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] not in TABLE_BUFFERS}
    assert weights == {k: v.shape for k, v in expected.state_dict().items() if k.rsplit(".", 1)[-1] not in TABLE_BUFFERS}
    assert has_coding_tables(model), f"{path} stores no coding tables"
    assert ckpt["lambda_metric"] == pytest.approx(criterion_lambda(opt.network, str(opt_file)))
    assert ckpt["option_file"] == f"conf/train/{path.stem}.yml"


@pytest.mark.parametrize("path", sorted(WEIGHTS.glob("*.pth")), ids=lambda p: p.name)
def test_shipped_weights_match_their_option_files(path):
    check_weights(path)


def test_shipped_weights_are_complete_and_small():
    files = sorted(WEIGHTS.glob("*.pth"))
    if not files:
        pytest.skip("no shipped demo weights (scripts/demo.py trains with its step budget)")
    assert sorted(p.stem for p in files) == sorted(f"demo_{k}_l{i}" for k in ("joint", "codec") for i in (1, 2, 3))
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20


# ---- end to end -----------------------------------------------------------------------------

def test_demo_retrains_exports_and_writes_reports_plot_and_sheets(tmp_path):
    weights = tmp_path / "weights"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--retrain", "--steps", "2",
                           "--levels", "3", "--quick", "--out", str(tmp_path), "--weights", str(weights),
                           "--jobs", "2", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "target (BD-PSNR > 0 against the classical envelope at level(s) 3)" in proc.stdout
    for path in sorted(weights.glob("*.pth")):
        check_weights(path)
    assert len(list(weights.glob("*.pth"))) == 6
    for kind in ("joint", "codec"):  # the outer rate points start from the middle one, trained first
        anchor = tmp_path / "experiments" / f"demo_{kind}_l2" / "checkpoints" / "best.pth"
        for point in (1, 3):
            log = (tmp_path / "experiments" / f"demo_{kind}_l{point}.train.log").read_text()
            assert "warm start: copied" in log and str(anchor) in log
    results = tmp_path / "results" / "demo"
    level = results / "samples_level3"
    for name in ("snr-decomp", "cheng2020-anchor", "classical-grid", "classical-envelope",
                 "classical-envelope-jpeg", "classical-envelope-webp"):
        report = json.loads((level / f"{name}.json").read_text())
        assert report["level"] == 3 and report["protocol"] == "pad"
    joint = json.loads((level / "snr-decomp.json").read_text())
    assert len(joint["entries"]) == 3 and not joint["estimation"]  # a curve, really coded
    envelope = json.loads((level / "classical-envelope.json").read_text())
    assert np.all(np.diff(envelope["results"]["bpp"]) > 0) and np.all(np.diff(envelope["results"]["psnr"]) > 0)
    assert len(envelope["raw"]["entries"]) == 2 * 2 * 3
    for image in ("rd.png", "sheet_samples_level3.png"):
        assert cv2.imread(str(results / image)) is not None
    assert "libpng warning" not in proc.stderr


# ---- the shipped ladders ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from dic.data.prepare import prepare_samples

    root = tmp_path_factory.mktemp("samples")
    prepare_samples(root, show_progress=False)
    return root


def _ladder_violations(kind: str, samples: Path):
    check_ladder = load_script("check_ladder")
    ladder = [str(WEIGHTS / f"demo_{kind}_l{i}.pth") for i in (1, 2, 3)]
    if not all(Path(p).is_file() for p in ladder):
        pytest.skip("no shipped demo weights")
    table = {c: check_ladder.rates(c, samples, ["train", "val"], [3]) for c in ladder}
    return check_ladder.violations(ladder, table)


def test_shipped_codec_ladder_spends_fewer_bits_at_lower_lambda(samples):
    """On every training and validation photograph (never a test one), at noise level 3."""
    assert _ladder_violations("codec", samples) == []


def test_shipped_joint_ladder_spends_fewer_bits_at_lower_lambda(samples):
    assert _ladder_violations("joint", samples) == []
