"""The peak-memory measurements of ``dic bench``.

CPU: the peak resident set (``VmHWM`` of /proc, reset through ``/proc/self/clear_refs`` just
before the operation) of a fresh Python process that loads the model and inputs and runs the
operation once (:func:`_probe_main`); it counts everything resident, weights and the torch
runtime included. CUDA: ``torch.cuda.max_memory_allocated`` around one run in this process."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from ...checkpoints import save_checkpoint
from ...checkpoints import load_for_inference
from .coding import coding_op
from .training import VariantStep

try:  # the lifetime peak, where /proc is missing (not on Windows)
    import resource
except ImportError:  # pragma: no cover
    resource = None

#: What the child process runs: ``python -c PROBE_CODE spec.pkl``.
PROBE_CODE = "import sys; from dic.apps.bench.memory import _probe_main; sys.exit(_probe_main(sys.argv[1]))"

Job = Tuple[str, str]  # (operation: encode, decode or train; coding path or training variant)


def _vm_kib(field: str) -> Optional[int]:
    """A ``Vm…`` field of /proc/self/status in KiB; None where there is none."""
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


def _peak_rss_mib() -> Optional[float]:
    """The peak resident set since the last reset (Linux) or of the process's lifetime."""
    hwm = _vm_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    if resource is None:
        return None
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _probe_op(spec: Mapping[str, Any]) -> Callable[[], None]:
    """Load the model of ``spec`` and prepare its operation."""
    device = torch.device(spec["device"])
    model = load_for_inference(spec["model"], update=False, device=device)
    op, variant = spec["op"], spec["variant"]
    if op == "train":
        return VariantStep(model, variant, spec["train_batch"], spec["train_size"], spec["seed"], device,
                           copy_model=False)
    inputs = spec["inputs"]
    return coding_op(model, op, variant, inputs["noisy"].to(device), inputs)


def _probe_main(spec_path: str) -> int:
    """Child process: load the model and inputs, run one operation, print its peak memory as
    one JSON line ``{"peak_mib", "baseline_mib", "reset"}``."""
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)
    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    fn = _probe_op(spec)
    baseline = _vm_kib("VmRSS")
    reset = _reset_peak_rss()
    fn()
    print(json.dumps({"peak_mib": _peak_rss_mib(), "baseline_mib": baseline / 1024 if baseline else None,
                      "reset": reset}))
    return 0


def probe_memory(spec: Dict[str, Any], workdir: str) -> Dict[str, Any]:
    """Peak RSS of ``spec``'s operation in a fresh Python process; ``{"error": …}`` when the
    process failed (its last lines of output)."""
    path = os.path.join(workdir, f"probe_{spec['op']}_{spec['variant']}.pkl")
    with open(path, "wb") as f:
        pickle.dump(spec, f)
    proc = subprocess.run([sys.executable, "-c", PROBE_CODE, path], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"probe exited with {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cuda_peak(fn: Callable[[], Any], device: torch.device) -> Dict[str, Any]:
    """Peak CUDA memory allocated while ``fn`` runs once, and what was allocated before."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return {"peak_mib": torch.cuda.max_memory_allocated(device) / 2**20, "baseline_mib": base / 2**20}


def bench_memory(models: Mapping[Job, nn.Module], noisy: torch.Tensor, coded: Mapping[str, Any],
                 train_opts: Mapping[str, int], threads: int,
                 device: torch.device) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Peak memory of each job, run on its model (``models``: job → model, e.g. a coding path's
    context twin): ``{"coding": {path: {"encode_memory", "decode_memory"}}, "train": {variant:
    {"train_memory"}}}``. ``train_opts``: ``batch``, ``size``, ``seed``."""
    results: Dict[str, Dict[str, Dict[str, Any]]] = {"coding": {}, "train": {}}
    if device.type == "cuda":
        for (op, variant), model in models.items():
            if op == "train":
                fn: Callable[[], Any] = VariantStep(model, variant, train_opts["batch"], train_opts["size"],
                                                    train_opts["seed"], device)
            else:
                fn = coding_op(model, op, variant, noisy, coded[variant])
            section = "train" if op == "train" else "coding"
            results[section].setdefault(variant, {})[f"{op}_memory"] = cuda_peak(fn, device)
            del fn
        return results
    with tempfile.TemporaryDirectory(prefix="dic-bench-") as workdir:
        paths: Dict[int, str] = {}
        for (op, variant), model in models.items():
            if id(model) not in paths:  # each distinct model saved once
                paths[id(model)] = os.path.join(workdir, f"model{len(paths)}.pt")
                save_checkpoint(paths[id(model)], model)
            spec = {"op": op, "variant": variant, "model": paths[id(model)], "device": str(device),
                    "threads": threads, "train_batch": train_opts["batch"], "train_size": train_opts["size"],
                    "seed": train_opts["seed"], "inputs": None}
            if op != "train":
                strings = coded.get(variant, {})
                spec["inputs"] = {"noisy": noisy.cpu(), "strings": strings.get("strings"),
                                  "shape": strings.get("shape")}
            section = "train" if op == "train" else "coding"
            results[section].setdefault(variant, {})[f"{op}_memory"] = probe_memory(spec, workdir)
    return results
