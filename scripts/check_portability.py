#!/usr/bin/env python
"""Are ``.dic`` files portable? Encode in one process and decode in another, each under other
instruction-set limits (oneDNN, ATen and MKL each have a switch) and thread counts, for every
model and context, and compare (docs/portability.md).

    python scripts/check_portability.py [--out DIR] [--size 128x192] [--json results.json]

Each environment of :data:`ENVIRONMENTS` encodes one image with every checkpoint, as format 3
(the exact entropy path) and as format 2 (the float path of earlier releases, for comparison);
then each environment decodes every file. Prints, per format, the encoder/decoder pairings that
failed and the largest pixel difference between decodes of one file; exits 1 when a format-3
file failed anywhere. The checkpoints are the shipped demo weights (snr-decomp and
cheng2020-anchor, serial) with checkerboard twins on the same weights, and a small random
multiscale-decomp of each context, all saved with their coding tables.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "codes"))  # runs from a checkout without pip install -e .

import torch  # noqa: E402

from dic.checkpoints import load_model, save_checkpoint  # noqa: E402
from dic.codec import decode_bytes, encode_image, load_codec_model  # noqa: E402
from dic.errors import DicError  # noqa: E402
from dic.models import create_model  # noqa: E402
from dic.models.checkerboard import CONTEXTS  # noqa: E402

#: name → (environment variables, torch threads). Vector limits: oneDNN's ISA cap, MKL's
#: instruction cap and ATen's dispatch level (``default`` is scalar code).
ENVIRONMENTS: Dict[str, tuple] = {
    "native-2t": ({}, 2),
    "avx2-1t": ({"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}, 1),
    "scalar-3t": ({"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                   "ATEN_CPU_CAPABILITY": "default"}, 3),
}
VERSIONS = (3, 2)


def test_image(height: int, width: int) -> np.ndarray:
    """A deterministic noisy photograph-like image: smooth colour ramps, edges, noise."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([0.5 + 0.4 * np.sin(6 * xx + 2 * yy), 0.5 + 0.3 * np.cos(5 * yy), 0.3 + 0.5 * xx * yy], -1)
    base[height // 3 : height // 2, width // 4 : width // 2] = (0.9, 0.2, 0.1)
    noisy = base + rng.normal(0, 0.08, base.shape)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)


def make_checkpoints(folder: Path) -> List[Path]:
    """The checkpoints every environment codes with, saved with their coding tables."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("demo_joint_l2", "demo_codec_l2"):
        serial = load_model(REPO / "weights" / "demo" / f"{name}.pth")
        twin = create_model(serial.name, **{**serial.hparams, "context": "checkerboard"})
        state = {k: v for k, v in serial.state_dict().items() if not k.endswith("context_prediction.mask")}
        twin.load_state_dict({**twin.state_dict(), **state})
        for model, context in ((serial, "serial"), (twin, "checkerboard")):
            paths.append(folder / f"{serial.name}_{context}.pth")
            save_checkpoint(paths[-1], model)
    for context in CONTEXTS:
        torch.manual_seed(0)
        paths.append(folder / f"multiscale-decomp_{context}.pth")
        save_checkpoint(paths[-1], create_model("multiscale-decomp", N=16, context=context))
    return paths


# ----------------------------------------------------------------------------- workers


def encode(folder: Path, tag: str, checkpoints: List[str], size: tuple) -> None:
    image = test_image(*size)
    out = folder / tag
    out.mkdir(parents=True, exist_ok=True)
    for checkpoint in checkpoints:
        model, fingerprint = load_codec_model(checkpoint)
        for version in VERSIONS:
            data = encode_image(model, image, fingerprint=fingerprint, checkpoint=checkpoint, version=version)
            (out / f"{Path(checkpoint).stem}.v{version}.dic").write_bytes(data)


def decode(folder: Path, tag: str, checkpoints: List[str], wait: bool = False) -> None:
    models = {Path(c).stem: load_codec_model(c) for c in checkpoints}
    if wait and sys.stdin.readline().strip() != "go":  # started beside the encoders: wait for their files
        raise SystemExit(f"decode under {tag}: the encoders did not finish; nothing decoded")
    results = {}
    for path in sorted(folder.glob("*/*.dic")):
        model, fingerprint = models[path.name.split(".")[0]]
        key = f"{path.parent.name}/{path.name}"
        try:
            image = decode_bytes(path.read_bytes(), model, fingerprint=fingerprint, name=key)
        except DicError as exc:
            results[key] = {"ok": False, "error": str(exc)[:300]}
            continue
        npy = folder / "decoded" / tag / (key.replace("/", "__") + ".npy")
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, image)
        results[key] = {"ok": True, "image": str(npy)}
    (folder / f"decoded_{tag}.json").write_text(json.dumps(results, indent=1))


# ----------------------------------------------------------------------------- driver


def _start(role: str, tag: str, folder: Path, checkpoints: List[Path], size: tuple):
    """A worker process under ``tag``'s limits; its output goes to a log file (a pipe could fill)."""
    env_vars, threads = ENVIRONMENTS[tag]
    # Passive OpenMP waits: threads that sleep, not spin, between parallel regions. The results are
    # the same (the thread count, not the wait, splits the work), but on a small shared machine
    # spinning threads make the 2- and 3-thread environments several times slower.
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, **env_vars, "OMP_NUM_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, __file__, "--worker", role, "--tag", tag, "--out", str(folder),
           "--size", f"{size[0]}x{size[1]}", "--checkpoints", *map(str, checkpoints)]
    log = folder / f"{role}_{tag}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE if role == "decode" else subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _finish(proc, role: str, tag: str) -> None:
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{role} under {tag} failed (exit {proc.returncode}):\n{proc.log.read_text()}")


