"""Rate–distortion curves of evaluation reports: plots and Bjøntegaard deltas.

Reports are JSON files in CompressAI's ``eval_model`` layout (``name``, ``description``,
``results`` with one list entry per quality), as written by ``dic test`` and the baselines.

``dic plot A.json B.json -o rd.png [--metric psnr|ms-ssim|ms-ssim-db]`` draws the curves, one
label per run (the report's name, then its ``run``, data set or file where names repeat);
``dic bdrate A.json B.json`` prints the BD-rate (%) and BD-PSNR (dB) of B against A. The deltas
use piecewise cubic Hermite interpolation (PCHIP) of each curve, the variant of the common
reference implementations, integrated exactly over the overlapping interval. They need curves
whose quality rises with rate; ``--frontier`` computes them on each curve's monotone frontier
(:func:`upper_envelope`, the demo's too) instead of refusing a curve with dominated points.

Neither command imports torch (``dic --help`` speed; docs/cli.md).

Figures measured under different test protocols (``pad``, ``crop``, ``official``:
docs/evaluation.md) are not comparable, so ``dic bdrate`` refuses such a pair unless told
``--allow-mixed-protocols``; a report without a ``protocol`` field (written before reports
recorded it) counts as ``pad``, the default then and now.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ...errors import DicError
from ...fileio import atomic_output, why_unwritable

METRICS = ("psnr", "ms-ssim", "ms-ssim-db")
DEFAULT_PROTOCOL = "pad"  # what reports without a 'protocol' field were measured with
AXIS_LABELS = {"psnr": "PSNR (dB)", "ms-ssim": "MS-SSIM", "ms-ssim-db": "MS-SSIM (dB)"}

ReportLike = Union[str, os.PathLike, Mapping[str, Any]]


# ------------------------------------------------------------------------------------------
# Reading reports
def load_report(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a report JSON; a missing or malformed file is a DicError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DicError(f"{path}: report not found; expected a JSON report written by 'dic test'")
    try:
        report = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DicError(f"{path}: not a JSON report ({e})") from None
    if not isinstance(report, dict) or not isinstance(report.get("results"), dict):
        raise DicError(f"{path}: expected a JSON object with a 'results' section "
                       "(CompressAI's eval_model layout)")
    report.setdefault("name", path.stem)
    report["_source"] = str(path)
    return report


def _as_report(report: ReportLike) -> Dict[str, Any]:
    return load_report(report) if isinstance(report, (str, os.PathLike)) else dict(report)


def curve(report: ReportLike, metric: str = "psnr") -> Tuple[np.ndarray, np.ndarray]:
    """(bpp, metric) arrays of a report, sorted by bpp. ``ms-ssim-db`` is derived from
    ``ms-ssim`` when a report lacks it."""
    report = _as_report(report)
    source = report.get("_source", report.get("name", "report"))
    results = report["results"]
    if metric not in METRICS:
        raise DicError(f"unknown metric '{metric}'; expected one of {', '.join(METRICS)}")
    if "bpp" not in results:
        raise DicError(f"{source}: results have no 'bpp' list")
    if metric in results:
        values = results[metric]
    elif metric == "ms-ssim-db" and "ms-ssim" in results:
        from ...metrics import ms_ssim_db  # imports torch: only for reports without the dB values

        values = [ms_ssim_db(v) for v in results["ms-ssim"]]
    else:
        raise DicError(f"{source}: results have no '{metric}' list (the data set may have no "
                       f"ground truth); available: {', '.join(sorted(results))}")
    rate = np.asarray(results["bpp"], dtype=np.float64).reshape(-1)
    dist = np.asarray(values, dtype=np.float64).reshape(-1)
    if rate.size != dist.size:
        raise DicError(f"{source}: 'bpp' has {rate.size} entries but '{metric}' has {dist.size}")
    order = np.argsort(rate, kind="stable")
    return rate[order], dist[order]


# ------------------------------------------------------------------------------------------
# Bjøntegaard deltas
def _pchip_mean(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the PCHIP interpolant of (x, y) over [lo, hi]."""
    from scipy.interpolate import PchipInterpolator  # a third of a second: only when computing

    order = np.argsort(x)
    x, y = x[order], y[order]
    return float(PchipInterpolator(x, y).integrate(lo, hi)) / (hi - lo)


