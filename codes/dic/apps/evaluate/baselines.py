"""Sequential baselines: denoise first, then compress with a separate codec.

They run on exactly the noisy inputs the joint models get (same data set, level, seed, 8-bit
rounding and protocol) and are written as reports of the same layout by :mod:`dic.apps.evaluate`.

- classical (``test.baselines``): OpenCV non-local means (or BM3D when the ``bm3d`` package is
  installed) followed by JPEG or WebP from OpenCV's ``imencode`` at each quality of
  ``test.baseline_qualities``; the rate is the real file size. ``jpeg`` / ``webp`` alone code the
  noisy image (codec only).
- codec only, learned: a ``cheng2020-anchor`` checkpoint in ``path.checkpoint`` is evaluated on
  the noisy image like any model (``conf/test/codec_only_cheng2020.yml``).
- learned sequential (``test.denoiser``): there is no stand-alone denoising network here, so the
  denoiser is any of our checkpoints used end to end — its decoded image (8-bit) is then coded
  by each ``path.checkpoint`` codec. Only the codec's bytes count as rate; the denoiser's time
  counts as encoding time, since it runs at the sender.

Non-local means strength: OpenCV's ``h`` (luminance) and ``hColor`` are both set to
``σ̂ · clip(σ̂ / 20, 0.5, 1)``, where ``σ̂`` is the noise level estimated from the noisy image
itself (Immerkær's fast estimator, 0–255 units, mean over the channels). No clean image or noise
level is needed, so the rule works on real photographs; on scikit-image photographs at the four
synthetic levels it is within 0.1 dB of the best fixed ``h``/σ̂ ratio per level.

A fixed strength is one choice among many: :mod:`.envelope` codes a grid of NLM strengths
(multiples of this rule, and none) × JPEG / WebP × qualities and keeps its upper envelope, the
classical frontier the demo compares against (docs/demo.md).

Command line (baselines only, on the data sets of an option file), in :mod:`.baselines_cmd`::

    python -m dic.apps.evaluate.baselines_cmd -opt conf/test/tiny.yml --methods nlm-jpeg nlm-webp
"""
from __future__ import annotations

import importlib.util
import math
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ...data.io import to_tensor, to_uint8
from ...errors import DicError, OptionError
from ...metrics import quantize_8bit
from ...registry import did_you_mean
from .coders import Coded, Coder, EntryInfo, ModelCoder

#: option name → (denoiser or None, codec)
CLASSICAL: Dict[str, Tuple[Optional[str], str]] = {
    "nlm-jpeg": ("nlm", "jpeg"),
    "nlm-webp": ("nlm", "webp"),
    "bm3d-jpeg": ("bm3d", "jpeg"),
    "bm3d-webp": ("bm3d", "webp"),
    "jpeg": (None, "jpeg"),
    "webp": (None, "webp"),
}
DEFAULT_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)


# ------------------------------------------------------------------------------------------
# Classical denoisers (H×W×3 uint8 RGB in and out)
def estimate_noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of white Gaussian noise in a uint8 RGB image, 0–255 units, by
    Immerkær's estimator (Laplacian-difference mask, mean absolute response), averaged over
    the channels."""
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    h, w = image.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    sigmas = []
    for c in range(image.shape[2]):
        response = cv2.filter2D(image[..., c].astype(np.float64), -1, mask)[1:-1, 1:-1]
        sigmas.append(math.sqrt(math.pi / 2) * np.abs(response).sum() / (6 * (h - 2) * (w - 2)))
    return float(np.mean(sigmas))


def nlm_strength(sigma: float) -> float:
    """OpenCV NLM filter strength for an estimated noise level σ̂ (module docstring)."""
    return sigma * min(max(sigma / 20.0, 0.5), 1.0)


def denoise_nlm(image: np.ndarray) -> np.ndarray:
    """OpenCV's colour non-local means with the strength rule above (7×7 patches, 21×21 search)."""
    h = nlm_strength(estimate_noise_sigma(image))
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def bm3d_available() -> bool:
    """Whether the optional ``bm3d`` package (non-commercial licence: not a dependency) is installed."""
    return importlib.util.find_spec("bm3d") is not None


def denoise_bm3d(image: np.ndarray) -> np.ndarray:
    """BM3D (the ``bm3d`` package) on the RGB image with the estimated noise level."""
    import bm3d  # optional: checked by bm3d_available() before any work

    sigma = max(estimate_noise_sigma(image), 1e-3) / 255.0
    out = bm3d.bm3d_rgb(image.astype(np.float64) / 255.0, sigma)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


DENOISERS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {"nlm": denoise_nlm, "bm3d": denoise_bm3d}


# ------------------------------------------------------------------------------------------
# Classical codecs: real files in memory
def encode_classical(image: np.ndarray, codec: str, quality: int) -> bytes:
    """JPEG or WebP bytes of an H×W×3 uint8 RGB image at ``quality`` (1–100), from OpenCV."""
    flags = {"jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY), "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY)}
    ext, flag = flags[codec]
    ok, data = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR), [int(flag), int(quality)])
    if not ok:
        raise DicError(f"OpenCV could not encode a {image.shape[1]}×{image.shape[0]} image as {codec}")
    return data.tobytes()


