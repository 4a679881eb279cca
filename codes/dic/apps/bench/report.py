"""The results of ``dic bench`` for people: the ratios of one run's medians and the table."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .timing import median_of, ratio
from .training import TRAIN_VARIANTS


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
    if "official-style" in train:
        out["train_step_ours_over_official_style"] = ratio(ours, median_of(train["official-style"], "step_s"))
    if "channels-last" in train:
        out["train_step_channels_last_over_ours"] = ratio(median_of(train["channels-last"], "step_s"), ours)
    return out


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mem(block: Mapping[str, Any], key: str) -> str:
    """``peak (+rise)`` in MiB of a memory entry, ``failed`` or ``—``."""
    entry = block.get(key) or {}
    if "error" in entry:
        return "failed"
    if entry.get("peak_mib") is None:
        return "—"
    base = entry.get("baseline_mib")
    return f"{entry['peak_mib']:.0f}" + (f" (+{entry['peak_mib'] - base:.0f})" if base is not None else "")


def _header(results: Mapping[str, Any]) -> str:
    img, machine = results["image"], results["machine"]
    return (f"{results['model']} N={results['hparams'].get('N')} · weights {results['weights']} · image "
            f"{img['width']}x{img['height']} ({img['source']}, noise level {img['noise_level']}) · "
            f"{results['device']}, {machine['threads']} thread(s), {machine['cpu']} · "
            f"median of {results['repeats']} after {results['warmup']} warm-up · load average "
            f"{results.get('load_average_before')} → {results.get('load_average_after')}")


def _coding_lines(coding: Mapping[str, Any]) -> List[str]:
    ours, cai = coding["ours"], coding.get("compressai", {})
    lines = ["", f"{'coding':28s}{'ours':>14s}{'CompressAI':>14s}{'ours/CAI':>10s}"]
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
    return lines


def _train_lines(train: Mapping[str, Any]) -> List[str]:
    names = [v for v in TRAIN_VARIANTS if v in train and "skipped" not in train[v]]
    lines = ["", f"training step, batch {train['batch']} × {train['size']}²".ljust(28)
             + "".join(f"{n:>18s}" for n in names)]
    lines.append(f"{'time (s)':28s}" + "".join(f"{_fmt(median_of(train[n], 'step_s')):>18s}" for n in names))
    lines.append(f"{'peak memory (MiB)':28s}" + "".join(f"{_mem(train[n], 'train_memory'):>18s}" for n in names))
    lines += [f"{v}: {train[v]['skipped']}" for v in TRAIN_VARIANTS if "skipped" in train.get(v, {})]
    lines += [f"{v}: {train[v]['capped_steps']} step(s) refused by the trainer (non-finite loss): no backward pass"
              for v in names if train[v].get("capped_steps")]
    return lines


def format_table(results: Mapping[str, Any]) -> str:
    """The human-readable report of :func:`dic.apps.bench.benchmark`'s results."""
    lines = [_header(results)]
    coding, train = results.get("coding"), results.get("train")
    if coding:
        lines += _coding_lines(coding)
    if train:
        lines += _train_lines(train)
    shown = {k: v for k, v in results["ratios"].items() if v is not None}
    if shown:
        lines += ["", "ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items())]
    if coding or train:
        cpu = results["device"] == "cpu"
        lines.append("memory: " + ("MiB, peak RSS of a fresh process that loads the model and runs the operation "
                                   "once (weights and torch runtime included); (+…): the rise during the operation"
                                   if cpu else "MiB, CUDA peak allocated"))
    return "\n".join(lines)
