"""Evaluate checkpoints on test sets: ``python test.py -opt conf/test/<x>.yml`` (also ``dic-test``
and ``dic test``).

Each checkpoint in ``path.checkpoint`` is loaded (ours, or an official one converted on the fly),
its entropy coder tables are rebuilt once (``update(force=True)``, when ``path.update``), and every
data set in ``datasets`` is coded — a ``level`` list gives one data set per level. With
``estimation: true`` the rate comes from the likelihoods of ``forward``; otherwise each image is
really coded (rANS strings) and decoded, and the rate comes from the bytes.

Outputs, under ``results/<name>/<data set>/``:

- ``<method>.csv``: one row per image and checkpoint (size, bytes, bpp, PSNR, MS-SSIM, times);
- ``<method>.json``: the averages in CompressAI's ``eval_model`` layout, one list entry per
  checkpoint / quality, sorted by bpp;
- ``images/<method>/<entry>/<image>.png`` when ``test.save_images``;
- SIDD benchmark blocks: ``<method>_<entry>_SubmitSrgb.mat`` in the benchmark's submission layout.

Sequential baselines (``test.baselines``, ``test.denoiser``) run on the same noisy inputs and are
written the same way (:mod:`dic.apps.evaluate.baselines`).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ...data.io import to_uint8
from ...errors import CheckpointError, DataError, DicError, OptionError
from ...fileio import atomic_output, atomic_write_text
from ...metrics import bpp_from_likelihoods, bpp_from_strings, ms_ssim, ms_ssim_db, psnr, quantize_8bit

logger = logging.getLogger("dic")

CSV_FIELDS = ("dataset", "method", "entry", "quality", "checkpoint", "image", "height", "width",
              "bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encoding_time", "decoding_time")
#: report key ← CSV column, averaged over the images of one entry
REPORT_METRICS = (("psnr", "psnr"), ("ms-ssim", "ms_ssim"), ("ms-ssim-db", "ms_ssim_db"), ("bpp", "bpp"),
                  ("encoding_time", "encoding_time"), ("decoding_time", "decoding_time"))
#: CompressAI 1.2's plotting tool reads these names for psnr / ms-ssim
COMPRESSAI_ALIASES = (("psnr-rgb", "psnr"), ("ms-ssim-rgb", "ms-ssim"))


# ------------------------------------------------------------------------------------------
# What a coder returns for one image
@dataclass
class Coded:
    """One image coded by one entry (a checkpoint or a codec quality)."""

    x_hat: torch.Tensor  # 1×3×H×W in [0, 1]
    bpp: float
    num_bytes: Optional[int]  # None when the rate is estimated
    encoding_time: Optional[float]
    decoding_time: Optional[float]


@dataclass
class EntryInfo:
    """What distinguishes one point of a rate–distortion curve."""

    tag: str  # folder / CSV name of the entry, e.g. "q3" or a checkpoint stem
    quality: Optional[int] = None
    checkpoint: Optional[str] = None


@dataclass
class Coder:
    """Something that codes a noisy image at one or several entries: a model checkpoint (one
    entry) or a classical pipeline (one entry per quality)."""

    method: str
    entries: List[EntryInfo]
    description: str = ""
    estimation: bool = False

    def code(self, noisy: torch.Tensor) -> List[Coded]:  # pragma: no cover - interface
        raise NotImplementedError


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ModelCoder(Coder):
    """A loaded model: real coding (compress → decompress) or estimation (``forward``)."""

    def __init__(self, model: torch.nn.Module, entry: EntryInfo, method: str, estimation: bool,
                 device: torch.device):
        super().__init__(method=method, entries=[entry], estimation=estimation,
                         description="estimated bpp (forward)" if estimation else "real coding")
        self.model = model
        self.device = device

    @torch.no_grad()
    def code(self, noisy: torch.Tensor) -> List[Coded]:
        x = noisy.to(self.device)
        h, w = x.shape[-2:]
        if self.estimation:
            _sync(self.device)
            t0 = time.perf_counter()
            out = self.model(x)
            _sync(self.device)
            elapsed = time.perf_counter() - t0
            bpp = float(bpp_from_likelihoods(out["likelihoods"], h * w))
            return [Coded(out["x_hat"].clamp(0, 1).cpu(), bpp, None, elapsed, None)]
        _sync(self.device)
        t0 = time.perf_counter()
        enc = self.model.compress(x)
        _sync(self.device)
        t1 = time.perf_counter()
        dec = self.model.decompress(enc["strings"], enc["shape"])
        _sync(self.device)
        t2 = time.perf_counter()
        num_bytes = int(round(bpp_from_strings(enc["strings"], 1) / 8))
        x_hat = dec["x_hat"].clamp(0, 1).cpu()
        if tuple(x_hat.shape[-2:]) != (h, w):
            raise DicError(f"{self.method}: decoded {tuple(x_hat.shape[-2:])}, expected {(h, w)}")
        return [Coded(x_hat, bpp_from_strings(enc["strings"], h * w), num_bytes, t1 - t0, t2 - t1)]


# ------------------------------------------------------------------------------------------
# Options → device, checkpoints, data sets
def select_device(opt: Mapping[str, Any]) -> torch.device:
    """The first of ``gpu_ids`` when CUDA is there, else the CPU (with a warning if GPUs were asked)."""
    gpu_ids = opt.get("gpu_ids") or []
    if gpu_ids and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_ids[0]}")
    if gpu_ids:
        logger.warning("gpu_ids %s requested but CUDA is not available: evaluating on the CPU", gpu_ids)
    return torch.device("cpu")


def checkpoint_list(opt: Mapping[str, Any]) -> List[str]:
    """``path.checkpoint`` as a list; every file must exist (a clear error before any work)."""
    value = opt["path"]["checkpoint"]
    if value is None:
        return []
    paths = [value] if isinstance(value, str) else list(value)
    source = opt["path"].get("option_file", "options")
    for p in paths:
        if not os.path.isfile(p):
            raise CheckpointError(f"{source}: path.checkpoint: {p} does not exist; "
                                  "expected a checkpoint file (ours or an official one)")
    return paths


def resolve_path(opt: Mapping[str, Any], value: Optional[str]) -> Optional[str]:
    """An option path relative to ``path.root`` made absolute."""
    if not value:
        return None
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (Path(opt["path"]["root"]) / p).resolve())


@dataclass
class TestSet:
    label: str  # report folder name: the phase, plus _level<k> for a level list
    phase: str
    options: Dict[str, Any]
    dataset: Any = None


def build_test_sets(opt: Mapping[str, Any]) -> List[TestSet]:
    """One :class:`TestSet` per data set and level; every data set is built (and checked) now."""
    from ...data import create_dataset, expand_levels
    from ...config import check_data_roots

    check_data_roots(opt)
    sets = []
    for phase, dataset_opt in opt["datasets"].items():
        for suffix, level_opt in expand_levels(dict(dataset_opt)):
            sets.append(TestSet(f"{phase}{suffix}", phase, level_opt, create_dataset(level_opt, phase)))
    return sets


def load_network(path: str, arch: Optional[str], update: bool, device: torch.device) -> torch.nn.Module:
    """Load one checkpoint (ours, or an official one converted for ``arch``), rebuild the entropy
    coder tables once when ``update``, and move it to ``device`` in eval mode."""
    from ...checkpoints import load_model

    model = load_model(path, arch=arch)
    if update:
        model.update(force=True)
    return model.eval().to(device)


def entry_for(model: torch.nn.Module, path: str, opt: Mapping[str, Any]) -> EntryInfo:
    """Report entry of a checkpoint: tagged by its quality (``q3``), else by its file stem."""
    quality = (getattr(model, "hparams", None) or {}).get("quality") or opt["network"].get("quality")
    p = Path(path)
    tag = p.stem
    if p.parent.name == "checkpoints" and p.parent.parent.name:  # experiments/<run>/checkpoints/best.pth
        tag = f"{p.parent.parent.name}-{p.stem}"
    return EntryInfo(tag=f"q{quality}" if quality else tag, quality=quality, checkpoint=path)


# ------------------------------------------------------------------------------------------
# The loop over images
def prepare_pair(item: Any, has_gt: bool, protocol: str, name: str) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
    """(gt, noisy) as 1×3×H×W tensors on 8-bit levels, centre-cropped to multiples of 64 under
    the ``crop`` protocol. The noisy image is rounded to 8 bits, as a photo file would be, so
    every method sees exactly the same input."""
    from ...models import crop_to_multiple

    gt, noisy = (item if has_gt else (None, item))
    noisy = quantize_8bit(noisy.unsqueeze(0) if noisy.dim() == 3 else noisy)
    if gt is not None:
        gt = quantize_8bit(gt.unsqueeze(0) if gt.dim() == 3 else gt)
    if protocol == "crop":
        try:
            noisy = crop_to_multiple(noisy)
            gt = None if gt is None else crop_to_multiple(gt)
        except DataError as e:
            raise DataError(f"image {name}: {e} (test.protocol: crop)") from None
    return gt, noisy


def measure(coded: Coded, gt: Optional[torch.Tensor]) -> Dict[str, Optional[float]]:
    """PSNR on 8-bit levels, MS-SSIM (data range 1) and MS-SSIM dB against the clean image."""
    if gt is None:
        return {"psnr": None, "ms_ssim": None, "ms_ssim_db": None}
    x_hat = quantize_8bit(coded.x_hat)
    value = ms_ssim(x_hat, gt, data_range=1.0)
    return {"psnr": psnr(x_hat, gt), "ms_ssim": value, "ms_ssim_db": ms_ssim_db(value)}


def run_coder(coder: Coder, test_set: TestSet, out_dir: Path, protocol: str,
              save_images: bool, progress: bool = True) -> Tuple[List[Dict[str, Any]], Dict[str, Dict[Tuple[int, int], np.ndarray]]]:
    """Code every image of ``test_set`` with ``coder``; per-image rows, and the decoded SIDD
    blocks (entry tag → (image, block) → uint8 array) when the set is the benchmark's."""
    from tqdm import tqdm

    from ...data import write_image

    dataset = test_set.dataset
    sidd = is_sidd_blocks(dataset)
    blocks: Dict[str, Dict[Tuple[int, int], np.ndarray]] = {e.tag: {} for e in coder.entries} if sidd else {}
    rows = []
    bar = tqdm(range(len(dataset)), desc=f"{test_set.label} {coder.method}", unit="img",
               leave=False, disable=not progress or None, dynamic_ncols=True)
    for index in bar:
        name = dataset.image_name(index)
        gt, noisy = prepare_pair(dataset[index], dataset.has_gt, protocol, name)
        results = coder.code(noisy)
        h, w = noisy.shape[-2:]
        for entry, coded in zip(coder.entries, results):
            row = {"dataset": test_set.label, "method": coder.method, "entry": entry.tag,
                   "quality": entry.quality, "checkpoint": entry.checkpoint, "image": name,
                   "height": h, "width": w, "bytes": coded.num_bytes, "bpp": coded.bpp,
                   "encoding_time": coded.encoding_time, "decoding_time": coded.decoding_time}
            row.update(measure(coded, gt))
            rows.append(row)
            if save_images:
                write_image(out_dir / "images" / coder.method / entry.tag / f"{name}.png", quantize_8bit(coded.x_hat)[0])
            if sidd:
                blocks[entry.tag][dataset.block_index(index)] = to_uint8(coded.x_hat)
    bar.close()
    return rows, blocks


