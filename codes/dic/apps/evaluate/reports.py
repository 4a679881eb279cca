"""Evaluation outputs: per-image CSV rows, per-entry JSON reports in CompressAI's ``eval_model``
layout, the SIDD benchmark's submission files and the console table (docs/evaluation.md).

Every CSV row and every JSON report records the test protocol it was measured under
(:mod:`.protocol`), so ``dic bdrate`` can refuse to compare figures of different protocols."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ...fileio import atomic_output, atomic_write_text
from .coders import EntryInfo

CSV_FIELDS = ("dataset", "method", "entry", "quality", "checkpoint", "image", "height", "width",
              "bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encoding_time", "decoding_time", "protocol")
CSV_NUMERIC = {"height", "width", "bytes", "quality", "bpp", "psnr", "ms_ssim", "ms_ssim_db",
               "encoding_time", "decoding_time"}
#: report key ← CSV column, averaged over the images of one entry
REPORT_METRICS = (("psnr", "psnr"), ("ms-ssim", "ms_ssim"), ("ms-ssim-db", "ms_ssim_db"), ("bpp", "bpp"),
                  ("encoding_time", "encoding_time"), ("decoding_time", "decoding_time"))
#: CompressAI 1.2's plotting tool reads these names for psnr / ms-ssim
COMPRESSAI_ALIASES = (("psnr-rgb", "psnr"), ("ms-ssim-rgb", "ms-ssim"))


@dataclass
class MethodResult:
    """Everything one method produced on one test set."""

    method: str
    description: str
    estimation: bool
    entries: List[EntryInfo] = field(default_factory=list)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    submissions: List[str] = field(default_factory=list)  # SIDD benchmark .mat files
    precision: Optional[str] = None  # a model's transforms when coding (test.precision)


# ------------------------------------------------------------------------------------------
# Averages
def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return float(np.mean(values))


def summarise(rows: Sequence[Mapping[str, Any]], entries: Sequence[EntryInfo]) -> List[Dict[str, Any]]:
    """Per-entry averages of the per-image rows, sorted by bpp (then quality)."""
    out = []
    for entry in entries:
        mine = [r for r in rows if r["entry"] == entry.tag and r["checkpoint"] == entry.checkpoint]
        if not mine:
            continue
        means = {key: _mean(r[col] for r in mine) for key, col in REPORT_METRICS}
        # MS-SSIM dB of the mean MS-SSIM would differ from the mean of dB values; report the mean
        # of the per-image dB values, as the CSV holds, so the two files agree row by row.
        out.append({"entry": entry, "num_images": len(mine), "means": means})
    out.sort(key=lambda e: (e["means"]["bpp"], e["entry"].quality or 0))
    return out


def build_report(method: str, label: str, summary: Sequence[Mapping[str, Any]], description: str,
                 extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """CompressAI ``eval_model`` layout: ``name``, ``description``, ``results`` of lists."""
    results: Dict[str, List[Optional[float]]] = {}
    for key, _ in REPORT_METRICS:
        values = [s["means"][key] for s in summary]
        if all(v is None for v in values):
            continue  # e.g. no distortion without ground truth, no decoding time when estimating
        results[key] = values
    for alias, key in COMPRESSAI_ALIASES:
        if key in results:
            results[alias] = results[key]
    report = {
        "name": method,
        "description": description,
        "dataset": label,
        "entries": [s["entry"].tag for s in summary],
        "quality": [s["entry"].quality for s in summary],
        "num_images": [s["num_images"] for s in summary],
        "results": results,
    }
    if any(s["entry"].checkpoint for s in summary):
        report["checkpoints"] = [s["entry"].checkpoint for s in summary]
    if extra:
        report.update(extra)
    return report


# ------------------------------------------------------------------------------------------
# Files
def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """One line per row, the columns of :data:`CSV_FIELDS` (None → empty), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_FIELDS})
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> List[Dict[str, Any]]:
    """Rows of a CSV written by :func:`write_csv`, numbers parsed back (empty → None)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append({k: (None if v == "" else float(v) if k in CSV_NUMERIC else v) for k, v in row.items()})
    return out


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def write_sidd_submission(path: Path, blocks: Mapping[Tuple[int, int], np.ndarray], time_mp: float,
                          bpp: float, method: str) -> Tuple[int, int]:
    """The SIDD benchmark's submission file: a cell array ``DenoisedBlocksSrgb`` (images × blocks,
    each a 256×256×3 uint8 block), ``TimeMPSrgb`` (seconds per megapixel) and, beside them,
    ``OptionalData`` with the method name and the bpp. Cells of missing blocks stay empty."""
    from scipy.io import savemat  # optional path: only SIDD benchmark submissions need scipy.io

    n = max(i for i, _ in blocks) + 1
    b = max(j for _, j in blocks) + 1
    cells = np.empty((n, b), dtype=object)
    for i in range(n):
        for j in range(b):
            cells[i, j] = blocks.get((i, j), np.zeros((0, 0, 3), dtype=np.uint8))
    with atomic_output(path, suffix=".mat") as tmp:  # savemat appends .mat to other names
        savemat(str(tmp), {"DenoisedBlocksSrgb": cells, "TimeMPSrgb": float(time_mp),
                           "OptionalData": {"MethodName": method, "Bpp": float(bpp)}}, do_compression=True)
    return n, b


def write_submission(out_dir: Path, method: str, tag: str, blocks: Mapping[Tuple[int, int], np.ndarray],
                     rows: Sequence[Mapping[str, Any]]) -> str:
    """``<method>_<tag>_SubmitSrgb.mat`` of one entry: its blocks, seconds per megapixel
    (encoding + decoding) and mean bpp."""
    pixels = sum(r["height"] * r["width"] for r in rows)
    seconds = sum((r["encoding_time"] or 0) + (r["decoding_time"] or 0) for r in rows)
    bpp = float(np.mean([r["bpp"] for r in rows]))
    path = out_dir / f"{method.replace('/', '_')}_{tag}_SubmitSrgb.mat"
    write_sidd_submission(path, blocks, seconds / (pixels / 1e6), bpp, method)
    return str(path)


def write_outputs(result: MethodResult, label: str, level: Optional[int], out_dir: Path, run_name: str,
                  protocol: str) -> Dict[str, Any]:
    """CSV and JSON report of one method on the test set ``label`` (the SIDD submission files
    are already written); the report, with its ``_json`` and ``_csv`` paths."""
    summary = summarise(result.rows, result.entries)
    stem = result.method.replace("/", "_")
    extra: Dict[str, Any] = {"estimation": result.estimation, "protocol": protocol, "run": run_name}
    if level is not None:
        extra["level"] = level
    if result.precision is not None and not result.estimation:
        extra["precision"] = result.precision
    description = f"{run_name}: {result.description} on {label} ({protocol} protocol)"
    report = build_report(result.method, label, summary, description, extra)
    write_csv(out_dir / f"{stem}.csv", result.rows)
    if result.submissions:
        report["sidd_submission"] = result.submissions
    write_json(out_dir / f"{stem}.json", report)
    report["_json"] = str(out_dir / f"{stem}.json")
    report["_csv"] = str(out_dir / f"{stem}.csv")
    return report


def format_table(reports: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """A plain-text table: one line per test set, method and entry."""
    columns = (("bpp", 8, ".4f"), ("psnr", 7, ".2f"), ("ms-ssim", 8, ".4f"),
               ("encoding_time", 8, ".3f"), ("decoding_time", 8, ".3f"))
    lines = [f"{'data set':<20s} {'method':<28s} {'entry':>10s} {'bpp':>8s} {'PSNR':>7s} {'MS-SSIM':>8s} "
             f"{'enc (s)':>8s} {'dec (s)':>8s}"]
    for label, items in reports.items():
        for report in items:
            res = report["results"]
            for k, tag in enumerate(report["entries"]):
                cells = []
                for key, width, fmt in columns:
                    v = res.get(key, [None] * len(report["entries"]))[k]
                    cells.append(format(v, fmt).rjust(width) if v is not None else "-".rjust(width))
                lines.append(f"{label:<20s} {report['name']:<28s} {tag:>10s} " + " ".join(cells))
    return "\n".join(lines)
