#!/usr/bin/env python
"""``make demo``: does joint denoising + compression beat denoise-then-compress on photographs
it never saw? Curves, a fair classical frontier, pictures and a verdict, on the CPU (README "Demo").

1. ``scripts/prepare_samples.py`` writes every natural photograph bundled with scikit-image to
   ``data/samples/{train,val,test}`` (a fixed split: no test photograph is trained or validated on);
2. the models: the joint model (``snr-decomp``) and the codec-only baseline (``cheng2020-anchor``,
   noisy → clean), three λ each (``conf/train/demo_{joint,codec}_l{1,2,3}.yml``). The shipped
   weights in ``weights/demo/`` are used when all six are there; ``--retrain`` re-trains them
   from those files (and rewrites ``weights/demo/``); otherwise the six are trained here for
   ``--steps`` steps each (a short budget);
3. evaluates them in real coding mode (bpp from the bytes) at each noise level on
   ``data/samples/test`` (``conf/test/demo.yml``), and the classical grid (NLM strength × JPEG /
   WebP × quality) whose upper envelope is the classical frontier (:mod:`dic.apps.evaluate.envelope`);
4. prints the verdict table (BD-PSNR / BD-rate per level) and writes the reports, the RD plot
   and one comparison sheet per level under ``results/demo/`` (``--out``).

Runs from any working directory: every path is relative to this repository.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))  # runs from a checkout without pip install -e .

import torch  # noqa: E402

from dic.apps.evaluate.runner import evaluate  # noqa: E402
from dic.apps.evaluate.envelope import ENVELOPE_METHOD, GridCoder, evaluate_grid, run_config  # noqa: E402
from dic.apps.evaluate.reports import read_csv  # noqa: E402
from dic.apps.evaluate.runner import build_test_sets  # noqa: E402
from dic.apps.evaluate.showcase import (comparison_sheet, decoded_image, format_verdict, pick,  # noqa: E402
                                        plot_levels, verdict_rows)
from dic.checkpoints.io import load_checkpoint, save_checkpoint  # noqa: E402
from dic.checkpoints.loading import load_model  # noqa: E402
from dic.config import load_options, save_options  # noqa: E402
from dic.config.build import criterion_lambda  # noqa: E402
from dic.data.io import read_image, to_uint8  # noqa: E402
from dic.errors import DicError  # noqa: E402
from dic.logger import setup_logger  # noqa: E402
from dic.metrics import psnr, quantize_8bit  # noqa: E402

TRAIN_FILES = {kind: [REPO / "conf" / "train" / f"demo_{kind}_l{k}.yml" for k in (1, 2, 3)]
               for kind in ("joint", "codec")}
TEST_OPT = REPO / "conf" / "test" / "demo.yml"
WEIGHTS = REPO / "weights" / "demo"
SAMPLES = REPO / "data" / "samples"
JOINT, CODEC = "snr-decomp", "cheng2020-anchor"
FALLBACK_STEPS = 300  # per model when there are no shipped weights: the six fit the 10-minute budget
SHEET_IMAGE = "chelsea"  # the test photograph of the comparison sheets (chosen before any result)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--retrain", action="store_true",
                   help="train the six models from conf/train/demo_*.yml from scratch and write their weights "
                        "to --weights (what the shipped weights came from)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"training steps per model (default: the option files' with --retrain, else "
                        f"{FALLBACK_STEPS} when there are no shipped weights); implies training")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4],
                   help="noise levels to evaluate")
    p.add_argument("--out", type=Path, default=None,
                   help="root of the outputs: <out>/results/demo, <out>/experiments (default: this repository)")
    p.add_argument("--weights", type=Path, default=WEIGHTS, help="folder of the shipped weights")
    p.add_argument("--jobs", type=int, default=2, help="models trained at the same time (one torch thread each; "
                   "logs in <out>/experiments/<name>.train.log when more than one)")
    p.add_argument("--gpu", action="store_true", help="train on GPU 0 (gpu_ids=[0]); the default is the CPU")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the evaluation")
    p.add_argument("--quick", action="store_true",
                   help="a small classical grid (no denoising or the rule's NLM; qualities 5, 30, 90): for tests, "
                        "not for figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_script(script: Path, args: Sequence[str], log: Optional[Path] = None) -> None:
    """Run a repository script with this interpreter (one torch thread); stop the demo if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") if log else open(os.devnull, "w") as sink:
        out = sink if log else None
        code = subprocess.call([sys.executable, str(script), *args], cwd=str(REPO), env=env, stdout=out, stderr=out)
    if code != 0:
        where = f" (log: {log})" if log else ""
        raise SystemExit(f"demo: {script.relative_to(REPO)} {' '.join(args[:2])} failed with exit code {code}{where}")