def is_sidd_blocks(dataset: Any) -> bool:
    """The SIDD benchmark's noisy blocks: no ground truth, positions in the 40×32 layout."""
    return not dataset.has_gt and hasattr(dataset, "block_index")


# ------------------------------------------------------------------------------------------
# Reports
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


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_FIELDS})
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> List[Dict[str, Any]]:
    """Rows of a CSV written by :func:`write_csv`, numbers parsed back (empty → None)."""
    numeric = {"height", "width", "bytes", "quality", "bpp", "psnr", "ms_ssim", "ms_ssim_db",
               "encoding_time", "decoding_time"}
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append({k: (None if v == "" else float(v) if k in numeric else v) for k, v in row.items()})
    return out


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def write_sidd_submission(path: Path, blocks: Mapping[Tuple[int, int], np.ndarray], time_mp: float,
                          bpp: float, method: str) -> Tuple[int, int]:
    """The SIDD benchmark's submission file: a cell array ``DenoisedBlocksSrgb`` (images × blocks,
    each a 256×256×3 uint8 block), ``TimeMPSrgb`` (seconds per megapixel) and, beside them,
    ``OptionalData`` with the method name and the bpp. Cells of missing blocks stay empty."""
    from scipy.io import savemat

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


@dataclass
class MethodResult:
    """Everything one method produced on one test set."""

    method: str
    description: str
    estimation: bool
    entries: List[EntryInfo] = field(default_factory=list)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    submissions: List[str] = field(default_factory=list)  # SIDD benchmark .mat files


