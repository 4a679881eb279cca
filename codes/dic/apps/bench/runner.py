"""``dic bench``: how fast a model codes and trains, and how much memory it needs, beside
CompressAI's own coding path on the same weights.

Measured, each as the median of ``--repeats`` runs after ``--warmup`` runs, with the two sides
interleaved run by run so that both see the same machine load:

- encode / decode wall time of ``model.compress`` / ``model.decompress`` on one noisy image:
  ours (the fast serial loop of :mod:`dic.models.fast_coding`) and CompressAI's
  (``JointAutoregressiveHierarchicalPriors._compress_ar`` / ``decompress``, selected by
  ``model.fast_coding = False``; analysis, hyper-prior and synthesis are the same modules);
- one training step (forward with the guidance branch, rate–distortion loss, backward, both
  Adam steps, context-mask re-application, as ``dic train`` does but without its loss check):
  ours, an "official-style" step (attention as an explicit softmax(q·kᵀ)·v matrix and the SNR
  map's blur per image on the host with ``cv2.blur``, then copied to the device, as the
  official release does), and ours with ``channels_last`` tensors;
- peak memory. CPU: the peak resident set (``VmHWM`` of /proc, reset through
  ``/proc/self/clear_refs`` just before the operation) of a fresh Python process that loads
  the model and inputs and runs the operation once; it counts everything resident, weights and
  the torch runtime included. CUDA: ``torch.cuda.max_memory_allocated`` around one run.

Weights are random (``--seed``) unless ``--checkpoint`` is given: timings of the networks do
not depend on them, but the entropy coder's work does a little (how many distinct scales a
position uses), so say which weights a figure used.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ...errors import DataError, OptionError

FORMAT = "dic-bench"
VERSION = 1
TRAIN_VARIANTS = ("ours", "official-style", "channels-last")


# ============================================================================================
# Command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="snr-decomp", help="registered model name (default: snr-decomp)")
    parser.add_argument("--quality", type=int, default=None, help="quality 1–6 (picks N when --N is not given)")
    parser.add_argument("--N", type=int, default=None, help="channel width (default: from the quality; 192)")
    parser.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                        help="another model hyper-parameter (YAML value), e.g. num_layers=1; repeatable")
    parser.add_argument("--checkpoint", default=None, help="weights from this checkpoint instead of random ones")
    parser.add_argument("--size", default="768x512", help="image size WIDTHxHEIGHT (default 768x512, Kodak)")
    parser.add_argument("--image", default=None,
                        help="code this image (centre-cropped to --size) instead of a synthetic one")
    parser.add_argument("--noise-level", type=int, default=3, help="noise level of dic.data.noise.LEVELS (default 3)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per measurement, median reported (default 3; 0: memory only)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before them (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads (default 2; 0 leaves torch's default)")
    parser.add_argument("--train-batch", type=int, default=4, help="training-step batch size (default 4)")
    parser.add_argument("--train-size", type=int, default=256, help="training-step patch size (default 256)")
    parser.add_argument("--no-compressai", action="store_true", help="skip CompressAI's coding path")
    parser.add_argument("--no-coding", action="store_true", help="skip encode/decode")
    parser.add_argument("--no-train", action="store_true", help="skip the training step")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and image (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    results = benchmark(args)
    print(format_table(results))
    if args.json:
        from ...data.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/bench.py``: the same as ``dic bench``."""
    from ..cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


