"""The results of ``dic bench`` for people: the ratios of one run's medians and the table."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .roofline import roofline_lines, roofline_ratios
from .timing import median_of, ratio
from .training import TRAIN_VARIANTS


#: Coding ratios: name → (numerator path, denominator path), both medians of one op.
CODING_RATIOS = {
    "ours_over_compressai": ("ours", "compressai"),
    "exact_over_float": ("exact", "ours"),
    "exact_checkerboard_over_float": ("exact-checkerboard", "checkerboard"),
    "checkerboard_over_serial": ("checkerboard", "ours"),
    "checkerboard_over_compressai_checkerboard": ("checkerboard", "compressai-checkerboard"),
    "bf16_over_compressai": ("exact-bf16", "compressai"),
    "bf16_over_float32": ("exact-bf16", "exact"),
    "fp16_over_compressai": ("exact-fp16", "compressai"),
    "fp16_over_float32": ("exact-fp16", "exact"),
}
#: Column titles of the coding paths.
PATH_TITLES = {"exact": "serial exact", "ours": "serial float", "compressai": "serial (CAI)",
               "exact-checkerboard": "checkerb. exact", "checkerboard": "checkerb. float",
               "compressai-checkerboard": "checkerb. (CAI)", "exact-bf16": "exact bf16",
               "exact-fp16": "exact fp16"}


def ratios(results: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    """Median-time ratios from one run: for encode and decode, ours / CompressAI (serial),
    checkerboard / serial and ours / CompressAI (checkerboard); the synthesis's share of the
    checkerboard decode; ours / official-style and channels-last / ours for the training step
    (below 1: the first is faster); and each training variant's speed-up over the
    official-style step (official-style time / variant time: above 1, the variant is faster)."""
    out: Dict[str, Optional[float]] = {}
    coding = results.get("coding") or {}
    for op in ("encode", "decode"):
        for name, (a, b) in CODING_RATIOS.items():
            if a in coding and b in coding:
                out[f"{op}_time_{name}"] = ratio(median_of(coding[a], f"{op}_s"), median_of(coding[b], f"{op}_s"))
    components = coding.get("components") or {}
    for path in ("ours", "checkerboard"):
        if path in coding and components:
            out[f"synthesis_share_of_{path}_decode"] = ratio(median_of(components, "synthesis_s"),
                                                             median_of(coding[path], "decode_s"))
    train = results.get("train") or {}
    ours = median_of(train.get("ours", {}), "step_s")
    if "official-style" in train:
        out["train_step_ours_over_official_style"] = ratio(ours, median_of(train["official-style"], "step_s"))
    if "channels-last" in train:
        out["train_step_channels_last_over_ours"] = ratio(median_of(train["channels-last"], "step_s"), ours)
    official = median_of(train.get("official-style", {}), "step_s")
    for v in TRAIN_VARIANTS:
        if v != "official-style" and median_of(train.get(v, {}), "step_s") is not None and official is not None:
            out[f"train_speedup_{v.replace('-', '_')}_vs_official_style"] = ratio(official, median_of(train[v], "step_s"))
    if results.get("roofline"):
        out.update(roofline_ratios(results["roofline"]))
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
    paths = [p for p in PATH_TITLES if p in coding]
    lines = ["", f"{'coding':26s}" + "".join(f"{PATH_TITLES[p]:>16s}" for p in paths)]
    for op in ("encode", "decode"):
        lines.append(f"{op + ' time (s)':26s}" + "".join(f"{_fmt(median_of(coding[p], op + '_s')):>16s}" for p in paths))
    for op in ("encode", "decode"):
        if any(coding[p].get(op + "_memory") for p in paths):
            lines.append(f"{op + ' peak memory (MiB)':26s}" + "".join(f"{_mem(coding[p], op + '_memory'):>16s}" for p in paths))
    lines.append(f"{'bitstream (bytes)':26s}" + "".join(f"{coding[p]['bytes']:>16d}" for p in paths))
    components = coding.get("components") or {}
    if components:
        lines.append("alone, same rounds: analysis (encode's network) "
                     f"{_fmt(median_of(components, 'analysis_s'))} s, synthesis g_s "
                     f"{_fmt(median_of(components, 'synthesis_s'))} s")
        for precision in ("bfloat16", "float16"):
            if median_of(components, f"synthesis_{precision}_s") is not None:
                lines.append(f"  in {precision}: analysis {_fmt(median_of(components, f'analysis_{precision}_s'))} s, "
                             f"synthesis {_fmt(median_of(components, f'synthesis_{precision}_s'))} s")
    exact = coding.get("round_trip_exact", {})
    if exact:
        lines.append("decoded symbols equal the encoder's: " + ", ".join(
            f"{PATH_TITLES[p]} {'yes' if ok else 'NO'}" for p, ok in exact.items()))
    if "strings_identical" in coding:
        lines.append(f"serial: strings identical to CompressAI's: {'yes' if coding['strings_identical'] else 'NO'}; "
                     f"decoded images differ by at most {coding['max_abs_diff']:.2e} "
                     f"({coding['pixels_differing_8bit']} 8-bit values differ)")
    if "checkerboard_symbols_identical" in coding:
        lines.append(f"checkerboard: symbols identical to CompressAI's: "
                     f"{'yes' if coding['checkerboard_symbols_identical'] else 'NO'}; decoded images differ by at "
                     f"most {coding['checkerboard_max_abs_diff']:.2e} ({coding['checkerboard_pixels_differing_8bit']} "
                     "8-bit values differ)")
    return lines


def _train_lines(train: Mapping[str, Any]) -> List[str]:
    names = [v for v in TRAIN_VARIANTS if v in train and "skipped" not in train[v]]
    lines = ["", f"training step, batch {train['batch']} × {train['size']}²".ljust(28)
             + "".join(f"{n:>15s}" for n in names)]
    lines.append(f"{'time (s)':28s}" + "".join(f"{_fmt(median_of(train[n], 'step_s'), 3):>15s}" for n in names))
    if any(train[n].get("train_memory") for n in names):
        lines.append(f"{'peak memory (MiB)':28s}" + "".join(f"{_mem(train[n], 'train_memory'):>15s}" for n in names))
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
    if results.get("roofline"):
        lines += roofline_lines(results["roofline"])
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