# ------------------------------------------------------------------------------------------
# Models: shipped weights, or trained here
def train_overrides(root: Path, steps: Optional[int], fresh: bool, opt_file: Path, gpu: bool = False) -> List[str]:
    """``--set`` values of one training run: outputs under ``root``, this repository's samples."""
    overrides = [f"path.root={root}", f"datasets.train.root={SAMPLES / 'train'}",
                 f"datasets.val.root={SAMPLES / 'val'}"] + (["gpu_ids=[0]"] if gpu else [])
    if steps is not None:
        mode = load_options(opt_file).train.mode
        overrides += [f"train.{mode}.value={steps}", f"train.{mode}.val_freq={max(1, steps // 2)}",
                      f"logger.save_checkpoint_freq={steps}"]
    if fresh:
        overrides.append("path.resume=none")
    return overrides


def train_all(root: Path, steps: Optional[int], fresh: bool, jobs: int, quiet: bool,
              gpu: bool = False) -> Dict[str, List[Path]]:
    """Train the six option files; kind → best checkpoints (latest where validation never ran).
    A file warm-started from another (``network.pretrained``: the outer rate points start from the
    middle one's best.pth) starts as soon as that one is trained, ``jobs`` runs at a time."""
    files = [f for kind in TRAIN_FILES for f in TRAIN_FILES[kind]]
    warm = {f for f in files if load_options(f, train_overrides(root, steps, fresh, f, gpu)).network.pretrained}
    dependents = {f: [g for g in TRAIN_FILES[kind] if g in warm] for kind in TRAIN_FILES
                  for f in TRAIN_FILES[kind] if f not in warm}

    def one(opt_file: Path) -> Path:
        overrides = train_overrides(root, steps, fresh, opt_file, gpu)
        start = time.time()
        log = (root / "experiments" / f"{opt_file.stem}.train.log") if quiet or jobs > 1 else None
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
        run_script(REPO / "train.py", ["-opt", str(opt_file), "--set", *overrides], log)
        folder = Path(load_options(opt_file, overrides).path.checkpoints)
        print(f"  {opt_file.name}: trained in {time.time() - start:.0f} s", flush=True)
        for name in ("best.pth", "latest.pth"):
            if (folder / name).is_file():
                return folder / name
        raise SystemExit(f"demo: training {opt_file.name} wrote no checkpoint in {folder}")

    done: Dict[Path, Path] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        running = {pool.submit(one, f): f for f in dependents}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                opt_file = running.pop(future)
                done[opt_file] = future.result()
                running.update({pool.submit(one, g): g for g in dependents.get(opt_file, [])})
    return {kind: [done[f] for f in TRAIN_FILES[kind]] for kind in TRAIN_FILES}