# ============================================================================================
# Set-up
def parse_size(text: str) -> Tuple[int, int]:
    """``'768x512'`` → (height 512, width 768)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise OptionError(f"--size: expected WIDTHxHEIGHT such as 768x512, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise OptionError(f"--size: expected positive sizes, got {text!r}")
    return h, w


def parse_hparams(items: Sequence[str]) -> Dict[str, Any]:
    import yaml

    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OptionError(f"--hparam: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def select_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise OptionError(f"--device: expected cpu or cuda[:i], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {name}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise OptionError(f"--device: expected cpu or cuda[:i], got {name!r}")
    return device


def build_model(args: argparse.Namespace) -> nn.Module:
    """The model to measure, in eval mode with its entropy-coder tables built, on the CPU."""
    from ...checkpoints import load_model
    from ...models import create_model

    if args.checkpoint:
        model = load_model(args.checkpoint, arch=args.model)
    else:
        torch.manual_seed(args.seed)
        hparams = parse_hparams(args.hparam)
        if args.N is not None:
            hparams["N"] = args.N
        model = create_model(args.model, args.quality, **hparams)
        for module in model.modules():  # store the context weights masked, as training leaves them
            if hasattr(module, "mask") and isinstance(module, nn.Conv2d):
                module.weight.data.mul_(module.mask)
    model.update(force=True)
    return model.eval()


def synthetic_image(height: int, width: int, seed: int) -> torch.Tensor:
    """A clean 1×3×H×W test picture in [0, 1] with smooth regions, edges and texture, so that
    the SNR map (hence the transformer's key mask) varies as on a photograph."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(2 * math.pi * (f * xx + 0.7 * f * yy) + p)
                        for f, p in ((1.0, 0.0), (1.5, 1.0), (0.7, 2.0))])
    blobs = torch.nn.functional.interpolate(torch.rand(1, 3, height // 32 + 1, width // 32 + 1, generator=g),
                                            size=(height, width), mode="bicubic", align_corners=False)[0]
    texture = (torch.rand(3, height, width, generator=g) - 0.5) * (xx > 0.5).float() * 0.3
    edges = ((xx * 8).floor() % 2) * (yy < 0.3).float() * 0.3
    return (0.5 * base + 0.5 * blobs + texture + edges).clamp(0, 1).unsqueeze(0)


def load_image(args: argparse.Namespace, height: int, width: int) -> Tuple[torch.Tensor, str]:
    """The clean test image (1×3×H×W) and where it came from."""
    if not args.image:
        return synthetic_image(height, width, args.seed), "synthetic"
    from ...data.io import read_image, to_tensor

    image = to_tensor(read_image(args.image)).unsqueeze(0)
    h, w = image.shape[-2:]
    if h < height or w < width:
        raise DataError(f"--image {args.image}: {w}x{h} px is smaller than --size {width}x{height}")
    top, left = (h - height) // 2, (w - width) // 2
    return image[..., top : top + height, left : left + width].contiguous(), str(args.image)


def make_noisy(gt: torch.Tensor, level: int, seed: int) -> torch.Tensor:
    from ...data.noise import LEVELS, add_noise

    if level not in LEVELS:
        raise OptionError(f"--noise-level: expected one of {sorted(LEVELS)}, got {level}")
    return add_noise(gt, *LEVELS[level], generator=torch.Generator().manual_seed(seed + 1))


# ============================================================================================
# Timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int,
                     device: torch.device) -> Dict[str, List[float]]:
    """Wall times in seconds of each function, run in turn ``warmup`` + ``repeats`` times
    (one of each per round, so both sides of a comparison share the machine's load)."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def summary(runs: List[float]) -> Dict[str, Any]:
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "runs": runs} if runs else {}


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def median_of(block: Mapping[str, Any], key: str) -> Optional[float]:
    return (block.get(key) or {}).get("median")


# ============================================================================================
# Coding
@contextlib.contextmanager
def coding_path(model: nn.Module, path: str) -> Iterator[None]:
    """``path`` 'ours' (the fast loop) or 'compressai' (CompressAI's serial loop)."""
    saved = model.__dict__.get("fast_coding")
    model.fast_coding = path == "ours"
    try:
        yield
    finally:
        if saved is None:
            del model.fast_coding
        else:
            model.fast_coding = saved


def bench_coding(model: nn.Module, noisy: torch.Tensor, args: argparse.Namespace,
                 device: torch.device) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Encode/decode times of both paths, their bitstreams and how far their images differ;
    and each path's ``compress`` output."""
    paths = ["ours"] if args.no_compressai else ["ours", "compressai"]
    coded: Dict[str, Any] = {}
    decoded: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for path in paths:
            with coding_path(model, path):
                coded[path] = model.compress(noisy)
                decoded[path] = model.decompress(coded[path]["strings"], coded[path]["shape"])["x_hat"]
    out: Dict[str, Any] = {p: {"bytes": sum(len(s) for group in coded[p]["strings"] for s in group)} for p in paths}
    if "compressai" in coded:
        out["strings_identical"] = coded["ours"]["strings"] == coded["compressai"]["strings"]
        out["max_abs_diff"] = float((decoded["ours"] - decoded["compressai"]).abs().max())
        eight_bit = {p: (decoded[p] * 255).round() for p in paths}
        out["pixels_differing_8bit"] = int((eight_bit["ours"] != eight_bit["compressai"]).sum())
    if args.repeats > 0:
        def encoder(path):
            def fn():
                with torch.no_grad(), coding_path(model, path):
                    model.compress(noisy)
            return fn

        def decoder(path):
            def fn():
                with torch.no_grad(), coding_path(model, path):
                    model.decompress(coded[path]["strings"], coded[path]["shape"])
            return fn

        for op, make in (("encode", encoder), ("decode", decoder)):
            times = time_interleaved({p: make(p) for p in paths}, args.repeats, args.warmup, device)
            for p in paths:
                out[p][f"{op}_s"] = summary(times[p])
    return out, coded


# ============================================================================================
# Training step
def explicit_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              key_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """The official release's attention: the full L×L matrix softmax(q·kᵀ/√E, masked keys at
    −1e9) materialised, then multiplied by v."""
    logits = torch.matmul(q / math.sqrt(q.shape[-1]), k.transpose(-2, -1))
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, None, :], -1e9)
    return torch.matmul(torch.softmax(logits, dim=-1), v)


