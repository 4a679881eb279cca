"""Synthetic camera noise: heteroscedastic read + shot noise added in linear light (docs/data.md §1).

``noisy = clamp(linear→sRGB(N(lin, sqrt(σ_read² + σ_shot·lin))), 0, 1)`` with ``lin = sRGB→linear(gt)``.
The standard IEC 61966-2-1 curves are the default; ``legacy=True`` selects the variant the official
releases used (their published figures were made with it). Every function works on CHW or BCHW
tensors on any device. With a seeded CPU ``generator`` the noise is identical on CPU and GPU, and in
legacy mode it is bit-identical to the official releases' ``torch.normal`` draws.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

from ..errors import ArgumentError

#: The four fixed test levels: level → (σ_read, σ_shot). σ_read is a standard deviation, σ_shot a
#: variance-like factor that multiplies the linear signal.
LEVELS = {
    1: (0.0068354, 0.05200081**2),
    2: (0.01572141, 0.07886314**2),
    3: (0.03615925, 0.11960187**2),
    4: (0.08316627, 0.18138522**2),
}

#: The papers' training distribution: log10 σ_read ~ U(−3, −1.5), log10 σ_shot ~ U(−4, −2), fresh per
#: image. Levels 3 and 4 lie outside it (docs/data.md §1); a data set may widen it.
TRAIN_LOG10_READ = (-3.0, -1.5)
TRAIN_LOG10_SHOT = (-4.0, -2.0)

_LIN_KNEE = 0.0031308  # linear-light threshold of the sRGB curve
_SRGB_KNEE = 0.04045  # sRGB-side threshold of the standard curve

Sigma = Union[float, torch.Tensor]


def level_params(level: int) -> Tuple[float, float]:
    """(σ_read, σ_shot) of a test level 1–4; an :class:`ArgumentError` naming ``level`` otherwise."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise ArgumentError(f"noise level must be one of 1, 2, 3, 4, got {level!r}", argument="level")
    return LEVELS[level]


def srgb_to_linear(x: torch.Tensor, legacy: bool = False) -> torch.Tensor:
    """sRGB → linear light. Standard: ``v/12.92`` up to 0.04045, else ``((v+0.055)/1.055)^2.4``.
    Legacy (official releases): threshold 0.0031308 and ``(v+0.055)^2.4 / 1.055``."""
    if legacy:
        high = torch.pow(x.clamp_min(_LIN_KNEE) + 0.055, 2.4) / 1.055
        return torch.where(x > _LIN_KNEE, high, x / 12.92)
    high = torch.pow((x.clamp_min(_SRGB_KNEE) + 0.055) / 1.055, 2.4)
    return torch.where(x <= _SRGB_KNEE, x / 12.92, high)


def linear_to_srgb(x: torch.Tensor, legacy: bool = False) -> torch.Tensor:
    """Linear light → sRGB. Standard: ``12.92·v`` up to 0.0031308, else ``1.055·v^(1/2.4) − 0.055``.
    Legacy: ``1.055·(v + 0.001)^(1/2.4) − 0.055`` above the same threshold. Values below 0 stay
    on the linear segment (negative), so a caller's clamp maps them to black."""
    offset = 0.001 if legacy else 0.0
    high = 1.055 * torch.pow(x.clamp_min(_LIN_KNEE) + offset, 1.0 / 2.4) - 0.055
    return torch.where(x > _LIN_KNEE, high, x * 12.92)


def _as_sigma(sigma: Sigma, like: torch.Tensor) -> torch.Tensor:
    """A σ as a tensor broadcastable against ``like``: a scalar, or one value per batch item."""
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if s.dim() == 1 and like.dim() == 4:
        if s.numel() not in (1, like.shape[0]):
            raise ValueError(f"got {s.numel()} noise parameters for a batch of {like.shape[0]}")
        s = s.view(-1, 1, 1, 1)
    return s


def _standard_normal(like: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """N(0, 1) noise shaped like ``like``; drawn on the generator's device, then moved, so a CPU
    generator gives the same numbers whatever device the image is on."""
    if generator is None:
        return torch.randn_like(like)
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device)
    return noise.to(like.device)