def decode_classical(data: bytes, codec: str) -> np.ndarray:
    """Decode JPEG / WebP bytes to H×W×3 uint8 RGB."""
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DicError(f"OpenCV could not decode {len(data)} bytes of {codec}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ClassicalCoder(Coder):
    """Denoise once per image (or not), then code at every quality of the ladder."""

    def __init__(self, name: str, qualities: Sequence[int]):
        denoiser, codec = CLASSICAL[name]
        entries = [EntryInfo(tag=f"q{q}", quality=int(q)) for q in qualities]
        what = f"{denoiser.upper()} then {codec.upper()}" if denoiser else f"{codec.upper()} on the noisy image"
        super().__init__(method=name, entries=entries, description=f"{what} (OpenCV), real files")
        self.denoiser = DENOISERS[denoiser] if denoiser else None
        self.codec = codec

    def code(self, noisy: torch.Tensor, blur: Optional[torch.Tensor] = None) -> List[Coded]:
        image = to_uint8(noisy)  # the codecs take 8-bit files; blur: unused
        t0 = time.perf_counter()
        clean = self.denoiser(image) if self.denoiser else image
        denoise_time = time.perf_counter() - t0
        h, w = image.shape[:2]
        out = []
        for entry in self.entries:
            t1 = time.perf_counter()
            data = encode_classical(clean, self.codec, entry.quality)
            t2 = time.perf_counter()
            decoded = decode_classical(data, self.codec)
            t3 = time.perf_counter()
            out.append(Coded(to_tensor(decoded).unsqueeze(0), 8 * len(data) / (h * w), len(data), denoise_time + t2 - t1, t3 - t2))
        return out


class LearnedSequentialCoder(Coder):
    """A model's reconstruction (8-bit) coded by a second model (learned sequential baseline)."""

    def __init__(self, denoiser: torch.nn.Module, codec: ModelCoder):
        name = getattr(denoiser, "name", "") or "denoiser"
        super().__init__(method=f"{name}+{codec.method}", entries=codec.entries, estimation=codec.estimation,
                         description=f"{name} reconstruction then {codec.method} ({codec.description})")
        self.denoiser = denoiser
        self.codec = codec

    @torch.no_grad()
    def code(self, noisy: torch.Tensor, blur: Optional[torch.Tensor] = None) -> List[Coded]:
        x = noisy.to(self.codec.device)
        blur = None if blur is None else blur.to(self.codec.device)
        t0 = time.perf_counter()
        if self.estimation:
            denoised = self.denoiser(x, blur=blur)["x_hat"]
        else:
            enc = self.denoiser.compress(x, blur=blur)
            denoised = self.denoiser.decompress(enc["strings"], enc["shape"])["x_hat"]
        denoised = quantize_8bit(denoised.clamp(0, 1))
        elapsed = time.perf_counter() - t0
        coded = self.codec.code(denoised.cpu())[0]
        coded.encoding_time = (coded.encoding_time or 0.0) + elapsed
        return [coded]


def learned_sequential_coder(denoiser: torch.nn.Module, codec: ModelCoder) -> Coder:
    return LearnedSequentialCoder(denoiser, codec)


# ------------------------------------------------------------------------------------------
# Option values → coders
def baseline_names(value: Union[None, str, Sequence[str]]) -> List[str]:
    """``test.baselines`` (a name or a list) as a checked list of names."""
    names = [value] if isinstance(value, str) else list(value or [])
    for name in names:
        if name not in CLASSICAL:
            raise OptionError(f"test.baselines: unknown baseline '{name}'{did_you_mean(name, list(CLASSICAL))}; "
                              f"expected some of {', '.join(CLASSICAL)}")
        if CLASSICAL[name][0] == "bm3d" and not bm3d_available():
            raise OptionError(f"test.baselines: '{name}' needs the bm3d package, which is not installed "
                              "(pip install bm3d; note its licence: free for non-commercial use only)")
    return names


def baseline_qualities(value: Optional[Sequence[int]]) -> List[int]:
    """``test.baseline_qualities`` checked (integers 1–100, no repeats) and sorted."""
    qualities = list(value or DEFAULT_QUALITIES)
    for q in qualities:
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
            raise OptionError(f"test.baseline_qualities: got {q!r}, expected integers in 1..100")
    if len(set(qualities)) != len(qualities):
        raise OptionError(f"test.baseline_qualities: {qualities} repeats a quality")
    return sorted(qualities)


def baseline_coders(names: Union[None, str, Sequence[str]], qualities: Optional[Sequence[int]]) -> List[Coder]:
    """One :class:`ClassicalCoder` per name of ``test.baselines``, over the quality ladder."""
    names = baseline_names(names)
    ladder = baseline_qualities(qualities) if names else []
    return [ClassicalCoder(name, ladder) for name in names]