def host_snr_map(noisy: torch.Tensor, kernel_size: int = 5) -> torch.Tensor:
    """The SNR map as the official data loader makes it: per image on the host, ``cv2.blur``
    on 0–255 floats, NumPy arithmetic, then copied to the device (MODELS.md §3)."""
    import cv2

    from ...models.layers import LUMA_WEIGHTS, SNR_EPS

    weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    maps = []
    for image in noisy.detach().float().cpu().numpy():
        hwc = np.ascontiguousarray(image.transpose(1, 2, 0)) * 255.0
        blurred = cv2.blur(hwc, (kernel_size, kernel_size)) / 255.0
        grey, grey_blurred = (hwc / 255.0) @ weights, blurred @ weights
        snr = grey_blurred / (np.abs(grey - grey_blurred) + SNR_EPS)
        maps.append(np.clip(snr / (snr.max() + SNR_EPS), 0.0, 1.0)[None])
    return torch.from_numpy(np.stack(maps).astype(np.float32)).to(noisy.device)


@contextlib.contextmanager
def official_style(model: nn.Module) -> Iterator[None]:
    """Run ``model`` (snr-decomp) with explicit attention and the host-side SNR map."""
    from ...models import layers

    saved = layers.masked_attention
    layers.masked_attention = explicit_masked_attention
    model.denoise_context = host_snr_map
    try:
        yield
    finally:
        layers.masked_attention = saved
        del model.denoise_context


@contextlib.contextmanager
def channels_last(model: nn.Module) -> Iterator[None]:
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def has_official_style(model: nn.Module) -> bool:
    from ...models.snr import SNRDecomp

    return isinstance(model, SNRDecomp)