def _check_curve(rate: Sequence[float], dist: Sequence[float], which: str) -> Tuple[np.ndarray, np.ndarray]:
    rate = np.asarray(rate, dtype=np.float64).reshape(-1)
    dist = np.asarray(dist, dtype=np.float64).reshape(-1)
    if rate.size != dist.size:
        raise DicError(f"curve {which}: {rate.size} rates but {dist.size} distortion values")
    if rate.size < 2:
        raise DicError(f"curve {which}: Bjøntegaard deltas need at least 2 points, got {rate.size}")
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(dist))):
        raise DicError(f"curve {which}: rates and distortions must be finite")
    if np.any(rate <= 0):
        raise DicError(f"curve {which}: rates must be positive, got {rate.tolist()}")
    order = np.argsort(rate, kind="stable")
    rate, dist = rate[order], dist[order]
    if np.any(np.diff(rate) <= 0) or np.any(np.diff(dist) <= 0):
        raise DicError(f"curve {which}: quality must rise strictly with rate for a Bjøntegaard delta, "
                       f"got bpp {np.round(rate, 4).tolist()} → {np.round(dist, 3).tolist()}")
    return rate, dist


def upper_envelope(rates: Sequence[float], qualities: Sequence[float]) -> List[int]:
    """Indices of the monotone upper frontier of the points (rate, quality), by rising rate:
    a point is kept when its quality is strictly above that of every point of lower or equal
    rate (of equal rates only the best counts). Along it rate and quality both rise strictly,
    as Bjøntegaard deltas need; the demo's classical envelope and its deltas use it too."""
    rates = np.asarray(rates, dtype=np.float64)
    qualities = np.asarray(qualities, dtype=np.float64)
    if rates.shape != qualities.shape or rates.ndim != 1:
        raise DicError(f"upper_envelope: {rates.shape} rates against {qualities.shape} qualities")
    order = np.lexsort((-qualities, rates))  # by rate, best quality first among equal rates
    kept: List[int] = []
    best = -np.inf
    for i in order:
        if qualities[i] > best and (not kept or rates[i] > rates[kept[-1]]):
            kept.append(int(i))
            best = qualities[i]
    return kept


def _overlap(a: np.ndarray, b: np.ndarray, axis: str) -> Tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if not hi > lo:
        raise DicError(f"the two curves do not overlap in {axis} ([{a.min():.4g}, {a.max():.4g}] "
                       f"against [{b.min():.4g}, {b.max():.4g}]); no Bjøntegaard delta exists")
    return lo, hi


def bd_rate(r1: Sequence[float], d1: Sequence[float], r2: Sequence[float], d2: Sequence[float]) -> float:
    """Average rate difference (%) of curve 2 against curve 1 at equal quality.

    Negative: curve 2 needs fewer bits. log-rate is interpolated as a function of distortion
    over the overlapping distortion interval.
    """
    r1, d1 = _check_curve(r1, d1, "A")
    r2, d2 = _check_curve(r2, d2, "B")
    lo, hi = _overlap(d1, d2, "quality")
    diff = _pchip_mean(d2, np.log(r2), lo, hi) - _pchip_mean(d1, np.log(r1), lo, hi)
    return (math.exp(diff) - 1) * 100


def bd_psnr(r1: Sequence[float], d1: Sequence[float], r2: Sequence[float], d2: Sequence[float]) -> float:
    """Average quality difference (dB, or metric units) of curve 2 against curve 1 at equal rate.

    Distortion is interpolated as a function of log-rate over the overlapping rate interval.
    """
    r1, d1 = _check_curve(r1, d1, "A")
    r2, d2 = _check_curve(r2, d2, "B")
    l1, l2 = np.log(r1), np.log(r2)
    lo, hi = _overlap(l1, l2, "rate")
    return _pchip_mean(l2, d2, lo, hi) - _pchip_mean(l1, d1, lo, hi)


