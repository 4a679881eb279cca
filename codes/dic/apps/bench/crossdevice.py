"""Encode on one device, decode on another (``scripts/gpu_check.sh``; docs/performance.md):
a ``.dic`` file written by a model on ``--encode-device`` is decoded by the same weights on
``--decode-device``, for the serial and the checkerboard context model (twins with the same
weights). The probabilities the rANS coder uses are computed exactly, in fixed point on the CPU
(:mod:`dic.models.exact`), so the latents must be identical; were they not, the latent
checksums would catch it (a BitstreamError, never a wrong picture), which the check counts as
a failure. Reported per context:
``identical`` or ``caught`` (with the message), and how far the two decoded images differ (the
synthesis runs on each side's device)."""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ...codec import decode_bytes, encode_image, prepare_model
from ...data.io import to_uint8
from ...errors import BitstreamError
from ...fileio import atomic_write_text
from ..guard import guarded
from ..runtime import parse_device, synchronize
from .coding import CONTEXTS, context_twins
from .inputs import build_model, make_noisy, parse_size, synthetic_image


def cross_device(model: nn.Module, image: np.ndarray, encode_device: torch.device,
                 decode_device: torch.device) -> Dict[str, Any]:
    """Encode ``image`` (H×W×3 uint8) with ``model`` on ``encode_device``, decode the bytes on
    ``encode_device`` and on ``decode_device``; the outcome and the two images' difference."""
    fingerprint = prepare_model(model)  # tables and fingerprint on the CPU
    encoder = copy.deepcopy(model).to(encode_device).eval()
    decoder = copy.deepcopy(model).to(decode_device).eval()
    start = time.perf_counter()
    data = encode_image(encoder, image, fingerprint=fingerprint)
    synchronize(encode_device)
    out: Dict[str, Any] = {"bytes": len(data), "encode_s": time.perf_counter() - start}
    own = decode_bytes(data, encoder, fingerprint=fingerprint)
    start = time.perf_counter()
    try:
        other = decode_bytes(data, decoder, fingerprint=fingerprint)
    except BitstreamError as e:
        out.update(outcome="caught", error=str(e)[:400])
        return out
    out["decode_s"] = time.perf_counter() - start
    diff = np.abs(own.astype(np.int16) - other.astype(np.int16))
    out.update(outcome="identical", max_abs_diff_8bit=int(diff.max()), pixels_differing=int((diff > 0).sum()))
    return out


def run_check(model: nn.Module, image: np.ndarray, encode_device: torch.device, decode_device: torch.device,
              contexts: Sequence[str] = CONTEXTS) -> Dict[str, Any]:
    """:func:`cross_device` for each context twin of ``model``."""
    twins = context_twins(model.cpu(), contexts)
    results: Dict[str, Any] = {"encode_device": str(encode_device), "decode_device": str(decode_device),
                               "model": model.name, "hparams": dict(model.hparams), "contexts": {}}
    for context, twin in twins.items():
        results["contexts"][context] = cross_device(twin, image, encode_device, decode_device)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m dic.apps.bench.crossdevice``: one user-error line and exit 2 on bad options;
    exit 1 when a decoding was neither identical nor caught (cannot happen by design)."""
    parser = argparse.ArgumentParser(prog="python -m dic.apps.bench.crossdevice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="snr-decomp")
    parser.add_argument("--quality", type=int, default=None)
    parser.add_argument("--N", type=int, default=None)
    parser.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--size", default="768x512", help="WIDTHxHEIGHT (default 768x512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encode-device", default="cuda")
    parser.add_argument("--decode-device", default="cpu")
    parser.add_argument("--json", default=None, metavar="PATH")
    return guarded(_run, parser.parse_args(sys.argv[1:] if argv is None else argv))


def _run(args: argparse.Namespace) -> int:
    encode_device = parse_device(args.encode_device, "--encode-device")
    decode_device = parse_device(args.decode_device, "--decode-device")
    height, width = parse_size(args.size)
    model = build_model(args)
    noisy = make_noisy(synthetic_image(height, width, args.seed), 3, args.seed)
    results = run_check(model, to_uint8(noisy), encode_device, decode_device)
    for context, r in results["contexts"].items():
        detail = (f"identical latents, decoded images differ by at most {r['max_abs_diff_8bit']} "
                  f"(8-bit) in {r['pixels_differing']} values" if r["outcome"] == "identical" else r["error"])
        print(f"encode on {encode_device}, decode on {decode_device}, {context}: {r['outcome']}: {detail}")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