def export_weights(checkpoint: Path, dest: Path) -> Path:
    """The model of a training checkpoint alone (no optimizer state), parameters in float16
    (buffers as they are), so the six shipped files stay under 20 MB; loads strictly as float32."""
    model = load_model(checkpoint, map_location="cpu")
    half = {k: (v.half() if v.is_floating_point() and k in dict(model.named_parameters()) else v)
            for k, v in model.state_dict().items()}
    model.load_state_dict(half)  # rounded to float16 and back: the weights that are shipped
    step = load_checkpoint(checkpoint).get("iter")
    dest.parent.mkdir(parents=True, exist_ok=True)
    opt_file = REPO / "conf" / "train" / f"{dest.stem}.yml"
    lam = criterion_lambda(load_options(opt_file).network, str(opt_file))
    save_checkpoint(dest, model, weights=half, trained_steps=step, lambda_metric=lam,
                    option_file=str(opt_file.relative_to(REPO)))
    return dest


def shipped(weights: Path) -> Optional[Dict[str, List[Path]]]:
    """kind → shipped weight files when all six exist, else None."""
    found = {kind: [weights / f"{f.stem}.pth" for f in files] for kind, files in TRAIN_FILES.items()}
    return found if all(p.is_file() for ps in found.values() for p in ps) else None


def models(args: argparse.Namespace, root: Path) -> Dict[str, List[Path]]:
    if args.retrain:
        trained = train_all(root, args.steps, fresh=True, jobs=args.jobs, quiet=args.no_progress, gpu=args.gpu)
        return {kind: [export_weights(c, args.weights / f"{f.stem}.pth") for c, f in zip(paths, TRAIN_FILES[kind])]
                for kind, paths in trained.items()}
    found = shipped(args.weights) if args.steps is None else None
    if found:
        print(f"using the shipped weights in {args.weights} (python scripts/demo.py --retrain re-trains them)")
        return found
    steps = args.steps or FALLBACK_STEPS
    print(f"no shipped weights in {args.weights}: training the six models for {steps} steps each "
          "(far from converged; the shipped weights are better)")
    return train_all(root, steps, fresh=False, jobs=args.jobs, quiet=args.no_progress, gpu=args.gpu)


# ------------------------------------------------------------------------------------------
# Evaluation
def evaluate_all(checkpoints: Mapping[str, List[Path]], root: Path, levels: Sequence[int], threads: int,
                 progress: bool, grid: GridCoder):
    """Real coding of both ladders and the classical grid; (label → reports, test sets, results folder)."""
    base = [f"path.root={root}", f"datasets.samples.root={SAMPLES / 'test'}",
            "datasets.samples.level=[" + ",".join(map(str, levels)) + "]"]
    reports: Dict[str, List[Dict[str, Any]]] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for kind, model in (("joint", JOINT), ("codec", CODEC)):
            paths = "[" + ",".join(str(p) for p in checkpoints[kind]) + "]"
            opt = load_options(TEST_OPT, base + [f"network.model={model}", f"path.checkpoint={paths}"], is_train=False)
            if kind == "joint":
                results = Path(opt.path.results_root)
                results.mkdir(parents=True, exist_ok=True)
                setup_logger(str(results / "test.log"))
                save_options(opt, results / "options.yml")
            for label, items in evaluate(opt, progress=progress).items():
                reports.setdefault(label, []).extend(items)
        test_sets = build_test_sets(opt.datasets, opt.path.option_file)
        for label, items in evaluate_grid(test_sets, results, opt.name, opt.test.protocol, grid,
                                          progress).items():
            reports[label].extend(items)
    finally:
        torch.set_num_threads(previous)
    return reports, test_sets, results


def noisy_inputs(test_sets) -> Dict[str, Dict[str, Any]]:
    """Per test set: the mean PSNR of the noisy inputs and the sheet photograph's noisy image."""
    out = {}
    for t in test_sets:
        values, image = [], None
        for i in range(len(t.dataset)):
            gt, noisy = t.dataset[i]
            noisy = quantize_8bit(noisy)
            values.append(psnr(noisy, gt))
            if t.dataset.image_name(i) == SHEET_IMAGE:
                image = to_uint8(noisy)
        out[t.label] = {"psnr": sum(values) / len(values), "image": image}
    return out


