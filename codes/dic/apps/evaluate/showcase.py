"""What the demo shows (docs/demo.md): the verdict table (Bjøntegaard deltas of the joint model
against the classical envelope and against the codec-only baseline, per noise level), the RD
panels with the noisy input as a reference line, and one comparison sheet per level.

Everything here reads reports written by :mod:`.runner` and :mod:`.envelope`; nothing is
measured twice. The deltas use :func:`.rd.bd_psnr` and :func:`.rd.bd_rate`; a pair of curves
that do not overlap (in rate, or in quality), or a curve whose quality does not rise with its
rate, gets a short reason in the table instead of a number.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ...data.io import read_image
from ...errors import DicError
from .envelope import ENVELOPE_METHOD, GRID_METHOD, upper_envelope
from .rd import bd_psnr, bd_rate, curve, plot_reports, save_figure

#: The verdict's target: BD-PSNR > 0 against the classical envelope at these levels.
TARGET_LEVELS = (3, 4)


@dataclass
class Delta:
    """BD-PSNR (dB) and BD-rate (%) of one curve against another, or why there is none."""

    psnr: Optional[float]
    rate: Optional[float]
    psnr_note: str = ""
    rate_note: str = ""
    hull: bool = False  # a curve had dominated points, left out


def _reason(error: DicError) -> str:
    text = str(error)
    if "do not overlap" in text:
        return "no overlap"
    if "rise strictly" in text:
        return "not monotone"
    if "at least 2 points" in text:
        return "< 2 points"
    return "n/a"


def hull(report: Mapping[str, Any]) -> Tuple[np.ndarray, np.ndarray, bool]:
    """(bpp, PSNR) of a report's monotone frontier (:func:`.envelope.upper_envelope`), and
    whether points were dropped: a rate point that another beats at a lower rate is one no user
    would pick (e.g. an under-trained λ), and Bjøntegaard deltas need rising curves."""
    rate, dist = curve(report, "psnr")
    kept = upper_envelope(rate, dist)
    return rate[kept], dist[kept], len(kept) < rate.size


def delta(anchor: Mapping[str, Any], test: Mapping[str, Any]) -> Delta:
    """BD deltas of ``test`` against ``anchor`` (PSNR) over their monotone frontiers, each None
    with a reason when undefined; ``hull`` tells that a curve lost dominated points."""
    ra, da, cut_a = hull(anchor)
    rb, db, cut_b = hull(test)
    out = Delta(None, None, hull=cut_a or cut_b)
    try:
        out.psnr = bd_psnr(ra, da, rb, db)
    except DicError as e:
        out.psnr_note = _reason(e)
    try:
        out.rate = bd_rate(ra, da, rb, db)
    except DicError as e:
        out.rate_note = _reason(e)
    return out


def pick(reports: Sequence[Mapping[str, Any]], name: str) -> Optional[Mapping[str, Any]]:
    """The report called ``name`` among one test set's reports, if any."""
    return next((r for r in reports if r.get("name") == name), None)


def verdict_rows(reports: Mapping[str, Sequence[Mapping[str, Any]]], joint: str, codec: str
                 ) -> List[Dict[str, Any]]:
    """Per test set: level, the joint model's deltas against the envelope and the codec-only
    baseline, and whether the target holds there (None at levels outside :data:`TARGET_LEVELS`)."""
    rows = []
    for label, items in reports.items():
        mine, envelope, baseline = pick(items, joint), pick(items, ENVELOPE_METHOD), pick(items, codec)
        if mine is None:
            raise DicError(f"{label}: no report of the joint model '{joint}'")
        level = mine.get("level")
        vs_env = delta(envelope, mine) if envelope else Delta(None, None, "missing", "missing")
        vs_codec = delta(baseline, mine) if baseline else Delta(None, None, "missing", "missing")
        met = None
        if level in TARGET_LEVELS:
            met = vs_env.psnr is not None and vs_env.psnr > 0
        rows.append({"label": label, "level": level, "envelope": vs_env, "codec": vs_codec, "met": met})
    return rows


def _cell(value: Optional[float], note: str, fmt: str, unit: str, cut: bool = False) -> str:
    return f"{format(value, fmt)} {unit}{'*' if cut else ''}" if value is not None else note


