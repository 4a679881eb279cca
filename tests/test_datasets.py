"""Data sets and image I/O: crops, levels, conversions and every bad-input message, from the
library (messages name the argument) and from option files (messages name the file and key)."""
import inspect
import itertools
import logging

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dic.config.build import build_dataset, expand_levels
from dic.config.schema import DATASET
from dic.data import create_dataset, list_images, read_image, write_image
from dic.data.io import image_size, to_tensor
from dic.data.noise import LEVELS, add_noise
from dic.data.sidd import read_tiled_crop, tile_path
from dic.errors import ArgumentError, DataError, OptionError
from dic.data import DATASETS


def _rand(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def clean(tmp_path):
    """Three random RGB images of different sizes, kept as arrays for comparison."""
    images = {f"im{i}": _rand(40 + 3 * i, 48 - 2 * i, i) for i in range(3)}
    for name, arr in images.items():
        write_image(tmp_path / f"{name}.png", arr)
    return tmp_path, images


def _find(patch, image):
    """All (top, left) where ``patch`` (H×W×3 uint8) sits in ``image``, top to bottom."""
    windows = np.lib.stride_tricks.sliding_window_view(image, patch.shape)
    return [tuple(int(v) for v in pos[:2]) for pos in np.argwhere((windows == patch).all(axis=(-3, -2, -1)))]


def _u8(t):
    return (t.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


# ---- synthetic -------------------------------------------------------------------------------

def test_train_items_are_random_crops_with_noise(clean):
    root, images = clean
    ds = create_dataset("synthetic", root, "train", patch_size=32)
    assert len(ds) == 3 and ds.has_gt and ds.image_name(1) == "im1"
    torch.manual_seed(0)
    positions = set()
    for _ in range(4):
        gt, noisy = ds[0]
        assert gt.shape == noisy.shape == (3, 32, 32) and gt.dtype == noisy.dtype == torch.float32
        assert 0 <= noisy.min() and noisy.max() <= 1 and not torch.equal(gt, noisy)
        found = _find(_u8(gt), images["im0"])
        assert found
        positions.add(found[0])
    assert len(positions) > 1  # the crop moves


def _views(crop, hflip, rot, channel_shuffle):
    """Every view of an H×W×3 crop that the augmentation options allow."""
    views = [crop]
    if hflip:
        views += [v[:, ::-1] for v in views]
    if rot:
        views += [v[::-1] for v in views]
        views = [np.rot90(v, k) for v in views for k in range(4)]
    if channel_shuffle:
        views = [v[:, :, list(order)] for v in views for order in itertools.permutations(range(3))]
    return views


def _is_view_of(patch, image, **augment):
    """Whether ``patch`` is an allowed view of some crop of ``image`` (a crop of the matching
    orientation, looked for in every flipped, turned and re-ordered copy of the image)."""
    return any(_find(patch, view) for view in _views(image, **augment))


@pytest.mark.parametrize("augment", [{"hflip": True, "rot": False, "channel_shuffle": False},
                                     {"hflip": False, "rot": True, "channel_shuffle": False},
                                     {"hflip": True, "rot": True, "channel_shuffle": True}])
def test_augmented_train_crops_are_flipped_turned_and_recoloured_crops(clean, augment):
    root, images = clean
    ds = create_dataset("synthetic", root, "train", patch_size=16, use_hflip=augment["hflip"],
                        use_rot=augment["rot"], channel_shuffle=augment["channel_shuffle"])
    torch.manual_seed(0)
    patches = [_u8(ds[0][0]) for _ in range(12)]
    assert all(_is_view_of(p, images["im0"], **augment) for p in patches)
    plain = [p for p in patches if _find(p, images["im0"])]
    assert len(plain) < len(patches)  # some crops really were transformed
    if augment["channel_shuffle"]:  # the colour order changes: some crop matches only re-ordered
        assert any(not _is_view_of(p, images["im0"], hflip=True, rot=True, channel_shuffle=False) for p in patches)


def test_channel_gain_scales_each_channel_of_a_crop_within_its_range(tmp_path):
    """A flat grey image comes out with one gain per channel, each within exp(±g), and casts
    of both signs; a bad g names the argument."""
    write_image(tmp_path / "grey.png", np.full((24, 24, 3), 100, np.uint8))
    ds = create_dataset("synthetic", tmp_path, "train", patch_size=16, channel_gain=0.4)
    torch.manual_seed(0)
    crops = [_u8(ds[0][0]) for _ in range(20)]
    means = np.array([c.reshape(-1, 3).mean(0) for c in crops])
    assert all((c == c[:1, :1]).all() for c in crops)  # one gain per channel, over the whole crop
    assert (means >= np.floor(100 * np.exp(-0.4))).all() and (means <= np.ceil(100 * np.exp(0.4))).all()
    assert (means < 90).any() and (means > 110).any() and np.ptp(means, axis=1).max() > 20
    for bad in (-0.1, 1.5, True, "0.4"):
        with pytest.raises(ArgumentError, match=r"^channel_gain: expected a number in \[0, 1\]"):
            create_dataset("synthetic", tmp_path, "train", patch_size=16, channel_gain=bad)


def test_augmentation_off_draws_as_before_and_val_ignores_it(clean):
    """With the options off, the crops and noise are those of a data set without them (exact
    resume and earlier runs are unchanged); validation crops are never augmented."""
    root, _ = clean
    ds_plain = create_dataset("synthetic", root, "train", patch_size=16)
    ds_off = create_dataset("synthetic", root, "train", patch_size=16, use_hflip=False, use_rot=False,
                            channel_shuffle=False, channel_gain=0.0)
    torch.manual_seed(5)
    first = [ds_plain[i] for i in range(3)]
    torch.manual_seed(5)
    again = [ds_off[i] for i in range(3)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    val = create_dataset("synthetic", root, "val", patch_size=16)
    val_aug = create_dataset("synthetic", root, "val", patch_size=16, use_hflip=True, use_rot=True,
                             channel_shuffle=True, channel_gain=0.5)
    assert all(torch.equal(val[i][0], val_aug[i][0]) for i in range(3))


def test_val_items_are_centre_crops_with_level_by_index(clean):
    root, images = clean
    ds = create_dataset("synthetic", root, "val", patch_size=32)
    for i, name in enumerate(sorted(images)):
        gt, noisy = ds[i]
        img = images[name]
        top, left = round((img.shape[0] - 32) / 2), round((img.shape[1] - 32) / 2)
        assert np.array_equal(_u8(gt), img[top : top + 32, left : left + 32])
        assert torch.equal(noisy, add_noise(gt, *LEVELS[i % 4 + 1], torch.Generator().manual_seed(i)))


def test_test_items_are_whole_images_seeded_with_zero(clean):
    root, images = clean
    ds = create_dataset("synthetic-test", root, "test", level=2, legacy_gamma=True)
    gt, noisy = ds[2]
    assert np.array_equal(_u8(gt), images["im2"])
    expected = add_noise(gt, *LEVELS[2], torch.Generator().manual_seed(0), legacy_gamma=True)
    assert torch.equal(noisy, expected)
    assert not torch.equal(noisy, add_noise(gt, *LEVELS[2], torch.Generator().manual_seed(0)))


def test_official_layout_root_with_phase_subfolder(clean, tmp_path_factory):
    root, images = clean
    top = tmp_path_factory.mktemp("flicker")
    (top / "train").symlink_to(root, target_is_directory=True)
    ds = create_dataset("synthetic", top, "train", patch_size=32)
    assert len(ds) == 3


def test_levels_arguments(clean):
    root, _ = clean
    with pytest.raises(ArgumentError, match=r"^level: a synthetic test set needs a noise level"):
        create_dataset("synthetic-test", root, "test")
    with pytest.raises(ArgumentError, match=r"^level: noise level must be one of 1, 2, 3, 4, got 5"):
        create_dataset("synthetic-test", root, "test", level=5)
    with pytest.raises(ArgumentError, match=r"^level: one data set takes one noise level, got \[1, 2\]"):
        create_dataset("synthetic-test", root, "test", level=[1, 2])
    with pytest.raises(ArgumentError, match="^patch_size: expected an integer ≥ 1, got 'big'"):
        create_dataset("synthetic", root, "val", patch_size="big")
    with pytest.raises(ArgumentError, match="^mode: expected one of train, val, test, got 'test_kodak'"):
        create_dataset("synthetic", root, "test_kodak", level=1)


def test_levels_from_options(clean):
    root, _ = clean
    base = {"name": "synthetic-test", "root": str(root)}
    parts = expand_levels(dict(base, level=[1, 3]))
    assert [(s, o["level"]) for s, o in parts] == [("_level1", 1), ("_level3", 3)]
    assert expand_levels(dict(base, level=4)) == [("", dict(base, level=4))]
    assert [build_dataset(o, "test_kodak", "x.yml").level for _, o in parts] == [1, 3]
    with pytest.raises(OptionError, match=r"^x\.yml: datasets\.test\.level: a synthetic test set needs a noise level"):
        build_dataset(base, "test", "x.yml")
    with pytest.raises(OptionError, match=r"^x\.yml: datasets\.val\.level: noise level must be one of 1, 2, 3, 4, got 5"):
        build_dataset(dict(base, level=5), "val", "x.yml")
    with pytest.raises(OptionError, match=r"^x\.yml: datasets\.test\.level: one data set takes one noise level"):
        build_dataset(dict(base, level=[1, 2]), "test", "x.yml")
    with pytest.raises(OptionError, match=r"^x\.yml: datasets\.val\.patch_size: got 'big' \(str\), expected an integer"):
        build_dataset({"name": "synthetic", "root": str(root), "patch_size": "big"}, "val", "x.yml")
    with pytest.raises(OptionError, match=r"^x\.yml: datasets\.val\.patch_size: expected an integer ≥ 1, got 0"):
        build_dataset({"name": "synthetic", "root": str(root), "patch_size": 0}, "val", "x.yml")


def test_unknown_dataset_name(clean):
    with pytest.raises(ArgumentError, match=r"^name: unknown dataset 'synthetc' \(did you mean 'synthetic'\?\)"):
        create_dataset("synthetc", clean[0], "train")
    with pytest.raises(OptionError, match=r"^x\.yml: datasets\.train\.name: unknown dataset 'synthetc' "
                                          r"\(did you mean 'synthetic'\?\)"):
        build_dataset({"name": "synthetc", "root": str(clean[0])}, "train", "x.yml")


def test_max_images(clean):
    assert len(create_dataset("synthetic", clean[0], "val", patch_size=32, max_images=2)) == 2
    assert len(build_dataset({"name": "synthetic", "root": str(clean[0]), "patch_size": 32, "max_images": 2},
                             "val_small", "x.yml")) == 2
    with pytest.raises(ArgumentError, match=r"^max_images: expected an integer ≥ 1, got 0"):
        create_dataset("folder", clean[0], "test", max_images=0)


def test_constructor_defaults_are_the_schema_defaults():
    """One place for defaults: every data set argument after (root, mode) is an option key, and
    its library default is the schema's default for that key."""
    checked = 0
    for name in DATASETS.names():
        for arg in list(inspect.signature(DATASETS.get(name)).parameters.values())[2:]:
            assert arg.name in DATASET, f"{name}: argument {arg.name} is no datasets.<phase> option key"
            default = list(arg.default) if isinstance(arg.default, tuple) else arg.default
            assert default == DATASET[arg.name].default, f"{name}.{arg.name}"
            checked += 1
    assert checked >= 10


def test_options_supply_every_argument(clean, monkeypatch):
    """build_dataset passes the schema's value for every argument the class takes, so a library
    default is never what an option file gets."""
    root, _ = clean
    seen = {}
    cls = DATASETS.get("synthetic")
    real = cls.__init__

    def spy(self, root, mode, **kwargs):
        seen.update(kwargs, mode=mode)
        real(self, root, mode, **kwargs)

    monkeypatch.setattr(cls, "__init__", spy)
    monkeypatch.setattr(cls, "__signature__", inspect.signature(real), raising=False)
    build_dataset({"name": "synthetic", "root": str(root), "patch_size": 32}, "val_kodak", "x.yml")
    assert seen == {"mode": "val", "patch_size": 32, "level": None, "legacy_gamma": False, "skip_small": False,
                    "max_images": None, "noise_on_device": False, "noise_log10_read": [-3.0, -1.5],
                    "noise_log10_shot": [-4.0, -2.0], "use_hflip": False, "use_rot": False,
                    "channel_shuffle": False, "channel_gain": 0.0}


# ---- folder ----------------------------------------------------------------------------------

def test_folder_yields_noisy_images_only(clean):
    root, images = clean
    ds = create_dataset("folder", root, "test")
    assert not ds.has_gt and len(ds) == 3 and ds.image_name(0) == "im0"
    item = ds[1]
    assert isinstance(item, torch.Tensor) and np.array_equal(_u8(item), images["im1"])


# ---- bad input -------------------------------------------------------------------------------

def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"^root: no images found in .*empty"):
        create_dataset("synthetic", tmp_path / "empty", "train")
    with pytest.raises(DataError, match=r"^root: image folder .*nowhere does not exist"):
        create_dataset("folder", tmp_path / "nowhere", "test")
    # through an option file: the file and the key
    with pytest.raises(DataError, match=r"^x\.yml: datasets\.train\.root: no images found in .*empty"):
        build_dataset({"name": "synthetic", "root": str(tmp_path / "empty")}, "train", "x.yml")
    with pytest.raises(DataError, match=r"^x\.yml: datasets\.test_real\.root: image folder .*nowhere does not exist"):
        build_dataset({"name": "folder", "root": str(tmp_path / "nowhere")}, "test_real", "x.yml")


def test_unreadable_image_names_itself(clean):
    root, _ = clean
    (root / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"cannot read the size of image .*broken\.png"):
        create_dataset("folder", root, "test")
    with pytest.raises(DataError, match=r"^x\.yml: datasets\.test: cannot read the size of image .*broken\.png"):
        build_dataset({"name": "folder", "root": str(root)}, "test", "x.yml")
    # a good header with a truncated body passes start-up, then fails naming the file
    data = (root / "im0.png").read_bytes()
    (root / "broken.png").write_bytes(data[: len(data) // 3])
    ds = create_dataset("folder", root, "test")
    with pytest.raises(DataError, match=r"cannot decode image .*broken\.png: the file is empty, truncated or not an image"):
        ds[ds.names.index("broken")]


def test_image_smaller_than_patch_is_an_error_or_skipped(clean, caplog):
    root, _ = clean
    write_image(root / "tiny.png", _rand(20, 60))
    with pytest.raises(DataError, match=r"^patch_size: 1 image\(s\) smaller than the patch size 32×32 "
                                        r"\(H×W\): .*tiny\.png is 20×60.*set skip_small"):
        create_dataset("synthetic", root, "train", patch_size=32)
    with pytest.raises(DataError, match=r"^x\.yml: datasets\.train\.patch_size: 1 image\(s\) smaller than the "
                                        r"patch size 32×32 \(H×W\): .*tiny\.png"):
        build_dataset({"name": "synthetic", "root": str(root), "patch_size": 32}, "train", "x.yml")
    with caplog.at_level(logging.WARNING):
        ds = create_dataset("synthetic", root, "train", patch_size=32, skip_small=True)
    assert "tiny" not in ds.names and len(ds) == 3
    assert any("tiny.png" in r.getMessage() and "20×60" in r.getMessage() for r in caplog.records)
    # test sets take whole images: small ones are fine
    assert len(create_dataset("synthetic-test", root, "test", level=1)) == 4
    with pytest.raises(DataError, match="^patch_size: every image in .* is smaller than the patch size 64"):
        create_dataset("synthetic", root, "val", patch_size=64, skip_small=True)


def test_image_conversions_to_8bit_rgb(tmp_path):
    rgb = _rand(10, 12)
    grey = rgb[:, :, 0]
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((10, 12), 7, np.uint8)]), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).quantize(16).save(tmp_path / "palette.png")
    grey16 = grey.astype(np.uint16) * 257 + 100  # 8-bit value v ↦ 257 v + 100 rounds back to v
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), (rgb.astype(np.uint16) * 257)[:, :, ::-1])
    Image.fromarray(np.dstack([grey, grey]), "LA").save(tmp_path / "grey_alpha.png")

    for name in ("grey", "grey16", "grey_alpha"):
        out = read_image(tmp_path / f"{name}.png")
        assert out.dtype == np.uint8 and out.shape == (10, 12, 3)
        assert np.array_equal(out, np.repeat(grey[:, :, None], 3, axis=2)), name
    for name in ("rgba", "rgb16"):
        assert np.array_equal(read_image(tmp_path / f"{name}.png"), rgb), name
    palette = read_image(tmp_path / "palette.png")
    expected = np.asarray(Image.open(tmp_path / "palette.png").convert("RGB"))
    assert palette.shape == (10, 12, 3) and np.array_equal(palette, expected)
    ds = create_dataset("folder", tmp_path, "test")
    assert all(ds[i].shape == (3, 10, 12) for i in range(len(ds)))


