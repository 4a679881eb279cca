"""The classical frontier: the best denoise-then-compress pipeline a careful user could pick, per
noise level (docs/demo.md).

A *configuration* is a non-local-means strength, a codec and a quality. The strength is a
multiple ``m`` of the rule of :func:`.baselines.nlm_strength` (``m = 0``: no denoising); the grid
:data:`NLM_MULTIPLIERS` × {JPEG, WebP} × :data:`ENVELOPE_QUALITIES` is fixed a priori (never
tuned on test photographs). :class:`GridCoder` codes every image at every configuration (one
NLM run per strength), so each configuration is one *raw point* (mean bpp, mean PSNR over the
images) of the report ``classical-grid.json``.

The *envelope* of a set of raw points is their monotone upper frontier (Pareto front): the points
that no other point matches or beats in quality at an equal or lower rate, sorted by rate. Along
it, rate and quality both rise strictly, so Bjøntegaard deltas (:mod:`.rd`) are defined against
it, and its piecewise-linear curve is never below a raw point inside its rate range (a dominated
point lies at or below the frontier point just left of it). Three envelope reports are written:
over JPEG and WebP together (``classical-envelope.json``, the demo's reference), and one per codec
(``classical-envelope-jpeg.json``, ``classical-envelope-webp.json``); each keeps the name of the
configuration behind every point in ``entries`` and the raw points it was taken from in ``raw``.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ...data.io import to_tensor, to_uint8
from ...errors import DicError
from .baselines import decode_classical, encode_classical, estimate_noise_sigma, nlm_strength
from .coders import Coded, Coder, EntryInfo
from .rd import upper_envelope
from .reports import MethodResult, write_json, write_outputs
from .runner import TestSet, run_coder

#: NLM strength multipliers of the rule ``nlm_strength(σ̂)``; 0 codes the noisy image itself.
NLM_MULTIPLIERS: Tuple[float, ...] = (0.0, 0.5, 0.75, 1.0, 1.5)
ENVELOPE_CODECS: Tuple[str, ...] = ("jpeg", "webp")
ENVELOPE_QUALITIES: Tuple[int, ...] = (2, 5, 10, 20, 30, 50, 70, 90)
GRID_METHOD = "classical-grid"
ENVELOPE_METHOD = "classical-envelope"


def config_tag(codec: str, multiplier: float, quality: int) -> str:
    """The entry name of one configuration, e.g. ``webp-nlm0.75-q30`` or ``jpeg-none-q50``."""
    strength = "none" if multiplier == 0 else f"nlm{multiplier:g}"
    return f"{codec}-{strength}-q{quality}"


def parse_tag(tag: str) -> Tuple[str, float, int]:
    """(codec, multiplier, quality) of a :func:`config_tag` name."""
    try:
        codec, strength, quality = tag.split("-")
        multiplier = 0.0 if strength == "none" else float(strength[3:])
        return codec, multiplier, int(quality[1:])
    except ValueError:
        raise DicError(f"'{tag}' is not a classical configuration name such as webp-nlm0.75-q30") from None


def denoise_nlm_scaled(image: np.ndarray, multiplier: float) -> np.ndarray:
    """OpenCV colour NLM at ``multiplier`` × the rule's strength (0: the image unchanged)."""
    if multiplier == 0:
        return image
    h = multiplier * nlm_strength(estimate_noise_sigma(image))
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21), cv2.COLOR_BGR2RGB)


def run_config(image: np.ndarray, tag: str) -> Tuple[np.ndarray, int]:
    """(decoded uint8 RGB image, bytes) of one configuration on a noisy uint8 RGB image."""
    codec, multiplier, quality = parse_tag(tag)
    data = encode_classical(denoise_nlm_scaled(image, multiplier), codec, quality)
    return decode_classical(data, codec), len(data)