def format_verdict(rows: Sequence[Mapping[str, Any]], joint: str, codec: str) -> str:
    """The verdict as plain text: one line per level, then the target's outcome."""
    head = (f"{'level':>5s}  {'BD-PSNR vs envelope':>20s} {'BD-rate vs envelope':>20s}  "
            f"{'BD-PSNR vs codec-only':>22s} {'BD-rate vs codec-only':>22s}  target")
    lines = [f"joint model = {joint}; classical envelope = best NLM × JPEG/WebP configuration; "
             f"codec-only = {codec}", "positive BD-PSNR / negative BD-rate: the joint model is better", head]
    for row in rows:
        env, cod = row["envelope"], row["codec"]
        target = {None: "-", True: "met", False: "NOT met"}[row["met"]]
        lines.append(f"{row['level']!s:>5s}  {_cell(env.psnr, env.psnr_note, '+.2f', 'dB', env.hull):>20s} "
                     f"{_cell(env.rate, env.rate_note, '+.1f', '%', env.hull):>20s}  "
                     f"{_cell(cod.psnr, cod.psnr_note, '+.2f', 'dB', cod.hull):>22s} "
                     f"{_cell(cod.rate, cod.rate_note, '+.1f', '%', cod.hull):>22s}  {target}")
    if any(r["envelope"].hull or r["codec"].hull for r in rows):
        lines.append("* a learned curve had a rate point beaten by a lower-rate one; the delta uses its "
                     "monotone frontier")
    judged = [r for r in rows if r["met"] is not None]
    if judged:
        ok = all(r["met"] for r in judged)
        levels = ", ".join(str(r["level"]) for r in judged)
        lines.append(f"target (BD-PSNR > 0 against the classical envelope at level(s) {levels}): "
                     f"{'MET' if ok else 'NOT MET'}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Figures
def plot_panel(ax, items: Sequence[Mapping[str, Any]], names: Sequence[str], noisy_psnr: Optional[float],
               title: str) -> None:
    """One level: the raw classical points (faint), the curves ``names`` (envelope, models) and
    the noisy input's PSNR as a horizontal reference line."""
    grid = pick(items, GRID_METHOD)
    if grid is not None:
        rate, dist = curve(grid, "psnr")
        ax.scatter(rate, dist, s=6, color="0.75", label="classical configurations (raw)", zorder=1)
    chosen = [r for name in names for r in [pick(items, name)] if r is not None]
    plot_reports(chosen, metric="psnr", ax=ax, title=title)
    if chosen:  # raw points far to the right (over-coded noise) would squash the curves
        right = max(float(curve(r, "psnr")[0].max()) for r in chosen)
        ax.set_xlim(0, 1.6 * right)
    if noisy_psnr is not None:
        ax.axhline(noisy_psnr, color="0.3", linestyle=":", linewidth=1, label=f"noisy input ({noisy_psnr:.2f} dB)")
    ax.legend(fontsize="x-small")


def plot_levels(reports: Mapping[str, Sequence[Mapping[str, Any]]], names: Sequence[str],
                noisy: Mapping[str, float], output: Path, title: str) -> Path:
    """The RD figure: one :func:`plot_panel` per test set."""
    plt = pyplot()
    labels = list(reports)
    cols = 2 if len(labels) > 1 else 1
    rows = (len(labels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.8 * rows), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        level = reports[label][0].get("level")
        plot_panel(ax, reports[label], names, noisy.get(label), f"noise level {level}" if level else label)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    return finish_figure(fig, title, output)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported on demand: heavy, and needed for
    the figures only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_figure(fig, title: str, output: Path) -> Path:
    """Title, lay out, write (atomically) and close ``fig``."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, output)
    pyplot().close(fig)
    return output


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centred ``size``×``size`` crop of an H×W×3 image (smaller sides: the whole side)."""
    h, w = image.shape[:2]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top:top + ch, left:left + cw]


def comparison_sheet(panels: Sequence[Tuple[str, np.ndarray]], output: Path, title: str,
                     crop: int = 192) -> Path:
    """A row of labelled crops (same centre crop of each full image), written as a PNG."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.9), squeeze=False)
    for ax, (label, image) in zip(axes.flat, panels):
        ax.imshow(centre_crop(image, crop), interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    return finish_figure(fig, title, output)


def decoded_image(report: Mapping[str, Any], entry: str, image: str) -> np.ndarray:
    """The decoded image the evaluator saved for one report entry (``test.save_images``)."""
    path = Path(report["_json"]).parent / "images" / str(report["name"]).replace("/", "_") / entry / f"{image}.png"
    if not path.is_file():
        raise DicError(f"{path} is missing: evaluate with test.save_images: true")
    return read_image(path)