def write_outputs(result: MethodResult, test_set: TestSet, out_dir: Path, opt: Mapping[str, Any]) -> Dict[str, Any]:
    """CSV, JSON report and (SIDD benchmark) submission files of one method on one test set."""
    summary = summarise(result.rows, result.entries)
    stem = result.method.replace("/", "_")
    extra = {"estimation": result.estimation, "protocol": opt["test"]["protocol"], "run": opt["name"]}
    level = test_set.options.get("level")
    if level is not None:
        extra["level"] = level
    description = f"{opt['name']}: {result.description} on {test_set.label} ({opt['test']['protocol']} protocol)"
    report = build_report(result.method, test_set.label, summary, description, extra)
    write_csv(out_dir / f"{stem}.csv", result.rows)
    if result.submissions:
        report["sidd_submission"] = result.submissions
    write_json(out_dir / f"{stem}.json", report)
    report["_json"] = str(out_dir / f"{stem}.json")
    report["_csv"] = str(out_dir / f"{stem}.csv")
    return report


# ------------------------------------------------------------------------------------------
# Orchestration
def evaluate(opt: Mapping[str, Any], progress: bool = True) -> Dict[str, List[Dict[str, Any]]]:
    """Run every checkpoint and baseline of ``opt`` on every test set; write the outputs.

    Returns test-set label → list of reports (each with ``_json`` and ``_csv`` paths).
    """
    from .baselines import baseline_coders, learned_sequential_coder

    checkpoints = checkpoint_list(opt)
    test_opt = opt["test"]
    baselines = baseline_coders(opt)  # checks names (and the bm3d package) before any work
    denoiser = resolve_path(opt, test_opt.get("denoiser"))
    if not checkpoints and not baselines:
        raise OptionError(f"{opt['path'].get('option_file', 'options')}: path.checkpoint: missing; "
                          "expected a checkpoint path or a list of them (or test.baselines)")
    if denoiser and not checkpoints:
        raise OptionError("test.denoiser: the learned sequential baseline codes the denoiser's output "
                          "with the path.checkpoint codec(s); path.checkpoint is missing")
    if denoiser and not os.path.isfile(denoiser):
        raise CheckpointError(f"test.denoiser: {denoiser} does not exist; expected a checkpoint file")
    test_sets = build_test_sets(opt)
    device = select_device(opt)
    root = Path(opt["path"]["results_root"])
    results: Dict[str, Dict[str, MethodResult]] = {t.label: {} for t in test_sets}

    def collect(coder: Coder, test_set: TestSet) -> None:
        out_dir = root / test_set.label
        rows, blocks = run_coder(coder, test_set, out_dir, test_opt["protocol"], test_opt["save_images"], progress)
        res = results[test_set.label].setdefault(
            coder.method, MethodResult(coder.method, coder.description, coder.estimation))
        res.entries.extend(coder.entries)
        res.rows.extend(rows)
        for tag, entry_blocks in blocks.items():  # written now: blocks of many checkpoints need not sit in memory
            res.submissions.append(write_submission(out_dir, coder.method, tag, entry_blocks,
                                                    [r for r in rows if r["entry"] == tag]))

    denoiser_model = None
    if denoiser:
        denoiser_model = load_network(denoiser, test_opt.get("denoiser_model"), opt["path"]["update"], device)
    used_tags: List[str] = []
    for path in checkpoints:
        logger.info("checkpoint %s", path)
        model = load_network(path, opt["network"]["model"], opt["path"]["update"], device)
        entry = entry_for(model, path, opt)
        if entry.tag in used_tags:  # e.g. two q3 checkpoints of different runs
            entry.tag = f"{entry.tag}-{used_tags.count(entry.tag) + 1}"
        used_tags.append(entry.tag)
        method = getattr(model, "name", "") or opt["network"]["model"]
        for test_set in test_sets:
            coder = ModelCoder(model, entry, method, bool(test_set.options.get("estimation")), device)
            if denoiser_model is not None:
                coder = learned_sequential_coder(denoiser_model, coder)
            collect(coder, test_set)
        del model
    for coder in baselines:
        for test_set in test_sets:
            collect(coder, test_set)

    reports: Dict[str, List[Dict[str, Any]]] = {}
    for test_set in test_sets:
        out_dir = root / test_set.label
        reports[test_set.label] = [write_outputs(res, test_set, out_dir, opt)
                                   for res in results[test_set.label].values()]
    return reports


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


# ------------------------------------------------------------------------------------------
# Command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-opt", "--opt", required=True, metavar="OPTIONS.yml", help="test option file")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override options, e.g. --set test.save_images=true datasets.kodak.level=1")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ...logger import setup_logger
    from ...config import load_options, save_options

    opt = load_options(args.opt, args.set, is_train=False)
    root = Path(opt["path"]["results_root"])
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    setup_logger(str(root / f"test_{stamp}.log"))
    save_options(opt, root / f"options_{stamp}.yml")
    reports = evaluate(opt, progress=not args.no_progress)
    log = logging.getLogger("dic")
    log.info("results\n%s", format_table(reports))
    for label, items in reports.items():
        for report in items:
            log.info("%s %s: %s", label, report["name"], report["_json"])
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """``test.py`` / ``dic-test``: evaluate from an option file; user errors exit 2."""
    from ..runtime import guarded

    parser = argparse.ArgumentParser(prog="dic-test", description="Evaluate checkpoints from an option file.")
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return guarded(run, args)