class Trainer:
    """One ``dic train``-like step on a fixed batch: forward (with the clean image when the
    loss uses guidance), rate–distortion loss, backward, both Adam steps, context masks."""

    def __init__(self, model: nn.Module, batch: int, size: int, seed: int, device: torch.device):
        from ...losses import RateDistortionLoss

        self.model = model.train()
        joint = hasattr(model, "g_a_block1")
        self.criterion = RateDistortionLoss({
            "criterions": {"criterion_metric": "mse", "criterion_fea": "l1" if joint else None},
            "lambdas": {"lambda_metric": 0.0483, "lambda_fea": 3.0},
        })
        main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
        aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
        self.optimizer = torch.optim.Adam(main, lr=1e-5)
        self.aux_optimizer = torch.optim.Adam(aux, lr=1e-4)
        gt = torch.cat([synthetic_image(size, size, seed + i) for i in range(batch)])
        self.gt = gt.to(device)
        self.noisy = make_noisy(gt, 3, seed).to(device)

    def step(self, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        gt = self.gt.contiguous(memory_format=memory_format)
        noisy = self.noisy.contiguous(memory_format=memory_format)
        self.optimizer.zero_grad(set_to_none=True)
        self.aux_optimizer.zero_grad(set_to_none=True)
        out = self.model(noisy, gt if self.criterion.uses_guidance else None)
        terms = self.criterion(out, gt)
        (terms["loss"] + self.model.aux_loss()).backward()
        self.optimizer.step()
        self.aux_optimizer.step()
        with torch.no_grad():
            for module in self.model.modules():
                if isinstance(module, nn.Conv2d) and hasattr(module, "mask"):
                    module.weight.mul_(module.mask)

    def variant(self, name: str) -> Callable[[], None]:
        """The step of training variant ``name`` (see TRAIN_VARIANTS)."""
        def fn():
            if name == "official-style":
                with official_style(self.model):
                    self.step()
            elif name == "channels-last":
                with channels_last(self.model):
                    self.step(torch.channels_last)
            else:
                self.step()
        return fn


# torch 2.14.1 on the CPU crashes (heap corruption) in the backward pass of a 1×1 stride-2
# convolution with 3 input channels in channels_last, the skip path of CompressAI's first
# ResidualBlockWithStride; so the channels_last step is measured on CUDA only.
CHANNELS_LAST_CPU_SKIP = ("skipped on the CPU: torch crashes in the backward pass of the first block's "
                          "1x1 stride-2 convolution (3 input channels) in channels_last")


def train_variants(model: nn.Module, device: torch.device) -> List[str]:
    """The training variants that apply to ``model`` on ``device``."""
    names = [v for v in TRAIN_VARIANTS if v != "official-style" or has_official_style(model)]
    return [v for v in names if v != "channels-last" or device.type == "cuda"]


def bench_train(model: nn.Module, args: argparse.Namespace, device: torch.device) -> Dict[str, Any]:
    trainer = Trainer(model, args.train_batch, args.train_size, args.seed, device)
    names = train_variants(model, device)
    out: Dict[str, Any] = {"batch": args.train_batch, "size": args.train_size}
    if device.type == "cpu":
        out["channels-last"] = {"skipped": CHANNELS_LAST_CPU_SKIP}
    if args.repeats > 0:
        times = time_interleaved({v: trainer.variant(v) for v in names}, args.repeats, args.warmup, device)
        for v in names:
            out[v] = {"step_s": summary(times[v])}
    return out


# ============================================================================================
# Peak memory
def _vm_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ≥ 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    hwm = _vm_kib("VmHWM")
    if hwm is None:  # not Linux: the lifetime peak
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    return hwm / 1024


def _probe_main(spec_path: str) -> int:
    """Child process: load the model and inputs, run one operation, print its peak memory."""
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)
    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    from ...checkpoints import load_model

    device = torch.device(spec["device"])
    model = load_model(spec["model"]).to(device).eval()
    op, variant = spec["op"], spec["variant"]
    if op == "train":
        trainer = Trainer(model, spec["train_batch"], spec["train_size"], spec["seed"], device)
        fn = trainer.variant(variant)
    else:
        model.fast_coding = variant == "ours"
        data = spec["inputs"]
        noisy = data["noisy"].to(device)

        def fn():
            with torch.no_grad():
                if op == "encode":
                    model.compress(noisy)
                else:
                    model.decompress(data["strings"], data["shape"])
    baseline = _vm_kib("VmRSS")
    reset = _reset_peak_rss()
    fn()
    print(json.dumps({"peak_mib": _peak_rss_mib(), "baseline_mib": baseline / 1024 if baseline else None,
                      "reset": reset}))
    return 0