def add_noise_linear(
    lin: torch.Tensor, sigma_read: Sigma, sigma_shot: Sigma, generator: Optional[torch.Generator] = None,
    normal: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Read + shot noise in linear light: a draw of ``N(lin, sqrt(σ_read² + σ_shot·lin))``, not
    clamped. ``normal``: the N(0, 1) draw to use (shaped like ``lin``) instead of drawing one."""
    sr, ss = _as_sigma(sigma_read, lin), _as_sigma(sigma_shot, lin)
    std = torch.sqrt(sr**2 + lin.clamp_min(0) * ss)
    return (_standard_normal(lin, generator) if normal is None else normal) * std + lin


def add_noise(
    gt: torch.Tensor,
    sigma_read: Sigma,
    sigma_shot: Sigma,
    generator: Optional[torch.Generator] = None,
    legacy_gamma: bool = False,
    normal: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """A noisy version of a clean sRGB image in [0, 1] (CHW or BCHW). ``sigma_*`` are floats or,
    for a batch, tensors of one value per image. Half-precision inputs are processed in float32.
    ``normal``: the standard normal draw to use instead of drawing one."""
    dtype = gt.dtype
    x = gt.float() if dtype in (torch.float16, torch.bfloat16) else gt
    lin = srgb_to_linear(x, legacy_gamma)
    noisy = linear_to_srgb(add_noise_linear(lin, sigma_read, sigma_shot, generator, normal), legacy_gamma)
    return noisy.clamp(0.0, 1.0).to(dtype)


def add_noise_seeded(
    gt: torch.Tensor, sigma_read: torch.Tensor, sigma_shot: torch.Tensor, seeds: Sequence[int],
    legacy_gamma: bool = False,
) -> torch.Tensor:
    """Noise for a B×3×H×W batch on its own device (``datasets.train.noise_on_device``): image
    *i* draws its N(0, 1) noise from a generator on ``gt``'s device seeded with ``seeds[i]``,
    with one ``σ_read``, ``σ_shot`` per image. The same seeds give the same noise on the same
    kind of device, so a training run stays exactly resumable; the CPU's and CUDA's generators
    give different (equally distributed) draws."""
    if len(seeds) != gt.shape[0]:
        raise ArgumentError(f"got {len(seeds)} seeds for a batch of {gt.shape[0]}", argument="seeds")
    normal = torch.stack([
        torch.randn(gt.shape[1:], generator=torch.Generator(gt.device).manual_seed(int(s)), device=gt.device,
                    dtype=torch.float32)
        for s in seeds])
    x = gt.float()
    return add_noise(x, sigma_read.to(x), sigma_shot.to(x), legacy_gamma=legacy_gamma, normal=normal).to(gt.dtype)


def check_log10_range(value: Sequence[float], argument: str) -> Tuple[float, float]:
    """A ``(low, high)`` pair of log10 noise parameters with low ≤ high ≤ 0 (σ ≤ 1); an
    :class:`ArgumentError` naming ``argument`` otherwise."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ArgumentError(f"expected two numbers [low, high] (log10 of σ), got {value!r}",
                            argument=argument) from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high <= 0):
        raise ArgumentError(f"expected finite log10 values with low ≤ high ≤ 0, got [{low}, {high}]",
                            argument=argument)
    return low, high


def sample_noise_params(
    generator: Optional[torch.Generator] = None, n: Optional[int] = None,
    log10_read: Sequence[float] = TRAIN_LOG10_READ, log10_shot: Sequence[float] = TRAIN_LOG10_SHOT,
) -> Tuple[Sigma, Sigma]:
    """Draw training noise parameters ``σ_read = 10^U(log10_read)``, ``σ_shot = 10^U(log10_shot)``
    (the papers' ranges by default: U(−3, −1.5) and U(−4, −2)). Returns two floats, or with ``n``
    two float64 tensors of n values (one per batch item)."""
    device = generator.device if generator is not None else None
    u = torch.rand(2, 1 if n is None else n, generator=generator, dtype=torch.float64, device=device)
    (r0, r1), (s0, s1) = log10_read, log10_shot
    sigma_read = torch.pow(10.0, r0 + (r1 - r0) * u[0]).cpu()
    sigma_shot = torch.pow(10.0, s0 + (s1 - s0) * u[1]).cpu()
    if n is None:
        return float(sigma_read[0]), float(sigma_shot[0])
    return sigma_read, sigma_shot
