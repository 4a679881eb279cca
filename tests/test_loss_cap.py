"""``train.loss_cap_mode: zero_grad`` is the releases' capped step (docs/reproducing.md, "loss
cap"): the gradients of both optimizers are zeros and both Adams step, so the weights and the
quantiles move by Adam's moments alone, whatever the installed PyTorch's ``zero_grad()`` does.
Checked against Adam written out by hand, on the host path and the sync-free one, on a tiny
second-network snr-decomp (whose frozen ``*_CC`` convolutions must not move)."""
from __future__ import annotations

from typing import Dict

import pytest
import torch

from dic.apps.train.step import TrainStep, build_optimizers, fill_zeros
from dic.losses import RateDistortionLoss
from dic.models import apply_context_masks, create_model

NET = dict(N=16, num_layers=1, num_heads=2, head_dim=8, branch_width="full")


def stepper(sync_free: bool) -> TrainStep:
    torch.manual_seed(0)
    model = create_model("snr-decomp", **NET).train()
    apply_context_masks(model)
    optimizer, aux_optimizer = build_optimizers(model, lr=1e-3, lr_aux=1e-2)
    return TrainStep(model, RateDistortionLoss("mse", 0.0067, "l1", 3.0), optimizer, aux_optimizer,
                     device=torch.device("cpu"), loss_cap=1e4, loss_cap_mode="zero_grad", sync_free_cap=sync_free)


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(2, 3, 64, 64, generator=g)
    return gt, (gt + 0.05 * torch.randn(gt.shape, generator=g)).clamp(0, 1)


def adam_on_zero_gradients(optimizer: torch.optim.Optimizer) -> Dict[int, torch.Tensor]:
    """Each parameter of ``optimizer`` after one Adam step (no weight decay, no AMSGrad) on a zero
    gradient, by hand: the moments decay (m ← β1·m, v ← β2·v) and the parameter moves by
    lr·m̂/(√v̂ + ε) with the bias corrections of the next step count. A parameter Adam holds no
    state for (it never had a gradient) stays where it is."""
    expected = {}
    for group in optimizer.param_groups:
        (beta1, beta2), lr, eps = group["betas"], group["lr"], group["eps"]
        assert group["weight_decay"] == 0 and not group["amsgrad"]
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                expected[id(p)] = p.detach().clone()
                continue
            t = int(state["step"]) + 1
            m_hat = beta1 * state["exp_avg"] / (1 - beta1 ** t)
            v_hat = beta2 * state["exp_avg_sq"] / (1 - beta2 ** t)
            expected[id(p)] = p.detach() - lr * m_hat / (v_hat.sqrt() + eps)
    return expected


def steps(optimizer: torch.optim.Optimizer) -> Dict[int, int]:
    return {id(p): int(s["step"]) for p, s in optimizer.state.items()}


@pytest.mark.parametrize("sync_free", [False, True], ids=["host", "sync-free"])
@pytest.mark.parametrize("bad", ["nan", "above-cap"])
def test_capped_step_is_adam_on_zero_gradients_for_both_optimizers(sync_free, bad):
    run = stepper(sync_free)
    gt, noisy = batch()
    torch.manual_seed(1)
    warm = run(gt, noisy)  # Adam has moments from here on
    assert not warm.capped and (warm.capped_flag is None or not bool(warm.capped_flag))
    model = run.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected_main, expected_aux = adam_on_zero_gradients(run.optimizer), adam_on_zero_gradients(run.aux_optimizer)
    counts = {**steps(run.optimizer), **steps(run.aux_optimizer)}
    if bad == "nan":
        noisy = noisy.clone().fill_(float("nan"))
    else:
        run.loss_cap = 1e-3

    torch.manual_seed(2)
    result = run(gt, noisy)
    assert (bool(result.capped_flag) if sync_free else result.capped)

    expected = {**expected_main, **expected_aux}
    # the step re-applies the context model's mask, as the releases' next forward pass does
    mask = model.context_prediction.mask
    expected[id(model.context_prediction.weight)] *= mask
    for name, p in model.named_parameters():
        if id(p) not in expected:  # in neither optimizer: the frozen *_CC convolutions, which stay
            assert "_proj." in name and not p.requires_grad, name
            expected[id(p)] = before[name]
        torch.testing.assert_close(p.detach(), expected[id(p)], rtol=1e-6, atol=1e-9, msg=name)
    assert {**steps(run.optimizer), **steps(run.aux_optimizer)} == {k: v + 1 for k, v in counts.items()}
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert {"entropy_bottleneck.quantiles", "g_s.0.conv1.weight", "snr_block_1.fusion.mlp_beta.weight"} <= moved
    assert not {n for n in moved if "_proj." in n}  # the frozen, unused *_CC convolutions
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_capped_step_moves_what_pytorch_2_zero_grad_would_freeze():
    """The point of filling zeros by hand: Adam skips a parameter whose gradient is None, so
    PyTorch 2's ``zero_grad()`` (set_to_none) would leave every weight in place."""
    run = stepper(False)
    gt, noisy = batch()
    run(gt, noisy)
    reference = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    run.optimizer.zero_grad()  # set_to_none in PyTorch 2
    run.optimizer.step()
    assert all(torch.equal(p, reference[n]) for n, p in run.model.named_parameters())
    run.loss_cap = 1e-3
    assert run(gt, noisy).capped
    assert sum(not torch.equal(p, reference[n]) for n, p in run.model.named_parameters()) > 10


def test_fill_zeros_leaves_absent_gradients_absent():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    a.grad = torch.tensor([1.0, float("nan"), -2.0])
    fill_zeros([a, b], True)
    assert torch.equal(a.grad, torch.zeros(3)) and b.grad is None
    a.grad = torch.ones(3)
    fill_zeros([a, b], torch.tensor(False))
    assert torch.equal(a.grad, torch.ones(3))
    fill_zeros([a, b], torch.tensor(True))
    assert torch.equal(a.grad, torch.zeros(3)) and b.grad is None
    a.grad = torch.ones(3)
    fill_zeros([a], False)
    assert torch.equal(a.grad, torch.ones(3))
