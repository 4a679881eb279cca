"""Noise synthesis: statistics per level, the two sRGB curves, batching and determinism."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dic.data import create_dataset, write_image
from dic.data.noise import (
    LEVELS,
    add_noise,
    add_noise_linear,
    level_params,
    linear_to_srgb,
    sample_noise_params,
    srgb_to_linear,
)
from dic.errors import ArgumentError


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_levels_are_the_published_table():
    assert LEVELS == {
        1: (0.0068354, 0.05200081**2),
        2: (0.01572141, 0.07886314**2),
        3: (0.03615925, 0.11960187**2),
        4: (0.08316627, 0.18138522**2),
    }
    with pytest.raises(ArgumentError, match=r"^level: noise level must be one of 1, 2, 3, 4, got 5"):
        level_params(5)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_flat_grey_std_in_linear_light_matches_model(level):
    """Through the whole sRGB pipeline: grey at linear 0.5, measured back in linear light."""
    sigma_read, sigma_shot = LEVELS[level]
    lin = 0.5
    gt = torch.full((3, 256, 256), float(linear_to_srgb(torch.tensor(lin, dtype=torch.float64))))
    noisy = add_noise(gt.double(), sigma_read, sigma_shot, _gen(level))
    measured = srgb_to_linear(noisy).std().item()
    expected = math.sqrt(sigma_read**2 + sigma_shot * lin)
    assert abs(measured / expected - 1) < 0.03
    assert abs(srgb_to_linear(noisy).mean().item() - lin) < 0.01


@pytest.mark.parametrize("level", [1, 2, 3, 4])
@pytest.mark.parametrize("lin", [0.02, 0.2, 0.9])
def test_linear_noise_std_for_several_grey_values(level, lin):
    sigma_read, sigma_shot = LEVELS[level]
    noisy = add_noise_linear(torch.full((3, 128, 128), lin), sigma_read, sigma_shot, _gen(7))
    expected = math.sqrt(sigma_read**2 + sigma_shot * lin)
    assert abs(noisy.std().item() / expected - 1) < 0.03


def test_curves_follow_the_spec_and_differ():
    v = torch.tensor([0.002, 0.02, 0.5, 1.0], dtype=torch.float64)
    # standard (IEC 61966-2-1)
    std_lin = [0.002 / 12.92, 0.02 / 12.92, ((0.5 + 0.055) / 1.055) ** 2.4, 1.0]
    # official variant: threshold 0.0031308 and (v + 0.055)^2.4 / 1.055
    leg_lin = [0.002 / 12.92, 0.075**2.4 / 1.055, 0.555**2.4 / 1.055, 1.055**2.4 / 1.055]
    assert torch.allclose(srgb_to_linear(v), torch.tensor(std_lin, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(srgb_to_linear(v, legacy=True), torch.tensor(leg_lin, dtype=torch.float64), atol=1e-12)
    x = torch.tensor([0.002, 0.2, 1.0], dtype=torch.float64)
    std_srgb = [12.92 * 0.002, 1.055 * 0.2 ** (1 / 2.4) - 0.055, 1.0]
    leg_srgb = [12.92 * 0.002, 1.055 * 0.201 ** (1 / 2.4) - 0.055, 1.055 * 1.001 ** (1 / 2.4) - 0.055]
    assert torch.allclose(linear_to_srgb(x), torch.tensor(std_srgb, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(linear_to_srgb(x, legacy=True), torch.tensor(leg_srgb, dtype=torch.float64), atol=1e-12)
    # between the two thresholds (0.0031308 < v ≤ 0.04045) the standard curve is still linear,
    # the legacy one already a power law, 22 % brighter at 0.02
    ratio = srgb_to_linear(torch.tensor(0.02), legacy=True) / srgb_to_linear(torch.tensor(0.02))
    assert 1.2 < ratio.item() < 1.25


def test_standard_pair_inverts_exactly():
    v = torch.linspace(0, 1, 10001, dtype=torch.float64)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-7)
    assert torch.allclose(srgb_to_linear(linear_to_srgb(v)), v, atol=1e-12)


def test_legacy_pair_is_only_an_approximate_inverse():
    """The legacy functions undo each other only roughly: below 0.0031308 exactly, above it the
    un-normalised curve brightens a round trip by about 0.011 (at 0.1) to 0.034 (at white; it sends
    white to 1.055^1.4 ≈ 1.078 in linear light). Noisy images made with it are biased brighter."""
    v = torch.linspace(0, 1, 1001, dtype=torch.float64)
    shift = linear_to_srgb(srgb_to_linear(v, True), True) - v
    assert torch.equal(shift[v <= 0.003], torch.zeros_like(shift[v <= 0.003]))
    assert shift.min() >= 0 and shift.max() < 0.035
    assert shift[500] > 0.015  # mid-grey comes back visibly brighter
    assert srgb_to_linear(torch.tensor(1.0, dtype=torch.float64), True).item() == pytest.approx(1.055**1.4)


def test_legacy_noise_matches_the_official_recipe_bit_for_bit():
    """The official releases draw with torch.normal(lin, std, generator) on a CHW float32 tensor."""
    gt = torch.rand(3, 33, 47, generator=_gen(1))
    sigma_read, sigma_shot = LEVELS[3]
    thr = 0.0031308
    lin = torch.where(gt > thr, torch.pow(gt + 0.055, 2.4) / 1.055, gt / 12.92)
    sr = torch.tensor(sigma_read, dtype=torch.float32)
    ss = torch.tensor(sigma_shot, dtype=torch.float32)
    noisy_lin = torch.normal(lin, torch.sqrt(sr**2 + lin * ss), generator=_gen(5))
    pos = noisy_lin > thr
    ref = torch.where(pos, 1.055 * torch.pow(noisy_lin.clamp_min(thr) + 0.001, 1.0 / 2.4) - 0.055, noisy_lin * 12.92)
    ref = ref.clamp(0, 1)
    ours = add_noise(gt, sigma_read, sigma_shot, _gen(5), legacy_gamma=True)
    assert torch.equal(ours, ref)
    assert not torch.equal(ours, add_noise(gt, sigma_read, sigma_shot, _gen(5)))


def test_batched_noise_uses_one_level_per_image():
    sr, ss = torch.tensor([LEVELS[1][0], LEVELS[4][0]]), torch.tensor([LEVELS[1][1], LEVELS[4][1]])
    lin = torch.full((2, 3, 128, 128), 0.3)
    noisy = add_noise_linear(lin, sr, ss, _gen(0))
    for i in range(2):
        expected = math.sqrt(sr[i].item() ** 2 + ss[i].item() * 0.3)
        assert abs(noisy[i].std().item() / expected - 1) < 0.03
    gt = torch.rand(2, 3, 16, 16)
    out = add_noise(gt.half(), sr, ss, _gen(0))
    assert out.dtype == torch.float16 and out.shape == gt.shape
    assert out.min() >= 0 and out.max() <= 1


def test_training_parameters_are_log_uniform_in_range():
    sr, ss = sample_noise_params(_gen(0), n=4000)
    assert sr.shape == (4000,) and ss.shape == (4000,)
    lr, ls = torch.log10(sr), torch.log10(ss)
    assert lr.min() >= -3 and lr.max() <= -1.5 and ls.min() >= -4 and ls.max() <= -2
    assert abs(lr.mean().item() - (-2.25)) < 0.03 and abs(ls.mean().item() - (-3.0)) < 0.04
    one = sample_noise_params(_gen(3))
    assert isinstance(one[0], float) and one == sample_noise_params(_gen(3))



def test_a_wider_training_range_covers_levels_3_and_4(image_folder):
    """The demo's ranges reach level 4 (σ_read 10^-1.08, σ_shot 10^-1.48), which the papers'
    distribution never draws; a data set passes its ranges to every training item."""
    sr, ss = sample_noise_params(_gen(0), n=4000, log10_read=(-3.0, -1.0), log10_shot=(-4.0, -1.4))
    lr, ls = torch.log10(sr), torch.log10(ss)
    assert lr.min() >= -3 and lr.max() <= -1 and ls.min() >= -4 and ls.max() <= -1.4
    assert (sr > LEVELS[4][0]).any() and (ss > LEVELS[4][1]).any()
    ds = create_dataset("synthetic", image_folder, "train", patch_size=32,
                        noise_log10_read=[-1.1, -1.0], noise_log10_shot=[-1.5, -1.4])
    torch.manual_seed(0)
    for i in range(len(ds)):
        (read, shot), _ = ds.noise_params(i)
        assert 10**-1.1 <= read <= 10**-1.0 and 10**-1.5 <= shot <= 10**-1.4


@pytest.mark.parametrize("value, why", [([-1.0, -2.0], "low ≤ high ≤ 0"), ([-1.0, 0.5], "low ≤ high ≤ 0"),
                                        ([-2.0], "two numbers"), ("wide", "two numbers"),
                                        ([-2.0, float("nan")], "finite")])
def test_bad_training_ranges_name_the_argument(image_folder, value, why):
    with pytest.raises(ArgumentError, match=rf"^noise_log10_shot: expected .*{why}"):
        create_dataset("synthetic", image_folder, "train", patch_size=32, noise_log10_shot=value)

# ---- determinism across runs and worker counts --------------------------------------------

@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for i in range(6):
        write_image(root / f"img{i}.png", rng.integers(0, 256, (40 + i, 44, 3), dtype=np.uint8))
    return root


def _collect(ds, workers, seed=None, batch_size=2):
    if seed is not None:
        torch.manual_seed(seed)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False)
    return [n.clone() for _, n in loader]


def test_val_and_test_noise_same_for_any_run_and_worker_count(image_folder):
    for name, mode, kwargs, batch in (("synthetic", "val", {"patch_size": 32}, 2),
                                      ("synthetic-test", "test", {"level": 3}, 1)):
        a = _collect(create_dataset(name, image_folder, mode, **kwargs), 0, seed=1, batch_size=batch)
        b = _collect(create_dataset(name, image_folder, mode, **kwargs), 2, seed=2, batch_size=batch)  # any seed
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_validation_seeds_by_index_and_cycles_levels(image_folder):
    ds = create_dataset("synthetic", image_folder, "val", patch_size=32)
    for i in range(len(ds)):
        (params, gen) = ds.noise_params(i)
        assert params == LEVELS[i % 4 + 1]
        gt, noisy = ds[i]
        assert torch.equal(noisy, add_noise(gt, *LEVELS[i % 4 + 1], torch.Generator().manual_seed(i)))


def test_training_reproducible_given_the_global_seed(image_folder):
    ds = create_dataset("synthetic", image_folder, "train", patch_size=32)
    a = _collect(ds, 2, seed=123)
    b = _collect(ds, 2, seed=123)
    c = _collect(ds, 2, seed=124)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    d = _collect(ds, 0, seed=123)
    e = _collect(ds, 0, seed=123)
    assert all(torch.equal(x, y) for x, y in zip(d, e))


@pytest.mark.cuda
def test_cpu_generator_gives_the_same_noise_on_the_gpu():
    gt = torch.rand(2, 3, 32, 32)
    cpu = add_noise(gt, *LEVELS[2], _gen(0))
    gpu = add_noise(gt.cuda(), *LEVELS[2], _gen(0))
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-5)