def test_write_image_roundtrip_and_atomicity(tmp_path):
    t = torch.rand(1, 3, 9, 11)
    write_image(tmp_path / "a.png", t)
    back = to_tensor(read_image(tmp_path / "a.png"))
    assert torch.allclose(back, t[0], atol=0.5 / 255 + 1e-6)
    assert image_size(tmp_path / "a.png") == (9, 11)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary left behind
    assert list_images(tmp_path) == [tmp_path / "a.png"]


# ---- SIDD tiles -------------------------------------------------------------------------------

def test_tiled_crop_equals_the_crop_of_the_full_image(tmp_path):
    full = _rand(30, 40, 3)
    th, tw = 10, 8
    for r in range(3):
        for c in range(5):
            write_image(tile_path(tmp_path, "X", r, c), full[r * th : (r + 1) * th, c * tw : (c + 1) * tw])
    for top, left, size in [(0, 0, 8), (5, 6, 8), (9, 7, 8), (22, 32, 8), (3, 3, 20)]:
        crop = read_tiled_crop(tmp_path, "X", (th, tw), top, left, size)
        assert np.array_equal(crop, full[top : top + size, left : left + size])


def test_sidd_root_errors_name_the_argument_or_the_key(tmp_path):
    with pytest.raises(DataError, match=r"^root: SIDD annotation file or blocks folder .*nowhere does not exist"):
        create_dataset("sidd", tmp_path / "nowhere", "val")
    with pytest.raises(DataError, match=r"^x\.yml: datasets\.val\.root: SIDD annotation file or blocks folder"):
        build_dataset({"name": "sidd", "root": str(tmp_path / "nowhere")}, "val", "x.yml")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match=r"^x\.yml: datasets\.val_sidd: .*other\.json is not a SIDD annotation"):
        build_dataset({"name": "sidd", "root": str(tmp_path / "other.json")}, "val_sidd", "x.yml")
    with pytest.raises(ArgumentError, match=r"^crops_per_image: expected an integer ≥ 1, got 0"):
        create_dataset("sidd", tmp_path / "other.json", "train", crops_per_image=0)
