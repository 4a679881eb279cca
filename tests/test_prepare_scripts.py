"""The preparation scripts end to end on generated fixtures, then the loaders on what they wrote."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from dic.data import create_dataset, read_image, write_image
from dic.data.prepare import SAMPLES
from dic.data.sidd import CAMERA_GEOMETRY, tile_path
from dic.errors import ArgumentError, DataError
from repo_scripts import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["flicker_process", "sidd_block", "sidd_tile_annotations", "prepare_samples"]


def _run(name, *args):
    return load_script(name).main([*map(str, args), "--no-progress"])


def _rand(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in Path(folder).rglob("*") if p.is_file()}


def test_every_script_has_help_and_repo_relative_defaults(tmp_path):
    for name in SCRIPTS:
        out = subprocess.run([sys.executable, str(REPO / "scripts" / f"{name}.py"), "--help"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert out.returncode == 0 and "usage:" in out.stdout, out.stderr
    assert load_script("prepare_samples").build_parser().parse_args([]).out == REPO / "data" / "samples"
    assert load_script("flicker_process").build_parser().parse_args([]).src == REPO / "data/flicker/flicker_2W_images"


# ---- Flicker ---------------------------------------------------------------------------------

@pytest.fixture()
def flicker(tmp_path):
    src = tmp_path / "flicker" / "flicker_2W_images"
    src.mkdir(parents=True)
    sizes = {}
    for i in range(12):
        h, w = (256, 260) if i % 4 else (200, 300)  # every 4th image is too small
        Image.fromarray(_rand(h, w, i)).save(src / f"{i:05d}.jpg", quality=90)
        sizes[f"{i:05d}.jpg"] = (h, w)
    return tmp_path / "flicker", sizes


@pytest.mark.parametrize("copy", [False, True])
def test_flicker_process_filters_sorts_splits_and_is_idempotent(flicker, capsys, copy):
    top, sizes = flicker
    args = ["--src", top / "flicker_2W_images", "--train", top / "train", "--val", top / "val"] + (["--copy"] if copy else [])
    assert _run("flicker_process", *args) == 0
    kept = sorted(n for n, (h, w) in sizes.items() if min(h, w) >= 256)
    train, val = sorted(os.listdir(top / "train")), sorted(os.listdir(top / "val"))
    assert train == kept[:8] and val == kept[8:]  # 9 kept: round(0.99·9) = 9, clamped to 8 so that 1 validates
    linked = os.path.samefile(top / "train" / train[0], top / "flicker_2W_images" / train[0])
    assert linked is (not copy)
    assert "8 train / 1 val images, 3 under 256 px left out; placed 9 file(s)" in capsys.readouterr().out
    before = _mtimes(top / "train")
    assert _run("flicker_process", *args) == 0
    assert "nothing to do" in capsys.readouterr().out and _mtimes(top / "train") == before
    ds = create_dataset("synthetic", top, "train", patch_size=256)
    assert len(ds) == 8 and ds[0][0].shape == (3, 256, 256)
    assert len(create_dataset("synthetic", top, "val", patch_size=256)) == 1


@pytest.mark.parametrize("n, n_train", [
    (120, 119),  # 118.8: rounds up (a floor gives 118)
    (250, 248),  # 247.5: half-way, to the even 248 (a floor gives 247)
    (150, 148),  # 148.5: half-way, to the even 148 (rounding half up gives 149)
    (51, 50),    # 50.49
])
def test_flicker_split_is_pythons_round_of_099_n(tmp_path, capsys, n, n_train):
    """The official preparation keeps the first round(0.99·n) sorted images for training, with
    Python's round (half-way products go to the even integer)."""
    src = tmp_path / "src"
    src.mkdir()
    names = [f"{i:05d}.png" for i in range(n)]
    for i, name in enumerate(reversed(names)):  # written out of order: the split sorts by name
        Image.fromarray(_rand(8, 8, i)).save(src / name)
    assert _run("flicker_process", "--src", src, "--train", tmp_path / "train", "--val", tmp_path / "val",
                "--min-size", 8) == 0
    assert sorted(os.listdir(tmp_path / "train")) == names[:n_train]
    assert sorted(os.listdir(tmp_path / "val")) == names[n_train:]
    assert f"{n_train} train / {n - n_train} val images" in capsys.readouterr().out


