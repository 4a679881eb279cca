"""The training-throughput switches (``train.channels_last``, ``fused_adam``, ``sync_free_cap``,
``compile``, ``datasets.train.noise_on_device``; README "Training"), each against the plain step
on a tiny model on the CPU: equal, or equal within the stated tolerance. Exact resume with the
CPU switches on is in test_train.py (``step-throughput-switches``)."""
from __future__ import annotations

import copy
import logging

import cv2
import numpy as np
import pytest
import torch

from dic.apps.train.setup import select_channels_last
from dic.apps.train.step import TrainStep, build_optimizers
from dic.config.build import build_criterion
from dic.data import create_dataset
from dic.data.noise import add_noise, add_noise_seeded, srgb_to_linear
from dic.data.samplers import SeededItems
from dic.errors import ArgumentError
from dic.models import apply_context_masks, create_model

NET = {"model": "cheng2020-anchor", "N": 8, "criterions": {"criterion_fea": None}, "lambdas": {"lambda_metric": 0.01}}


def _batch(seed: int = 0, n: int = 2, size: int = 64):
    g = torch.Generator().manual_seed(seed)
    gt = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(size, size), mode="bilinear")
    return gt, add_noise(gt, 0.02, 1e-3, generator=g)


def _step(model=None, seed: int = 0, fused: bool = False, device: str = "cpu", **kwargs):
    """A TrainStep on its own copy of a tiny cheng2020-anchor (seeded weights) on ``device``."""
    if model is None:
        torch.manual_seed(seed)
        model = create_model("cheng2020-anchor", N=8)
        apply_context_masks(model)
    model = copy.deepcopy(model).train().to(device)
    optimizer, aux = build_optimizers(model, 1e-3, 1e-3, fused=fused)
    kwargs.setdefault("loss_cap", 1e4)
    return TrainStep(model, build_criterion(NET, "test"), optimizer, aux, device=torch.device(device), **kwargs)


def _run(step: TrainStep, batches, seed: int = 1):
    torch.manual_seed(seed)  # the same quantisation noise for every variant
    return [step(gt, noisy) for gt, noisy in batches]


def _max_diff(a: TrainStep, b: TrainStep) -> float:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa
               if sa[k].is_floating_point() and sa[k].numel())


def _same_states(a: TrainStep, b: TrainStep) -> bool:
    """Same weights and the same states of both optimizers (main and auxiliary)."""
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa) and all(
        _same_optimizer(x, y) for x, y in ((a.optimizer, b.optimizer), (a.aux_optimizer, b.aux_optimizer)))