def check(folder: Path, size: tuple) -> dict:
    """Run the whole matrix in ``folder``; the summary as a dict."""
    checkpoints = make_checkpoints(folder / "checkpoints")
    # All six processes start at once, so that the decoders' start-up (importing torch and the
    # models, loading the checkpoints) overlaps the encoding; each decoder then waits for a line
    # on its stdin, sent when every encoder has written its files. Every file is still decoded
    # in a process of its own, apart from the one that encoded it.
    encoders = {tag: _start("encode", tag, folder, checkpoints, size) for tag in ENVIRONMENTS}
    decoders = {tag: _start("decode", tag, folder, checkpoints, size) for tag in ENVIRONMENTS}
    try:
        for tag, proc in encoders.items():
            _finish(proc, "encode", tag)
        for proc in decoders.values():
            try:
                proc.stdin.write("go\n")
                proc.stdin.close()
            except OSError:  # it died: _finish says how
                pass
        for tag, proc in decoders.items():
            _finish(proc, "decode", tag)
    finally:
        for proc in (*encoders.values(), *decoders.values()):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    decoded = {tag: json.loads((folder / f"decoded_{tag}.json").read_text()) for tag in ENVIRONMENTS}
    summary = {}
    for version in VERSIONS:
        files = sorted({k for d in decoded.values() for k in d if k.endswith(f".v{version}.dic")})
        pairs, failures, max_diff = 0, [], 0
        for key in files:
            images = []
            for tag, results in decoded.items():
                pairs += 1
                if results[key]["ok"]:
                    images.append(np.load(results[key]["image"]).astype(np.int16))
                else:
                    failures.append({"file": key, "decoder": tag, "error": results[key]["error"]})
            for image in images[1:]:
                max_diff = max(max_diff, int(np.abs(image - images[0]).max()))
        summary[f"v{version}"] = {"pairs": pairs, "failed": len(failures), "max_pixel_difference": max_diff,
                                  "failures": failures}
    summary["environments"] = {tag: {"env": env, "threads": t} for tag, (env, t) in ENVIRONMENTS.items()}
    summary["size"] = list(size)
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--size", default="128x192", help="image size HxW (default 128x192)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    parser.add_argument("--worker", choices=("encode", "decode"), help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = tuple(int(s) for s in args.size.lower().split("x"))
    if args.worker:
        torch.set_num_threads(ENVIRONMENTS[args.tag][1])
        if args.worker == "encode":
            encode(args.out, args.tag, args.checkpoints, size)
        else:
            decode(args.out, args.tag, args.checkpoints, wait=True)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        summary = check(args.out or Path(tmp), size)
    for version in VERSIONS:
        s = summary[f"v{version}"]
        print(f"format {version}: {s['pairs'] - s['failed']}/{s['pairs']} encoder/decoder pairings decoded; "
              f"largest pixel difference between decodes of one file: {s['max_pixel_difference']}/255")
        for f in s["failures"][:6]:
            print(f"  {f['file']} under {f['decoder']}: {f['error'][:160]}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 1 if summary["v3"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