def test_flicker_process_errors(tmp_path, capsys):
    assert _run("flicker_process", "--src", tmp_path / "missing", "--train", tmp_path / "t", "--val", tmp_path / "v") == 2
    assert "error: Flicker image folder" in capsys.readouterr().err
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "bad.jpg").write_bytes(b"garbage")
    assert _run("flicker_process", "--src", tmp_path / "src", "--train", tmp_path / "t", "--val", tmp_path / "v") == 2
    assert "cannot read the size of image" in capsys.readouterr().err


# ---- SIDD blocks -------------------------------------------------------------------------------

N_IMG, N_BLK, BS = 2, 3, 32
SCENES = ["0009_001_S6_00800_00350_3200_L", "0011_001_GP_00400_00100_5500_N"]


@pytest.fixture()
def sidd_zips(tmp_path):
    """The three benchmark .mat files in the real layout, small (2 images × 3 blocks × 32×32×3)."""
    zips = tmp_path / "SIDD" / "SIDD_Benchmark_zips"
    zips.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = {}
    for stem in ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb", "BenchmarkNoisyBlocksSrgb"):
        arrays[stem] = rng.integers(0, 256, (N_IMG, N_BLK, BS, BS, 3), dtype=np.uint8)
        scipy.io.savemat(zips / f"{stem}.mat", {stem: arrays[stem]})
    bench = tmp_path / "SIDD" / "SIDD_Benchmark_Data"
    for s in SCENES:
        (bench / s).mkdir(parents=True)
    return tmp_path / "SIDD", arrays


def test_sidd_block_writes_blocks_and_is_idempotent(sidd_zips, capsys):
    sidd, arrays = sidd_zips
    args = ["--mat-dir", sidd / "SIDD_Benchmark_zips", "--benchmark-data", sidd / "SIDD_Benchmark_Data",
            "--out", sidd / "SIDD_Benchmark_Data_Blocks"]
    assert _run("sidd_block", *args) == 0
    blocks = sidd / "SIDD_Benchmark_Data_Blocks"
    assert sorted(os.listdir(blocks / "SIDD_Validation")) == SCENES
    assert len(list((blocks / "SIDD_Validation").rglob("*.png"))) == 2 * N_IMG * N_BLK
    assert np.array_equal(read_image(blocks / "SIDD_Validation" / SCENES[1] / "0011_GT_SRGB_02.png"),
                          arrays["ValidationGtBlocksSrgb"][1, 2])
    assert np.array_equal(read_image(blocks / "SIDD_Test" / SCENES[0] / "0009_NOISY_SRGB_01.png"),
                          arrays["BenchmarkNoisyBlocksSrgb"][0, 1])
    capsys.readouterr()
    before = _mtimes(blocks)
    assert _run("sidd_block", *args) == 0
    assert "nothing to do" in capsys.readouterr().out and _mtimes(blocks) == before
    # the blocks folder reads directly as a data set too
    ds = create_dataset("sidd", blocks / "SIDD_Validation", "val")
    assert ds.has_gt and len(ds) == N_IMG * N_BLK and ds.image_name(4) == "0011_01"


def test_sidd_block_without_scene_folders_uses_indices(sidd_zips):
    sidd, _ = sidd_zips
    out = sidd / "blocks_by_index"
    assert _run("sidd_block", "--mat-dir", sidd / "SIDD_Benchmark_zips", "--benchmark-data", sidd / "none", "--out", out) == 0
    assert sorted(os.listdir(out / "SIDD_Test")) == ["0000", "0001"]
    assert (out / "SIDD_Test" / "0001" / "0001_NOISY_SRGB_02.png").is_file()


