"""``dic bench``: how fast a model codes and trains, and how much memory it needs, beside
CompressAI's own coding path on the same weights (docs/performance.md).

Measured, each as the median of ``--repeats`` runs after ``--warmup`` runs, the compared sides
interleaved run by run so that they see the same machine load (:mod:`.timing`):

- encode / decode wall time of ``model.compress`` / ``model.decompress`` on one noisy image,
  with the serial and the checkerboard context model (twins with the same weights), each
  through our coder and CompressAI's, and the analysis and synthesis alone (:mod:`.coding`);
- one training step of ``dic train``'s own :class:`~dic.apps.train.step.TrainStep`: ours, an
  official-style model (:mod:`.official`) and channels_last tensors (:mod:`.training`);
- peak memory of each (:mod:`.memory`);
- the roofline: each transform's GFLOP, achieved GFLOP/s and distance to the machine's measured
  matrix-product peak in each precision (:mod:`.roofline`).

Weights are random (``--seed``) unless ``--checkpoint`` is given: timings of the networks do
not depend on them, but the entropy coder's work does a little (how many distinct scales a
position uses), so say which weights a figure used.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any, Dict, List, Optional

import compressai
import numpy as np
import torch

from ...errors import ArgumentError, OptionError
from ...fileio import atomic_write_text
from ...models.precision import describe as describe_precision, resolve_precision
from ..runtime import parse_device
from .arguments import check_args, parse_contexts, parse_list
from .coding import (PATH_CONTEXT, PATH_PRECISION, bench_coding, coding_paths, context_twins, default_paths,
                     path_precisions)
from .inputs import build_model, load_image, make_noisy, parse_size
from .memory import Job, bench_memory
from .report import format_table, ratios
from .roofline import measure_peaks, roofline
from .training import bench_train, train_variants

FORMAT = "dic-bench"
VERSION = 1


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, write the JSON file when asked."""
    results = benchmark(args)
    print(format_table(results))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


def benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    """Run every requested measurement; the results as a JSON-ready dict (``format``
    :data:`FORMAT`, ``version`` :data:`VERSION`). ``--threads`` holds for the measurements
    only: the caller's thread count is put back afterwards."""
    previous = torch.get_num_threads()
    try:
        return _benchmark(args)
    finally:
        torch.set_num_threads(previous)


def _benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    check_args(args)
    device = parse_device(args.device, "--device")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    height, width = parse_size(args.size)
    model = build_model(args)
    gt, source = load_image(args.image, height, width, args.seed)
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
    noisy = noisy.to(device)
    contexts = [] if args.no_coding else parse_contexts(args.contexts)
    requested = parse_list(args.paths) if args.paths else default_paths(device)
    paths = [p for p in coding_paths(args.no_compressai, contexts) if p in requested]
    for path in paths:  # a precision this device cannot run: refused before anything is measured
        try:
            resolve_precision(PATH_PRECISION[path], device)
        except ArgumentError as e:
            raise OptionError(f"--paths {path}: {e.detail}") from None
    twins = context_twins(model, contexts)
    coded: Dict[str, Any] = {}
    if not args.no_coding:
        results["coding"], coded = bench_coding(twins, noisy, paths, args.repeats, args.warmup, device,
                                                count_flops=not args.no_roofline)
        if not args.no_roofline and results["coding"].get("components"):
            peaks = measure_peaks(device, path_precisions(paths), args.peak_size)
            results["roofline"] = roofline(results["coding"]["components"], peaks)
    if not args.no_train:
        results["train"] = bench_train(model, args.train_batch, args.train_size, args.seed, args.repeats,
                                       args.warmup, device, parse_list(args.train_variants))
    jobs: Dict[Job, torch.nn.Module] = {}
    if not args.no_coding:
        jobs.update({(op, p): twins[PATH_CONTEXT[p]].eval() for p in paths for op in ("encode", "decode")})
    if not args.no_train:
        jobs.update({("train", v): model.eval() for v in train_variants(model, device, parse_list(args.train_variants))})
    if not args.no_memory and jobs:
        train_opts = {"batch": args.train_batch, "size": args.train_size, "seed": args.seed}
        memory = bench_memory(jobs, noisy, coded, train_opts, args.threads, device)
        for section, variants in memory.items():
            for variant, entries in variants.items():
                results[section].setdefault(variant, {}).update(entries)
    results["load_average_after"] = load_average()
    results["ratios"] = ratios(results)
    return results


def machine_info(device: torch.device) -> Dict[str, Any]:
    """Versions, threads and processor the figures came from."""
    info: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "compressai": compressai.__version__, "threads": torch.get_num_threads(),
                            "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
                            "numpy": np.__version__, "precision": describe_precision(device)}
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
    """The 1, 5 and 15-minute load averages, where the platform has them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _argv_of(args: argparse.Namespace) -> List[str]:
    """The options of ``args`` that differ from "unset", as command-line text."""
    parts = []
    for key, value in sorted(vars(args).items()):
        if value in (None, False, []) or key == "command" or callable(value):  # `dic`'s own entries
            continue
        flag = "--" + key.replace("_", "-") if key != "N" else "--N"
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [f"{flag} {v}" for v in value]
        else:
            parts.append(f"{flag} {value}")
    return parts