def sheet(label: str, items: Sequence[Mapping[str, Any]], noisy: Mapping[str, Any], out: Path) -> Optional[Path]:
    """Clean / noisy / best classical at the joint model's rate / joint model, for one level."""
    joint, grid, envelope = pick(items, JOINT), pick(items, "classical-grid"), pick(items, ENVELOPE_METHOD)
    if noisy["image"] is None or joint is None or grid is None or envelope is None:
        return None
    rows = {(r["method"], r["entry"]): r for path in (joint["_csv"], grid["_csv"])
            for r in read_csv(Path(path)) if r["image"] == SHEET_IMAGE}
    entry = joint["entries"][len(joint["entries"]) // 2]  # the middle rate point
    mine = rows[(JOINT, entry)]
    candidates = [rows[("classical-grid", tag)] for tag in envelope["entries"]]
    below = [r for r in candidates if r["bpp"] <= mine["bpp"]]
    best = max(below, key=lambda r: r["psnr"]) if below else min(candidates, key=lambda r: r["bpp"])
    classical, _ = run_config(noisy["image"], best["entry"])
    clean = read_image(SAMPLES / "test" / f"{SHEET_IMAGE}.png")
    panels = [("clean", clean),
              (f"noisy input\n{psnr(torch.from_numpy(noisy['image']).float(), torch.from_numpy(clean).float(), 255.0):.2f} dB", noisy["image"]),
              (f"best classical ({best['entry']})\n{best['bpp']:.3f} bpp, {best['psnr']:.2f} dB", classical),
              (f"joint {JOINT} ({entry})\n{mine['bpp']:.3f} bpp, {mine['psnr']:.2f} dB", decoded_image(joint, entry, SHEET_IMAGE))]
    title = f"{SHEET_IMAGE}, noise level {joint.get('level')} (centre crop; bpp and PSNR of the whole photograph)"
    return comparison_sheet(panels, out / f"sheet_{label}.png", title)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps: expected a positive number of steps, got {args.steps}")
    if args.jobs < 1 or args.threads < 1:
        parser.error("--jobs and --threads take positive numbers")
    start = time.time()
    root = (args.out or REPO).resolve()
    try:
        banner("1/4 photographs (data/samples, from scikit-image's package data)")
        run_script(REPO / "scripts" / "prepare_samples.py", ["--no-progress"])
        banner("2/4 models: joint snr-decomp and codec-only cheng2020-anchor, three λ each")
        checkpoints = models(args, root)
        banner("3/4 real coding on the test photographs; the classical grid and its envelope")
        grid = GridCoder((0.0, 1.0), qualities=(5, 30, 90)) if args.quick else GridCoder()
        reports, test_sets, results = evaluate_all(checkpoints, root, args.levels, args.threads,
                                                   not args.no_progress, grid)
        banner("4/4 verdict")
        noisy = noisy_inputs(test_sets)
        print(format_verdict(verdict_rows(reports, JOINT, CODEC), JOINT, CODEC))
        figure = plot_levels(reports, [ENVELOPE_METHOD, JOINT, CODEC], {k: v["psnr"] for k, v in noisy.items()},
                             results / "rd.png", "held-out photographs, real coding (raw classical points "
                             "beyond the axis: classical-grid.json)")
        sheets = [s for label, items in reports.items() for s in [sheet(label, items, noisy[label], results)] if s]
    except DicError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\nfinished in {time.time() - start:.0f} s. Everything is under {results}:")
    print(f"  RD plot:            {figure}")
    print(f"  comparison sheets:  {', '.join(s.name for s in sheets)}")
    print(f"  reports:            <level>/{JOINT}.json, {CODEC}.json, {ENVELOPE_METHOD}*.json, classical-grid.json (+ .csv)")
    print(f"  decoded images:     {results}/<level>/images/<method>/<entry>/*.png")
    print("  compare two reports: dic bdrate A.json B.json; plot more: dic plot A.json B.json -o rd.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