def test_sidd_block_errors(sidd_zips, tmp_path, capsys):
    sidd, _ = sidd_zips
    zips = sidd / "SIDD_Benchmark_zips"
    base = ["--benchmark-data", sidd / "none", "--out", tmp_path / "out"]
    bad = tmp_path / "bad"
    bad.mkdir()
    scipy.io.savemat(bad / "BenchmarkNoisyBlocksSrgb.mat", {"Blocks": np.zeros((1, 1, 4, 4, 3), np.uint8)})
    assert _run("sidd_block", "--mat-dir", bad, *base) == 2
    assert "holds no array named 'BenchmarkNoisyBlocksSrgb' (found: Blocks)" in capsys.readouterr().err
    scipy.io.savemat(bad / "BenchmarkNoisyBlocksSrgb.mat", {"BenchmarkNoisyBlocksSrgb": np.zeros((2, 4, 4, 3), np.uint8)})
    assert _run("sidd_block", "--mat-dir", bad, *base) == 2
    assert "is a uint8 array of shape (2, 4, 4, 3); expected uint8 of shape images × blocks" in capsys.readouterr().err
    assert _run("sidd_block", "--mat-dir", zips, "--benchmark-data", sidd / "SIDD_Benchmark_Data" / SCENES[0],
                "--out", tmp_path / "out") == 2
    assert "has 0 scene folders but the .mat files hold 2 images" in capsys.readouterr().err
    with pytest.raises(DataError, match="none of ValidationNoisyBlocksSrgb.mat"):
        from dic.data.sidd_prepare import sidd_blocks
        sidd_blocks(tmp_path / "out", tmp_path / "out2", show_progress=False)


# ---- SIDD-Medium tiles + annotations -------------------------------------------------------------

#: one scaled-down geometry per camera: (rows, cols, tile h, tile w)
SMALL = {"S6": [3, 4, 12, 14], "GP": [2, 4, 20, 12], "N6": [3, 3, 12, 13], "G4": [3, 3, 12, 16], "IP": [3, 3, 12, 12]}


@pytest.fixture()
def sidd_medium(sidd_zips):
    """A fake SIDD-Medium tree: one scene folder per camera code, two pairs each, real naming."""
    sidd, arrays = sidd_zips
    data = sidd / "SIDD_Medium_Srgb" / "Data"
    originals = {}
    seed = 0
    for k, (cam, (rows, cols, th, tw)) in enumerate(SMALL.items()):
        inst = f"{k + 1:04d}"
        folder = data / f"{inst}_{k + 1:03d}_{cam}_00100_00060_3200_L"
        folder.mkdir(parents=True)
        for entry in ("010", "011"):
            for kind in ("GT", "NOISY"):
                seed += 1
                img = _rand(rows * th, cols * tw, seed=seed)
                write_image(folder / f"{inst}_{kind}_SRGB_{entry}.PNG", img)
                originals[(f"{inst}_{entry}", kind)] = img
    geometry = sidd / "geometry.json"
    geometry.write_text(json.dumps(SMALL))
    return sidd, arrays, originals


def _tile_args(sidd):
    return ["--medium", sidd / "SIDD_Medium_Srgb" / "Data", "--tiles", sidd / "SIDD_Medium_Srgb_Tiles",
            "--blocks", sidd / "SIDD_Benchmark_Data_Blocks", "--annotations", sidd / "annotations",
            "--geometry-json", sidd / "geometry.json"]


