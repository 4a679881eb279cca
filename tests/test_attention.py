"""The SNR block's attention through ``F.scaled_dot_product_attention`` against the explicit
softmax(q·kᵀ/√E + mask)·v of the official release: equal outputs and gradients, masked keys
with exactly zero weight, uniform weights when every key is masked, and no L×L buffer."""
from __future__ import annotations

import math

import pytest
import torch

from dic.models import layers
from dic.models.layers import MaskedTransformer, masked_attention


def explicit(q, k, v, key_mask):
    """softmax(q·kᵀ/√E with masked keys at −1e9)·v, materialised (the official computation)."""
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, None, :], -1e9)
    return torch.softmax(logits, dim=-1) @ v


def _qkv(b=2, h=3, n=37, e=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, e, generator=g, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_explicit_computation(dtype):
    q, k, v = _qkv(dtype=dtype)
    mask = torch.rand(2, 37, generator=torch.Generator().manual_seed(1)) > 0.4
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(masked_attention(q, k, v, mask), explicit(q, k, v, mask), atol=tol, rtol=tol)
    torch.testing.assert_close(masked_attention(q, k, v, None), explicit(q, k, v, None), atol=tol, rtol=tol)


def test_masked_keys_get_zero_weight():
    q, k, v = _qkv()
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[0, ::3] = False
    mask[1, 5:] = False
    out = masked_attention(q, k, v, mask)
    k2, v2 = k.clone(), v.clone()
    drop = ~mask[:, None, :, None].expand_as(k)
    k2[drop] = 1e3 * torch.randn(int(drop.sum()))  # whatever the masked keys and values hold
    v2[drop] = 1e3 * torch.randn(int(drop.sum()))
    assert torch.equal(masked_attention(q, k2, v2, mask), out)
    # the same as attention over the kept keys alone
    kept = explicit(q[1:], k[1:, :, :5], v[1:, :, :5], None)
    torch.testing.assert_close(out[1:], kept, atol=1e-5, rtol=1e-5)


def test_all_keys_masked_is_uniform():
    q, k, v = _qkv()
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[1] = False  # image 1 keeps no key
    out = masked_attention(q, k, v, mask)
    uniform = v[1].mean(dim=-2, keepdim=True).expand_as(v[1])
    torch.testing.assert_close(out[1], uniform, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out[1], explicit(q, k, v, mask)[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0], explicit(q, k, v, mask)[0], atol=1e-5, rtol=1e-5)


def test_gradients_equal_explicit():
    q, k, v = (t.requires_grad_() for t in _qkv(n=20))
    mask = torch.rand(2, 20, generator=torch.Generator().manual_seed(2)) > 0.5
    mask[1] = False
    weights = torch.randn(2, 3, 20, 16)
    grads = torch.autograd.grad((masked_attention(q, k, v, mask) * weights).sum(), (q, k, v))
    expected = torch.autograd.grad((explicit(q, k, v, mask) * weights).sum(), (q, k, v))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_transformer_equals_explicit_attention(monkeypatch):
    torch.manual_seed(0)
    net = MaskedTransformer(dim=32, num_layers=2, num_heads=2, head_dim=8).eval()
    x = torch.randn(2, 25, 32)
    mask = torch.rand(2, 25) > 0.5
    mask[1] = False
    with torch.no_grad():
        ours = net(x, mask)
        monkeypatch.setattr(layers, "masked_attention", explicit)
        reference = net(x, mask)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_no_quadratic_buffer():
    """No operation allocates anything near the L×L attention matrix (memory linear in L)."""
    n, heads = 2048, 2
    q, k, v = _qkv(b=1, h=heads, n=n, e=16)
    mask = torch.rand(1, n, generator=torch.Generator().manual_seed(3)) > 0.5
    matrix_bytes = heads * n * n * 4  # 32 MiB
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        masked_attention(q, k, v, mask)
    largest = max(e.self_cpu_memory_usage for e in prof.key_averages())
    assert 0 < largest < matrix_bytes / 8, largest
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        explicit(q, k, v, mask)
    assert max(e.self_cpu_memory_usage for e in prof.key_averages()) >= matrix_bytes  # the check can fail