def report_protocol(report: Mapping[str, Any]) -> Tuple[str, bool]:
    """(protocol, recorded): the report's ``protocol`` field, or ``pad`` when it has none."""
    protocol = report.get("protocol")
    return (str(protocol), True) if protocol else (DEFAULT_PROTOCOL, False)


def check_protocols(a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """A DicError naming both reports and protocols when they were measured differently."""
    (pa, ra), (pb, rb) = report_protocol(a), report_protocol(b)
    if pa == pb:
        return
    described = []
    for report, protocol, recorded in ((a, pa, ra), (b, pb, rb)):
        note = "" if recorded else ", no 'protocol' field: treated as 'pad'"
        described.append(f"{report.get('_source', report.get('name', '?'))} (protocol '{protocol}'{note})")
    raise DicError(f"{described[0]} and {described[1]} were measured under different test protocols, "
                   "so their figures are not comparable; re-evaluate one with the other's test.protocol, "
                   "or pass --allow-mixed-protocols to compare them anyway")


def bd_between(a: ReportLike, b: ReportLike, metric: str = "psnr",
               allow_mixed_protocols: bool = False, use_frontier: bool = False) -> Dict[str, Any]:
    """BD-rate (%) and BD-<metric> of report ``b`` against report ``a``; reports of different
    test protocols only with ``allow_mixed_protocols``. With ``use_frontier`` each curve is
    first cut to its monotone frontier; ``dropped`` then counts the points left out of A and B."""
    a, b = _as_report(a), _as_report(b)
    if not allow_mixed_protocols:
        check_protocols(a, b)
    ra, da = curve(a, metric)
    rb, db = curve(b, metric)
    dropped = (0, 0)
    if use_frontier:
        ka, kb = upper_envelope(ra, da), upper_envelope(rb, db)
        dropped = (ra.size - len(ka), rb.size - len(kb))
        ra, da, rb, db = ra[ka], da[ka], rb[kb], db[kb]
    try:
        return {"bd_rate": bd_rate(ra, da, rb, db), "bd_metric": bd_psnr(ra, da, rb, db), "dropped": dropped}
    except DicError as e:
        names = (r.get("_source", r.get("name", "?")) for r in (a, b))
        raise DicError("{} (A = {}, B = {}, {})".format(e, *names, metric)) from None


# ------------------------------------------------------------------------------------------
# Plots
#: What tells two reports of the same name apart, in order: the run that wrote them, their
#: data set, their file.
LABEL_KEYS = ("run", "dataset", "_source")


def curve_labels(reports: Sequence[Mapping[str, Any]]) -> List[str]:
    """One legend label per report: its name, with, where names repeat, the first of
    :data:`LABEL_KEYS` whose values differ among those reports (``name (run)``)."""
    names = [str(r.get("name", "report")) for r in reports]
    labels = list(names)
    for name in set(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) < 2:
            continue
        for key in LABEL_KEYS:
            values = [str(reports[i].get(key, "")) for i in group]
            if all(values) and len(set(values)) == len(values):
                for i, value in zip(group, values):
                    labels[i] = f"{name} ({value})"
                break
    return labels


def plot_reports(reports: Sequence[ReportLike], output: Optional[Union[str, os.PathLike]] = None,
                 metric: str = "psnr", title: Optional[str] = None, ax=None,
                 labels: Optional[Sequence[str]] = None):
    """Draw one rate–distortion curve per report on ``ax`` (a new figure if None); with ``output``
    the figure is written atomically (format from the extension). Curves are labelled
    ``labels`` or by :func:`curve_labels`. Returns the axes."""
    import matplotlib  # heavy, needed by plots only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [_as_report(r) for r in reports]
    if not loaded:
        raise DicError("no reports to plot")
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
    if labels is not None and len(labels) != len(loaded):
        raise DicError(f"{len(labels)} labels for {len(loaded)} reports; give one label per report")
    for report, label in zip(loaded, labels if labels is not None else curve_labels(loaded)):
        rate, dist = curve(report, metric)
        single = rate.size == 1  # one checkpoint: a point, drawn large enough to see
        ax.plot(rate, dist, marker="*" if single else "o", markersize=12 if single else 4,
                linestyle="none" if single else "-", label=label)
    ax.set_xlabel("bpp")
    ax.set_ylabel(AXIS_LABELS[metric])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    if own_figure:
        fig.tight_layout()
        if output is not None:
            save_figure(fig, output)
        plt.close(fig)
    return ax


def save_figure(fig, output: Union[str, os.PathLike]) -> Path:
    """Save a matplotlib figure atomically (temp file in the same folder, then rename)."""
    output = Path(output)
    fmt = output.suffix.lstrip(".").lower() or "png"
    try:
        with atomic_output(output) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    except ValueError as e:  # unknown image format
        raise DicError(f"{output}: cannot write a '{fmt}' image ({e})") from None
    return output


# ------------------------------------------------------------------------------------------
# Command line
def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", metavar="REPORT.json", help="reports written by 'dic test'")
    parser.add_argument("-o", "--output", default="rd.png", help="image to write (default: rd.png)")
    parser.add_argument("--metric", choices=METRICS, default="psnr", help="quality axis (default: psnr)")
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                        help="legend labels, one per report (default: each report's name, with its run where "
                             "names repeat)")


