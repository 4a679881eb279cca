"""The one table of ``scripts/gpu_check.sh`` (docs/performance.md): reads what its stages left in
one folder — ``stages.tsv`` (stage, exit code, seconds), the CUDA tests' JUnit XML,
``bench_coding.json``, ``bench_precision.json`` (the transforms in float32, bfloat16 and
float16, with the roofline), ``bench_train.json``, ``bench_compile.json`` (``dic bench --json``)
and ``crossdevice.json`` — prints one table and writes everything to ``gpu_check.json``. A stage
that failed or timed out shows as such; the exit code is 1 when any did."""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ...fileio import atomic_write_text
from .report import PATH_TITLES
from .roofline import roofline_lines
from .timing import median_of, ratio
from .training import TRAIN_VARIANTS

BENCH_FILES = ("bench_coding", "bench_precision", "bench_train", "bench_compile")


def read_stages(folder: Path) -> List[Dict[str, Any]]:
    """The stages the script ran: ``[{"stage", "rc", "seconds"}]`` (124: timed out)."""
    path = folder / "stages.tsv"
    if not path.is_file():
        return []
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return [{"stage": r[0], "rc": int(r[1]), "seconds": float(r[2])} for r in rows if len(r) == 3]


def read_junit(path: Path) -> Optional[Dict[str, int]]:
    """Test counts of a JUnit XML file (pytest --junitxml), or None when there is none."""
    if not path.is_file():
        return None
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return total


#: The cross-device checks: encode on the GPU and decode on the CPU, and the other way round.
CROSS_FILES = ("crossdevice", "crossdevice_back")


def _load(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(folder: Path) -> Dict[str, Any]:
    """Everything the stages wrote, in one dict."""
    out: Dict[str, Any] = {"stages": read_stages(folder), "cuda_tests": read_junit(folder / "cuda_tests.xml")}
    for name in (*BENCH_FILES, *CROSS_FILES):
        out[name] = _load(folder / f"{name}.json")
    return out


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _stage_lines(data: Mapping[str, Any]) -> List[str]:
    lines = [f"{'stage':22s}{'status':>14s}{'time (s)':>10s}"]
    for s in data["stages"]:
        status = "ok" if s["rc"] == 0 else ("TIMED OUT" if s["rc"] in (124, 137) else f"FAILED ({s['rc']})")
        lines.append(f"{s['stage']:22s}{status:>14s}{s['seconds']:>10.0f}")
    tests = data.get("cuda_tests")
    if tests:
        lines.append(f"CUDA tests: {tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
                     f"{tests['skipped']} skipped")
    return lines


def _coding_lines(bench: Mapping[str, Any], title: str = "coding") -> List[str]:
    coding = bench.get("coding") or {}
    paths = [p for p in PATH_TITLES if p in coding]
    img = bench["image"]
    lines = ["", f"{title} {img['width']}×{img['height']}, N={bench['hparams'].get('N')}".ljust(26)
             + "".join(f"{PATH_TITLES[p]:>16s}" for p in paths)]
    for op in ("encode", "decode"):
        lines.append(f"{op + ' (s)':26s}" + "".join(f"{_fmt(median_of(coding[p], op + '_s')):>16s}" for p in paths))
    comp = coding.get("components") or {}
    lines.append(f"analysis alone {_fmt(median_of(comp, 'analysis_s'))} s, synthesis alone "
                 f"{_fmt(median_of(comp, 'synthesis_s'))} s; decode checkerboard / serial "
                 f"{_fmt(bench['ratios'].get('decode_time_checkerboard_over_serial'))}")
    for precision in ("bfloat16", "float16"):
        if median_of(comp, f"synthesis_{precision}_s") is not None:
            lines.append(f"  in {precision}: analysis {_fmt(median_of(comp, f'analysis_{precision}_s'))} s, "
                         f"synthesis {_fmt(median_of(comp, f'synthesis_{precision}_s'))} s")
    exact = coding.get("round_trip_exact") or {}
    lines.append("decoded symbols equal the encoder's: " + (", ".join(
        f"{PATH_TITLES[p]} {'yes' if ok else 'NO'}" for p, ok in exact.items()) or "—"))
    shown = {k: v for k, v in (bench.get("ratios") or {}).items() if v is not None
             and any(t in k for t in ("bf16_", "fp16_", "time_over_peak"))}
    if shown:
        lines.append("ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    if bench.get("roofline"):
        lines += roofline_lines(bench["roofline"])
    return lines


def _train_lines(bench: Mapping[str, Any]) -> List[str]:
    train = bench.get("train") or {}
    names = [v for v in TRAIN_VARIANTS if median_of(train.get(v, {}), "step_s") is not None]
    if not names:
        return []
    official = median_of(train.get("official-style", {}), "step_s")
    lines = ["", f"training step {train['batch']}×{train['size']}²".ljust(26) + "".join(f"{n:>15s}" for n in names)]
    lines.append(f"{'time (s)':26s}" + "".join(f"{_fmt(median_of(train[n], 'step_s')):>15s}" for n in names))
    lines.append(f"{'speed-up vs official':26s}"
                 + "".join(f"{_fmt(ratio(official, median_of(train[n], 'step_s')), 2):>15s}" for n in names))
    return lines


def _cross_lines(cross: Mapping[str, Any]) -> List[str]:
    lines = ["", f"encode on {cross['encode_device']}, decode on {cross['decode_device']}:"]
    for context, r in cross["contexts"].items():
        detail = (f"identical latents; images differ by ≤ {r['max_abs_diff_8bit']} (8-bit) in {r['pixels_differing']} "
                  "values" if r["outcome"] == "identical" else f"caught by the checksum: {r['error'][:120]}")
        lines.append(f"  {context}: {detail}")
    return lines


def format_summary(data: Mapping[str, Any]) -> str:
    """The table."""
    benches = [data[n] for n in BENCH_FILES if data.get(n)]
    head = benches[0] if benches else None
    lines = ["GPU check" + (f" — {head['machine'].get('gpu', head['device'])} · torch {head['machine']['torch']} · "
                           f"{head['date']}" if head else "")]
    lines += _stage_lines(data)
    if data.get("bench_coding"):
        lines += _coding_lines(data["bench_coding"])
    if data.get("bench_precision"):
        lines += _coding_lines(data["bench_precision"], "precision")
    merged: Dict[str, Any] = {}
    for name in ("bench_train", "bench_compile"):
        if data.get(name) and data[name].get("train"):
            merged.setdefault("train", {}).update(data[name]["train"])
    if merged:
        lines += _train_lines(merged)
    for name in CROSS_FILES:
        if data.get(name):
            lines += _cross_lines(data[name])
    return "\n".join(lines)


def failed(data: Mapping[str, Any]) -> bool:
    """Whether a stage failed, a CUDA test failed, or a cross-device decoding did not give the
    encoder's latents (format-3 files must decode identically on every device)."""
    tests = data.get("cuda_tests") or {}
    cross = [r for name in CROSS_FILES for r in ((data.get(name) or {}).get("contexts") or {}).values()]
    return (any(s["rc"] != 0 for s in data["stages"]) or bool(tests.get("failures") or tests.get("errors"))
            or any(r["outcome"] != "identical" for r in cross))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m dic.apps.bench.gpu_summary FOLDER``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m dic.apps.bench.gpu_summary FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    data = collect(folder)
    text = format_summary(data)
    print(text)
    atomic_write_text(folder / "gpu_check.json", json.dumps({**data, "table": text}, indent=2) + "\n")
    print(f"\nresults written to {folder / 'gpu_check.json'}")
    return 1 if failed(data) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
