#!/usr/bin/env python
"""``make demo``: the whole pipeline on the CPU in a few minutes, with no download.

1. ``scripts/prepare_samples.py`` writes photographs bundled with scikit-image to ``data/samples``;
2. ``conf/train/tiny.yml`` trains the tiny SNR-aware model (``--steps`` bounds it; a finished run
   is resumed, so a second ``make demo`` skips the training);
3. ``conf/test/tiny.yml`` evaluates it in real coding mode (rANS bitstreams) at the four noise
   levels beside the classical sequential baselines (non-local means, then JPEG / WebP);
4. prints a table and writes the reports, an RD plot and the decoded images under ``results/demo/``.

Runs from any working directory: every path is relative to this repository.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))  # runs from a checkout without pip install -e .

import torch  # noqa: E402

from dic.apps.evaluate import evaluate  # noqa: E402
from dic.apps.evaluate.rd import plot_reports, save_figure  # noqa: E402
from dic.config import build_dataset, load_options, save_options  # noqa: E402
from dic.errors import DicError  # noqa: E402
from dic.logger import setup_logger  # noqa: E402
from dic.metrics import psnr, quantize_8bit  # noqa: E402

TRAIN_OPT = REPO / "conf" / "train" / "tiny.yml"
TEST_OPT = REPO / "conf" / "test" / "tiny.yml"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: the step count of conf/train/tiny.yml)")
    p.add_argument("--fresh", action="store_true",
                   help="train from scratch even if a finished tiny run exists (the old run folder is kept, renamed)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for the evaluation (default: 1, fastest for the serial entropy "
                        "coder of a tiny model)")
    return p


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_script(script: Path, args: Sequence[str]) -> None:
    """Run a repository script with this interpreter; stop the demo if it fails."""
    code = subprocess.call([sys.executable, str(script), *args], cwd=str(REPO))
    if code != 0:
        raise SystemExit(f"demo: {script.relative_to(REPO)} failed with exit code {code}")


def train(steps: Optional[int], fresh: bool) -> Path:
    """Train conf/train/tiny.yml and return the checkpoint to evaluate (best, else latest)."""
    overrides: List[str] = []
    if steps is not None:
        opt = load_options(TRAIN_OPT)
        overrides += [f"train.{opt.train.mode}.value={steps}"]
    if fresh:
        overrides.append("path.resume=none")
    run_script(REPO / "train.py", ["-opt", str(TRAIN_OPT)] + (["--set", *overrides] if overrides else []))
    opt = load_options(TRAIN_OPT, overrides)
    folder = Path(opt.path.checkpoints)
    for name in ("best.pth", "latest.pth"):
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"demo: training wrote no checkpoint in {folder}")


def noisy_psnr(dataset_opt: Mapping[str, Any], level: int) -> float:
    """Mean PSNR of the noisy inputs themselves at one level (what denoising starts from)."""
    dataset = build_dataset({**dataset_opt, "level": level}, "test", str(TEST_OPT))
    values = [psnr(quantize_8bit(noisy), gt) for gt, noisy in (dataset[i] for i in range(len(dataset)))]
    return sum(values) / len(values)


def closest(report: Mapping[str, Any], bpp: float) -> int:
    """Index of the report entry whose rate is closest to ``bpp``."""
    rates = report["results"]["bpp"]
    return min(range(len(rates)), key=lambda k: abs(rates[k] - bpp))


def table(reports: Mapping[str, Sequence[Mapping[str, Any]]], opt: Mapping[str, Any]) -> str:
    """Per level: the noisy input, the model, and each baseline at the quality closest in rate."""
    dataset_opt = next(iter(opt["datasets"].values()))
    lines = [f"{'level':>5s}  {'method':<18s} {'setting':>8s} {'bpp':>8s} {'PSNR':>7s} {'MS-SSIM':>8s} "
             f"{'enc (s)':>8s} {'dec (s)':>8s}"]
    for label, items in reports.items():
        level = items[0].get("level", "")
        model = next((r for r in items if r.get("checkpoints")), items[0])
        target = model["results"]["bpp"][0]
        lines.append(f"{level:>5}  {'noisy input':<18s} {'':>8s} {'':>8s} {noisy_psnr(dataset_opt, level):7.2f}")
        for report in [model] + [r for r in items if r is not model]:
            k = 0 if report is model else closest(report, target)
            res = report["results"]
            lines.append(f"{level:>5}  {report['name']:<18s} {report['entries'][k]:>8s} {res['bpp'][k]:8.4f} "
                         f"{res['psnr'][k]:7.2f} {res['ms-ssim'][k]:8.4f} {res['encoding_time'][k]:8.3f} "
                         f"{res['decoding_time'][k]:8.3f}")
    return "\n".join(lines)


def plot(reports: Mapping[str, Sequence[Mapping[str, Any]]], output: Path) -> Path:
    """One RD panel (PSNR against bpp) per noise level."""
    import matplotlib  # heavy, needed for the figure only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(reports)
    cols = 2 if len(labels) > 1 else 1
    rows = (len(labels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.5 * rows), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        level = reports[label][0].get("level")
        plot_reports(reports[label], metric="psnr", ax=ax, title=f"noise level {level}" if level else label)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle("tiny snr-decomp (real coding) against denoise-then-compress baselines")
    fig.tight_layout()
    save_figure(fig, output)
    plt.close(fig)
    return output


def evaluate_demo(checkpoint: Path, threads: int):
    """Evaluate the checkpoint with conf/test/tiny.yml; (reports, options)."""
    opt = load_options(TEST_OPT, [f"path.checkpoint={checkpoint}"], is_train=False)
    root = Path(opt.path.results_root)
    root.mkdir(parents=True, exist_ok=True)
    setup_logger(str(root / "test.log"))
    save_options(opt, root / "options.yml")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return evaluate(opt, progress=True), opt
    finally:
        torch.set_num_threads(previous)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.time()
    try:
        banner("1/4 sample photographs (data/samples, from scikit-image's package data)")
        run_script(REPO / "scripts" / "prepare_samples.py", [])
        banner(f"2/4 training the tiny model ({TRAIN_OPT.relative_to(REPO)})")
        checkpoint = train(args.steps, args.fresh)
        print(f"checkpoint: {checkpoint}")
        banner(f"3/4 evaluating in real coding mode beside the baselines ({TEST_OPT.relative_to(REPO)})")
        reports, opt = evaluate_demo(checkpoint, args.threads or 1)
        banner("4/4 results")
        print(table(reports, opt))
        root = Path(opt["path"]["results_root"])
        figure = plot(reports, root / "rd.png")
    except DicError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\nfinished in {time.time() - start:.0f} s. Everything is under {root}:")
    print(f"  RD plot:          {figure}")
    for label, items in reports.items():
        print(f"  {label}: reports  {', '.join(Path(r['_json']).name for r in items)} (and .csv) in {Path(items[0]['_json']).parent}")
    print(f"  decoded images:   {root}/<data set>/images/<method>/<setting>/*.png")
    print(f"  checkpoint:       {checkpoint}")
    print("  compare two reports: dic bdrate A.json B.json; plot more: dic plot A.json B.json -o rd.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