def test_sidd_pipeline_end_to_end(sidd_medium, capsys):
    sidd, arrays, originals = sidd_medium
    assert _run("sidd_block", "--mat-dir", sidd / "SIDD_Benchmark_zips", "--benchmark-data",
                sidd / "SIDD_Benchmark_Data", "--out", sidd / "SIDD_Benchmark_Data_Blocks") == 0
    assert _run("sidd_tile_annotations", *_tile_args(sidd)) == 0
    ann = sidd / "annotations"
    assert sorted(os.listdir(ann)) == ["sidd_medium_srgb_test.json", "sidd_medium_srgb_train.json",
                                       "sidd_medium_srgb_val.json"]
    train = json.loads((ann / "sidd_medium_srgb_train.json").read_text())
    assert train["kind"] == "tiles" and len(train["entries"]) == 10
    s6 = train["entries"][0]
    assert s6["camera"] == "S6" and s6["grid"] == [3, 4] and s6["tile_size"] == [12, 14] and s6["size"] == [36, 56]
    tile_dir = sidd / "SIDD_Medium_Srgb_Tiles" / s6["scene"]
    assert (tile_dir / "0001_GT_SRGB_010_03_04.png").is_file() and len(os.listdir(tile_dir)) == 4 * 12
    assert np.array_equal(read_image(tile_dir / "0001_NOISY_SRGB_011_02_03.png"),
                          originals[("0001_011", "NOISY")][12:24, 28:42])

    # second run: nothing to do, nothing rewritten
    capsys.readouterr()
    before = _mtimes(sidd / "SIDD_Medium_Srgb_Tiles") | _mtimes(ann)
    assert _run("sidd_tile_annotations", *_tile_args(sidd)) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (_mtimes(sidd / "SIDD_Medium_Srgb_Tiles") | _mtimes(ann)) == before

    # train loader: random crops read from the tiles equal crops of the original images
    ds = create_dataset("sidd", ann / "sidd_medium_srgb_train.json", "train", patch_size=12, crops_per_image=3)
    assert len(ds) == 30 and ds.has_gt and ds.image_name(4) == "0001_011"
    for index in (0, 4, 17, 29):
        entry = train["entries"][index // 3]
        torch.manual_seed(index)
        gt, noisy = ds[index]
        torch.manual_seed(index)
        h, w = entry["size"]
        top, left = int(torch.randint(0, h - 11, (1,))), int(torch.randint(0, w - 11, (1,)))
        for kind, item in (("GT", gt), ("NOISY", noisy)):
            ref = originals[(entry["id"], kind)][top : top + 12, left : left + 12]
            assert np.array_equal((item.permute(1, 2, 0) * 255).round().byte().numpy(), ref)

    # val: noisy + ground truth blocks; test: noisy blocks only
    val = create_dataset("sidd", ann / "sidd_medium_srgb_val.json", "val")
    gt, noisy = val[N_BLK + 1]
    assert np.array_equal((gt.permute(1, 2, 0) * 255).round().byte().numpy(), arrays["ValidationGtBlocksSrgb"][1, 1])
    assert np.array_equal((noisy.permute(1, 2, 0) * 255).round().byte().numpy(), arrays["ValidationNoisyBlocksSrgb"][1, 1])
    test = create_dataset("sidd", ann / "sidd_medium_srgb_test.json", "test")
    assert not test.has_gt and len(test) == N_IMG * N_BLK and test.block_index(5) == (1, 2)
    item = test[5]
    assert isinstance(item, torch.Tensor)
    assert np.array_equal((item.permute(1, 2, 0) * 255).round().byte().numpy(), arrays["BenchmarkNoisyBlocksSrgb"][1, 2])
    with pytest.raises(ArgumentError, match="^root: .*sidd_medium_srgb_test.json has no ground truth, so it cannot train"):
        create_dataset("sidd", ann / "sidd_medium_srgb_test.json", "train")


def test_sidd_tiles_size_mismatch_names_the_file(sidd_medium, capsys):
    sidd, _, _ = sidd_medium
    bad = sidd / "SIDD_Medium_Srgb" / "Data" / "0003_003_N6_00100_00060_3200_L" / "0003_NOISY_SRGB_011.PNG"
    write_image(bad, _rand(36, 40))
    assert _run("sidd_tile_annotations", *_tile_args(sidd)) == 2
    err = capsys.readouterr().err
    assert f"SIDD image {bad} is 36×40 (H×W) but camera N6 images must be 36×39 (3×3 tiles of 12×13)" in err
    assert not (sidd / "SIDD_Medium_Srgb_Tiles").exists()  # checked before anything is written


def test_sidd_tiles_real_geometry_is_the_default(sidd_medium, capsys):
    sidd, _, _ = sidd_medium
    args = [a for a in _tile_args(sidd) if a not in ("--geometry-json", sidd / "geometry.json")]
    assert _run("sidd_tile_annotations", *args) == 2
    assert "camera S6 images must be 3000×5328 (6×9 tiles of 500×592)" in capsys.readouterr().err
    assert CAMERA_GEOMETRY["GP"] == (4, 8, 761, 506)


def test_sidd_tiles_bad_tree(tmp_path, capsys):
    data = tmp_path / "Data"
    (data / "0001_001_XX_00100_00060_3200_L").mkdir(parents=True)
    args = ["--medium", data, "--tiles", tmp_path / "t", "--blocks", tmp_path / "b", "--annotations", tmp_path / "a"]
    assert _run("sidd_tile_annotations", *args) == 2
    assert "names camera 'XX'; known cameras: G4, GP, IP, N6, S6" in capsys.readouterr().err
    (data / "0001_001_XX_00100_00060_3200_L").rename(data / "scene1")
    assert _run("sidd_tile_annotations", *args) == 2
    assert "SIDD folder 'scene1' is not named <instance>_<scene>_<camera>" in capsys.readouterr().err
    folder = data / "scene1"
    folder.rename(data / "0001_001_IP_00100_00060_3200_L")
    write_image(data / "0001_001_IP_00100_00060_3200_L" / "0001_GT_SRGB_010.PNG", _rand(8, 8))
    assert _run("sidd_tile_annotations", *args) == 2
    err = capsys.readouterr().err
    assert "0001_GT_SRGB_010.PNG has no noisy partner" in err and "0001_NOISY_SRGB_010.PNG" in err


def test_sidd_missing_tile_is_named(sidd_medium):
    sidd, _, _ = sidd_medium
    assert _run("sidd_tile_annotations", *_tile_args(sidd)) == 0
    scene = "0002_002_GP_00100_00060_3200_L"
    missing = tile_path(sidd / "SIDD_Medium_Srgb_Tiles" / scene, "0002_GT_SRGB_010", 1, 2)
    missing.unlink()
    with pytest.raises(DataError, match=rf"SIDD tile .*{missing.name} is missing; run scripts/sidd_tile_annotations.py"):
        create_dataset("sidd", sidd / "annotations" / "sidd_medium_srgb_train.json", "train", patch_size=12)


# ---- samples --------------------------------------------------------------------------------

def test_prepare_samples_real_photographs(tmp_path, capsys):
    out = tmp_path / "samples"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_samples.py"), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {split: sorted(os.listdir(out / split)) for split in ("train", "val", "test")}
    assert names == {split: sorted(f"{Path(n).stem}.png" for n in SAMPLES[split]) for split in SAMPLES}
    assert "libpng warning" not in proc.stderr  # ICC profiles dropped at preparation
    camera = Image.open(out / "test" / "camera.png")
    assert camera.mode == "RGB" and camera.size == (512, 512)  # grey source stored as 8-bit RGB
    arr = np.asarray(camera)
    assert np.array_equal(arr[:, :, 0], arr[:, :, 2])
    before = _mtimes(out)
    assert _run("prepare_samples", "--out", out) == 0
    assert "nothing to do" in capsys.readouterr().out and _mtimes(out) == before
    ds = create_dataset("synthetic", out, "train", patch_size=128)
    assert ds.names == sorted(Path(n).stem for n in SAMPLES["train"])
    assert ds[0][0].shape == (3, 128, 128)