def _same_optimizer(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> bool:
    opt_a, opt_b = a.state_dict()["state"], b.state_dict()["state"]
    return opt_a.keys() == opt_b.keys() and all(
        torch.equal(v, opt_b[i][k]) for i, st in opt_a.items() for k, v in st.items())


def test_fused_adam_equals_the_default_kernel():
    """Tolerance: 1e-6 on every weight after 3 steps (the fused kernel rounds differently)."""
    batches = [_batch(i) for i in range(3)]
    plain, fused = _step(), _step(fused=True)
    assert fused.optimizer.param_groups[0]["fused"] and not plain.optimizer.param_groups[0].get("fused")
    losses = [[float(r.terms["loss"]) for r in _run(s, batches)] for s in (plain, fused)]
    assert losses[0][0] == losses[1][0] and np.allclose(losses[0], losses[1], rtol=1e-5)
    assert 0 < _max_diff(plain, fused) < 1e-6 or _same_states(plain, fused)


@pytest.mark.parametrize("bad", ["nan", "above-cap", "none"])
def test_sync_free_cap_equals_zero_grad_exactly(bad):
    """Bit for bit the plain ``zero_grad`` step (weights and both Adams' states, the quantiles'
    included), for a good step and a capped one, with the flag left on the device."""
    gt, noisy = _batch()
    plain = _step(loss_cap_mode="zero_grad")
    sync_free = _step(loss_cap_mode="zero_grad", sync_free_cap=True)
    _run(plain, [(gt, noisy)])
    warm = _run(sync_free, [(gt, noisy)])[0]  # Adam has moments from here on
    assert warm.capped_flag is not None and not bool(warm.capped_flag) and not warm.capped
    if bad == "nan":
        noisy = noisy.clone().fill_(float("nan"))
    elif bad == "above-cap":
        plain.loss_cap = sync_free.loss_cap = 1e-3
    a = _run(plain, [(gt, noisy)], seed=2)[0]
    b = _run(sync_free, [(gt, noisy)], seed=2)[0]
    assert a.capped == (bad != "none") == bool(b.capped_flag)
    assert b.capped_flag.device.type == "cpu" and b.capped_flag.dtype == torch.bool
    assert _same_states(plain, sync_free)
    assert torch.equal(a.terms["aux_loss"], b.terms["aux_loss"])


def test_sync_free_cap_needs_zero_grad_mode():
    with pytest.raises(ArgumentError, match="sync_free_cap: needs loss_cap_mode zero_grad"):
        _step(sync_free_cap=True)


def test_channels_last_forward_equals_contiguous_and_is_ignored_on_the_cpu(caplog):
    """Forward only on the CPU (torch 2.14.1 crashes in channels_last's backward pass there):
    the same loss terms within 1e-5 relative; the trainer ignores the switch on the CPU."""
    torch.manual_seed(0)
    model = create_model("cheng2020-anchor", N=8).eval()
    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    gt, noisy = _batch()
    criterion = build_criterion(NET, "test")
    with torch.no_grad():
        a = criterion(model(noisy), gt)
        b = criterion(last(noisy.contiguous(memory_format=torch.channels_last)), gt)
    assert last.g_a[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k
    with caplog.at_level(logging.WARNING, logger="dic"):
        assert select_channels_last(True, torch.device("cpu"), logging.getLogger("dic")) is False
    assert "ignored on the CPU" in caplog.text
    assert select_channels_last(False, torch.device("cpu"), logging.getLogger("dic")) is False


def test_noise_on_device_item_and_step(tmp_path):
    """The item carries the plain item's crop and noise parameters (same item seed); the step
    draws the noise from the item's seed on its device, exactly as ``add_noise_seeded``; the
    draws are the training distribution (unit-variance residuals)."""
    rng = np.random.default_rng(0)
    (tmp_path / "train").mkdir()
    for i in range(2):
        image = cv2.resize(rng.random((6, 6, 3)), (80, 80), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(tmp_path / "train" / f"im{i}.png"), np.clip(image * 255, 0, 255).astype(np.uint8))
    plain = SeededItems(create_dataset("synthetic", tmp_path / "train", "train", patch_size=64))
    device = SeededItems(create_dataset("synthetic", tmp_path / "train", "train", patch_size=64, noise_on_device=True))
    gt, noisy = plain[(1, 1234)]
    gt2, spec = device[(1, 1234)]
    assert torch.equal(gt, gt2) and device[(1, 1234)][1]["seed"] == spec["seed"]
    batch = torch.utils.data.default_collate([device[(i, 99 + i)] for i in range(2)])
    step_a, step_b = _step(), _step()
    a = step_a.inputs(*batch)[1]
    expected = add_noise_seeded(batch[0], batch[1]["sigma_read"], batch[1]["sigma_shot"], batch[1]["seed"].tolist())
    assert torch.equal(a, expected) and not torch.equal(a, batch[0])
    ra, rb = _run(step_a, [batch]), _run(step_b, [(batch[0], expected)])
    assert torch.equal(ra[0].terms["loss"], rb[0].terms["loss"]) and _same_states(step_a, step_b)
    # unit-variance residuals in linear light where nothing clips
    sr, ss = 0.03, 1e-3
    flat = torch.full((1, 3, 128, 128), 0.5)
    out = add_noise_seeded(flat, torch.tensor([sr]), torch.tensor([ss]), [7])
    lin, lin0 = srgb_to_linear(out), srgb_to_linear(flat)
    z = (lin - lin0) / torch.sqrt(sr**2 + lin0 * ss)
    assert abs(float(z.std()) - 1) < 0.03 and abs(float(z.mean())) < 0.03
    with pytest.raises(ArgumentError, match="noise_on_device: only a training set"):
        create_dataset("synthetic", tmp_path / "train", "val", patch_size=64, noise_on_device=True)


def test_compile_equals_eager():
    """``compile``: the same step through torch.compile (here the ``aot_eager`` backend: dynamo
    and AOTAutograd without C++ code generation, which the option's inductor adds); the loss
    equal within 1e-5 relative, the weights within 1e-6 after one step."""
    gt, noisy = _batch()
    eager, compiled = _step(), _step(compile="aot_eager")
    assert compiled.forward is not compiled.net
    a, b = _run(eager, [(gt, noisy)])[0], _run(compiled, [(gt, noisy)])[0]
    assert torch.allclose(a.terms["loss"], b.terms["loss"], rtol=1e-5)
    assert _max_diff(eager, compiled) < 1e-6


@pytest.mark.cuda
def test_cuda_switches_against_the_plain_step():
    """On CUDA: channels_last (backward included) within 1e-4 of the plain step's loss, bf16
    autocast within 5 % (the transforms in bfloat16), fused Adam within 1e-6 of the weights,
    sync-free equal to zero_grad, noise drawn on the device deterministic per seed."""
    cuda = torch.device("cuda")
    gt, noisy = _batch()

    def step(**kwargs):
        return _step(device="cuda", **kwargs)

    plain = step()
    base = _run(plain, [(gt, noisy)])[0].terms["loss"]
    for kwargs, tol in (({"channels_last": True}, 1e-4), ({"amp_dtype": torch.bfloat16}, 5e-2)):
        other = _run(step(**kwargs), [(gt, noisy)])[0].terms["loss"]
        assert torch.allclose(other, base, rtol=tol), (kwargs, float(other), float(base))
    fused = step(fused=True)
    _run(fused, [(gt, noisy)])
    assert _max_diff(plain, fused) < 1e-6
    a, b = step(loss_cap_mode="zero_grad"), step(loss_cap_mode="zero_grad", sync_free_cap=True)
    _run(a, [(gt, noisy)])
    assert _run(b, [(gt, noisy)])[0].capped_flag.device.type == "cuda"
    assert _same_states(a, b)
    sigma = torch.tensor([0.02, 0.03], dtype=torch.float64)
    one = add_noise_seeded(gt.to(cuda), sigma, sigma / 10, [5, 6])
    assert one.device.type == "cuda" and torch.equal(one, add_noise_seeded(gt.to(cuda), sigma, sigma / 10, [5, 6]))