def run_plot(args: argparse.Namespace) -> int:
    reason = why_unwritable(args.output)
    if reason is not None:  # before matplotlib is imported and the reports are read
        raise DicError(f"cannot write {args.output}: {reason}")
    plot_reports(args.reports, args.output, metric=args.metric, title=args.title, labels=args.labels)
    print(f"wrote {Path(args.output).resolve()}")
    return 0


def add_bdrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("anchor", metavar="A.json", help="the reference report")
    parser.add_argument("tests", nargs="+", metavar="B.json", help="report(s) compared against A")
    parser.add_argument("--metric", choices=METRICS, default="psnr",
                        help="quality measure for the deltas (default: psnr)")
    parser.add_argument("--allow-mixed-protocols", action="store_true",
                        help="compare reports measured under different test protocols (pad, crop, official); "
                             "a report without a protocol field counts as pad")
    parser.add_argument("--frontier", action="store_true",
                        help="compute the deltas on each curve's monotone frontier (points another beats at a "
                             "lower rate left out, as the demo does) instead of refusing such curves")


def run_bdrate(args: argparse.Namespace) -> int:
    anchor = load_report(args.anchor)
    unit = "dB" if args.metric in ("psnr", "ms-ssim-db") else ""
    label = "BD-PSNR" if args.metric == "psnr" else f"BD-{args.metric.upper()}"
    for path in args.tests:
        test = load_report(path)
        d = bd_between(anchor, test, args.metric, allow_mixed_protocols=args.allow_mixed_protocols,
                       use_frontier=args.frontier)
        (pa, _), (pt, _) = report_protocol(anchor), report_protocol(test)
        if pa != pt:
            print(f"warning: {test['_source']} ({pt}) and {anchor['_source']} ({pa}) were measured "
                  "under different test protocols", file=sys.stderr)
        print(f"{test['name']} against {anchor['name']}: BD-rate {d['bd_rate']:+.2f} %, "
              f"{label} {d['bd_metric']:+.3f}{(' ' + unit) if unit else ''}{_dropped_note(d['dropped'])}")
    return 0


def _dropped_note(dropped: Tuple[int, int]) -> str:
    """`` (frontier: 1 point of A, 2 of B left out)`` when ``--frontier`` dropped points."""
    if not any(dropped):
        return ""
    return f" (frontier: {dropped[0]} point(s) of A, {dropped[1]} of B left out)"