class GridCoder(Coder):
    """Every configuration of the grid on one image: one NLM run per strength, then each codec
    at each quality (real files; the rate is their size)."""

    def __init__(self, multipliers: Sequence[float] = NLM_MULTIPLIERS, codecs: Sequence[str] = ENVELOPE_CODECS,
                 qualities: Sequence[int] = ENVELOPE_QUALITIES):
        self.configs = [(m, c, q) for m in multipliers for c in codecs for q in qualities]
        entries = [EntryInfo(tag=config_tag(c, m, q), quality=int(q)) for m, c, q in self.configs]
        super().__init__(method=GRID_METHOD, entries=entries,
                         description="NLM strength × codec × quality grid (OpenCV), real files")
        self.multipliers = list(dict.fromkeys(multipliers))

    def code(self, noisy: torch.Tensor, blur: Optional[torch.Tensor] = None) -> List[Coded]:
        image = to_uint8(noisy)
        h, w = image.shape[:2]
        denoised, denoise_time = {}, {}
        for m in self.multipliers:
            t0 = time.perf_counter()
            denoised[m] = denoise_nlm_scaled(image, m)
            denoise_time[m] = time.perf_counter() - t0
        out = []
        for m, codec, q in self.configs:
            t1 = time.perf_counter()
            data = encode_classical(denoised[m], codec, q)
            t2 = time.perf_counter()
            decoded = decode_classical(data, codec)
            t3 = time.perf_counter()
            out.append(Coded(to_tensor(decoded).unsqueeze(0), 8 * len(data) / (h * w), len(data),
                             denoise_time[m] + t2 - t1, t3 - t2))
        return out


# ------------------------------------------------------------------------------------------
# The frontier (:func:`.rd.upper_envelope`, one function for the demo and ``dic bdrate --frontier``)
def envelope_report(grid: Mapping[str, Any], codecs: Sequence[str], name: str) -> Dict[str, Any]:
    """The envelope of the grid report's raw points of ``codecs``, in the report layout (every
    ``results`` list restricted to the frontier), with the raw points in ``raw``."""
    tags = list(grid["entries"])
    chosen = [k for k, tag in enumerate(tags) if parse_tag(tag)[0] in codecs]
    if not chosen:
        raise DicError(f"{grid.get('_json', GRID_METHOD)}: no raw point of codec(s) {', '.join(codecs)}")
    results = grid["results"]
    keep = [chosen[j] for j in upper_envelope([results["bpp"][k] for k in chosen],
                                              [results["psnr"][k] for k in chosen])]
    report = {key: value for key, value in grid.items() if not key.startswith("_")}
    report.update(name=name, description=f"upper envelope (monotone frontier) over {', '.join(codecs)} × NLM "
                  f"strength × quality of {GRID_METHOD} on {grid.get('dataset')}",
                  entries=[tags[k] for k in keep], quality=[grid["quality"][k] for k in keep],
                  num_images=[grid["num_images"][k] for k in keep],
                  results={key: [values[k] for k in keep] for key, values in results.items()},
                  envelope_of=list(codecs),
                  raw={"entries": [tags[k] for k in chosen],
                       "bpp": [results["bpp"][k] for k in chosen], "psnr": [results["psnr"][k] for k in chosen]})
    return report


def write_envelopes(grid: Mapping[str, Any], out_dir: Path) -> List[Dict[str, Any]]:
    """Write the three envelope reports of a grid report beside it; return them (with ``_json``)."""
    out = []
    for codecs, name in ((ENVELOPE_CODECS, ENVELOPE_METHOD),
                         *(((c,), f"{ENVELOPE_METHOD}-{c}") for c in ENVELOPE_CODECS)):
        report = envelope_report(grid, codecs, name)
        write_json(out_dir / f"{name}.json", report)
        out.append({**report, "_json": str(out_dir / f"{name}.json")})
    return out


def evaluate_grid(test_sets: Sequence[TestSet], root: Path, run_name: str, protocol: str = "pad",
                  coder: Optional[GridCoder] = None, progress: bool = True) -> Dict[str, List[Dict[str, Any]]]:
    """Code every test set with the grid and write, per set, the raw report
    (``classical-grid.json`` / ``.csv``) and the envelope reports. Returns label → [grid, envelopes…]."""
    coder = coder or GridCoder()
    reports = {}
    for test_set in test_sets:
        out_dir = Path(root) / test_set.label
        rows, _ = run_coder(coder, test_set, out_dir, protocol, save_images=False, progress=progress)
        result = MethodResult(coder.method, coder.description, False, list(copy.deepcopy(coder.entries)), rows)
        grid = write_outputs(result, test_set.label, test_set.level, out_dir, run_name, protocol)
        reports[test_set.label] = [grid] + write_envelopes(grid, out_dir)
    return reports