def probe_memory(spec: Dict[str, Any], workdir: str) -> Dict[str, Any]:
    """Peak RSS of ``spec``'s operation in a fresh Python process."""
    path = os.path.join(workdir, f"probe_{spec['op']}_{spec['variant']}.pkl")
    with open(path, "wb") as f:
        pickle.dump(spec, f)
    code = "import sys; from dic.apps.bench.runner import _probe_main; sys.exit(_probe_main(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"probe exited with {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cuda_peak(fn: Callable[[], Any], device: torch.device) -> Dict[str, Any]:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return {"peak_mib": torch.cuda.max_memory_allocated(device) / 2**20, "baseline_mib": base / 2**20}


def bench_memory(model: nn.Module, noisy: torch.Tensor, coded: Dict[str, Any],
                 args: argparse.Namespace, device: torch.device) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Peak memory of each coding path's encode and decode and of each training variant:
    ``{"coding": {path: {"encode_memory", "decode_memory"}}, "train": {variant: {"train_memory"}}}``."""
    from ...checkpoints import save_checkpoint

    jobs: List[Tuple[str, str]] = []
    if not args.no_coding:
        for path in ["ours"] + ([] if args.no_compressai else ["compressai"]):
            jobs += [("encode", path), ("decode", path)]
    if not args.no_train:
        jobs += [("train", v) for v in train_variants(model, device)]
    results: Dict[str, Dict[str, Dict[str, Any]]] = {"coding": {}, "train": {}}
    if device.type == "cuda":
        for op, variant in jobs:
            if op == "train":
                trainer = Trainer(copy.deepcopy(model), args.train_batch, args.train_size, args.seed, device)
                fn = trainer.variant(variant)
            else:
                def fn(op=op, variant=variant):
                    with torch.no_grad(), coding_path(model, variant):
                        if op == "encode":
                            model.compress(noisy)
                        else:
                            model.decompress(coded[variant]["strings"], coded[variant]["shape"])
            section = "train" if op == "train" else "coding"
            results[section].setdefault(variant, {})[f"{op}_memory"] = cuda_peak(fn, device)
        return results
    with tempfile.TemporaryDirectory(prefix="dic-bench-") as workdir:
        model_path = os.path.join(workdir, "model.pt")
        save_checkpoint(model_path, model)
        for op, variant in jobs:
            spec = {"op": op, "variant": variant, "model": model_path, "device": str(device),
                    "threads": args.threads, "train_batch": args.train_batch, "train_size": args.train_size,
                    "seed": args.seed, "inputs": None}
            if op != "train":
                strings = coded.get(variant, {})
                spec["inputs"] = {"noisy": noisy.cpu(), "strings": strings.get("strings"),
                                  "shape": strings.get("shape")}
            section = "train" if op == "train" else "coding"
            results[section].setdefault(variant, {})[f"{op}_memory"] = probe_memory(spec, workdir)
    return results


# ============================================================================================
# Driver and report
def machine_info(device: torch.device) -> Dict[str, Any]:
    import compressai

    info: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "compressai": compressai.__version__, "threads": torch.get_num_threads(),
                            "cpu": _cpu_name(), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    """Run every requested measurement; the results as a JSON-ready dict."""
    if args.repeats < 0 or args.warmup < 0:
        raise OptionError("--repeats and --warmup must be ≥ 0")
    if args.train_batch <= 0 or args.train_size <= 0:
        raise OptionError("--train-batch and --train-size must be positive")
    if args.threads < 0:
        raise OptionError("--threads must be ≥ 0")
    device = select_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    height, width = parse_size(args.size)
    model = build_model(args)
    gt, source = load_image(args, height, width)
    noisy = make_noisy(gt, args.noise_level, args.seed)
    results: Dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "dic bench " + " ".join(_argv_of(args)),
        "model": model.name, "hparams": dict(model.hparams),
        "weights": args.checkpoint or f"random (seed {args.seed})",
        "image": {"width": width, "height": height, "source": source, "noise_level": args.noise_level},
        "device": str(device), "repeats": args.repeats, "warmup": args.warmup,
        "machine": machine_info(device), "load_average_before": load_average(),
    }
    model.to(device)
    noisy_dev = noisy.to(device)
    coded: Dict[str, Any] = {}
    if not args.no_coding:
        results["coding"], coded = bench_coding(model, noisy_dev, args, device)
    if not args.no_train:
        results["train"] = bench_train(copy.deepcopy(model), args, device)
    if not args.no_memory and not (args.no_coding and args.no_train):
        memory = bench_memory(model.eval(), noisy_dev, coded, args, device)
        for section, variants in memory.items():
            for variant, entries in variants.items():
                results[section].setdefault(variant, {}).update(entries)
    results["load_average_after"] = load_average()
    results["ratios"] = ratios(results)
    return results


def ratios(results: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    """Median-time ratios from one run: ours / CompressAI for encode and decode, ours /
    official-style and channels-last / ours for the training step (below 1: the first is faster)."""
    out: Dict[str, Optional[float]] = {}
    coding = results.get("coding") or {}
    if "compressai" in coding:
        for op in ("encode", "decode"):
            out[f"{op}_time_ours_over_compressai"] = ratio(median_of(coding["ours"], f"{op}_s"),
                                                            median_of(coding["compressai"], f"{op}_s"))
    train = results.get("train") or {}
    ours = median_of(train.get("ours", {}), "step_s")
    for v in ("official-style", "channels-last"):
        if v in train:
            key = ("train_step_ours_over_official_style" if v == "official-style"
                   else "train_step_channels_last_over_ours")
            out[key] = (ratio(ours, median_of(train[v], "step_s")) if v == "official-style"
                        else ratio(median_of(train[v], "step_s"), ours))
    return out


def _argv_of(args: argparse.Namespace) -> List[str]:
    parts = []
    for key, value in sorted(vars(args).items()):
        if value in (None, False, []):
            continue
        flag = "--" + key.replace("_", "-") if key != "N" else "--N"
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [f"{flag} {v}" for v in value]
        else:
            parts.append(f"{flag} {value}")
    return parts


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mem(block: Mapping[str, Any], key: str) -> str:
    entry = block.get(key) or {}
    if "error" in entry:
        return "failed"
    if entry.get("peak_mib") is None:
        return "—"
    base = entry.get("baseline_mib")
    return f"{entry['peak_mib']:.0f}" + (f" (+{entry['peak_mib'] - base:.0f})" if base is not None else "")


def format_table(results: Mapping[str, Any]) -> str:
    """The human-readable report of :func:`benchmark`'s results."""
    img = results["image"]
    lines = [
        f"{results['model']} N={results['hparams'].get('N')} · weights {results['weights']} · image "
        f"{img['width']}x{img['height']} ({img['source']}, noise level {img['noise_level']}) · "
        f"{results['device']}, {results['machine']['threads']} thread(s), {results['machine']['cpu']} · "
        f"median of {results['repeats']} after {results['warmup']} warm-up · load average "
        f"{results.get('load_average_before')} → {results.get('load_average_after')}",
    ]
    mem_unit = "MiB, peak RSS" if results["device"] == "cpu" else "MiB, CUDA peak allocated"
    coding = results.get("coding")
    if coding:
        ours, cai = coding["ours"], coding.get("compressai", {})
        lines += ["", f"{'coding':28s}{'ours':>14s}{'CompressAI':>14s}{'ours/CAI':>10s}"]
        for op in ("encode", "decode"):
            a, b = median_of(ours, f"{op}_s"), median_of(cai, f"{op}_s")
            lines.append(f"{op + ' time (s)':28s}{_fmt(a):>14s}{_fmt(b):>14s}{_fmt(ratio(a, b)):>10s}")
        for op in ("encode", "decode"):
            lines.append(f"{op + ' peak memory (MiB)':28s}{_mem(ours, op + '_memory'):>14s}"
                         f"{_mem(cai, op + '_memory'):>14s}")
        lines.append(f"{'bitstream (bytes)':28s}{ours['bytes']:>14d}" + (f"{cai['bytes']:>14d}" if cai else ""))
        if "strings_identical" in coding:
            lines.append(f"strings identical: {'yes' if coding['strings_identical'] else 'NO'}; decoded images "
                         f"differ by at most {coding['max_abs_diff']:.2e} ({coding['pixels_differing_8bit']} "
                         "8-bit values differ)")
    train = results.get("train")
    if train:
        names = [v for v in TRAIN_VARIANTS if v in train and "skipped" not in train[v]]
        lines += ["", f"training step, batch {train['batch']} × {train['size']}²".ljust(28)
                  + "".join(f"{n:>18s}" for n in names)]
        lines.append(f"{'time (s)':28s}" + "".join(f"{_fmt(median_of(train[n], 'step_s')):>18s}" for n in names))
        lines.append(f"{'peak memory (MiB)':28s}" + "".join(f"{_mem(train[n], 'train_memory'):>18s}" for n in names))
        lines += [f"{v}: {train[v]['skipped']}" for v in TRAIN_VARIANTS if "skipped" in train.get(v, {})]
    shown = {k: v for k, v in results["ratios"].items() if v is not None}
    if shown:
        lines += ["", "ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items())]
    if coding or train:
        lines.append(f"memory: {mem_unit}" + (" of a fresh process that loads the model and runs the operation "
                                             "once (weights and torch runtime included); (+…): the rise during "
                                             "the operation" if results["device"] == "cpu" else ""))
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
