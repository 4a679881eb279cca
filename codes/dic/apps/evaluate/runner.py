"""Evaluate checkpoints on test sets: ``python test.py -opt conf/test/<x>.yml`` (also ``dic-test``
and ``dic test``); docs/evaluation.md.

Each checkpoint in ``path.checkpoint`` is loaded (ours, or an official one converted on the fly),
its entropy coder tables are rebuilt once (``update(force=True)``, when ``path.update``), and every
data set in ``datasets`` is coded — a ``level`` list gives one data set per level. With
``estimation: true`` the rate comes from the likelihoods of ``forward``; otherwise each image is
really coded (rANS strings) and decoded, and the rate comes from the bytes. ``test.protocol``
decides which pixels are coded and how they are measured (:mod:`.protocol`).

Outputs, under ``results/<name>/<data set>/`` (:mod:`.reports`):

- ``<method>.csv``: one row per image and checkpoint (size, bytes, bpp, PSNR, MS-SSIM, times);
- ``<method>.json``: the averages in CompressAI's ``eval_model`` layout, one list entry per
  checkpoint / quality, sorted by bpp;
- ``images/<method>/<entry>/<image>.png`` when ``test.save_images``;
- SIDD benchmark blocks: ``<method>_<entry>_SubmitSrgb.mat`` in the benchmark's submission layout.

Sequential baselines (``test.baselines``, ``test.denoiser``) run on the same noisy inputs and are
written the same way (:mod:`.baselines`).
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from ...checkpoints import load_for_inference
from ...config import (Options, build_dataset, check_data_roots, expand_levels, load_options, named_by_set,
                       parse_overrides, save_options)
from ...data import write_image
from ...errors import ArgumentError, CheckpointError, OptionError
from ...logger import get_logger, setup_logger
from ...models.precision import NAMES, resolve_precision
from ..runtime import device_from_gpu_ids
from .baselines import baseline_coders, learned_sequential_coder
from .coders import Coder, EntryInfo, ModelCoder
from .protocol import measure, prepare_sample, to_8bit
from .reports import MethodResult, format_table, write_outputs, write_submission

logger = get_logger()

Blocks = Dict[str, Dict[Tuple[int, int], np.ndarray]]  # entry tag → (image, block) → uint8 block


# ------------------------------------------------------------------------------------------
# Option values → checkpoints, data sets
def checkpoint_list(paths: Union[None, str, Sequence[str]], source: str) -> List[str]:
    """``path.checkpoint`` as a list; every file must exist (a clear error before any work)."""
    if paths is None:
        return []
    paths = [paths] if isinstance(paths, str) else list(paths)
    for p in paths:
        if not os.path.isfile(p):
            raise CheckpointError(f"{source}: path.checkpoint: {p} does not exist; "
                                  "expected a checkpoint file (ours or an official one)")
    return paths


def resolve_path(root: str, value: Optional[str]) -> Optional[str]:
    """An option path relative to ``path.root`` made absolute."""
    if not value:
        return None
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (Path(root) / p).resolve())


@dataclass
class TestSet:
    label: str  # report folder name: the phase, plus _level<k> for a level list
    phase: str
    level: Optional[int]
    estimation: bool
    dataset: Any


def build_test_sets(datasets: Options, source: str) -> List[TestSet]:
    """One :class:`TestSet` per data set and level; every data set is built (and checked) now."""
    sets = []
    for phase, dataset_opt in datasets.items():
        for suffix, level_opt in expand_levels(dataset_opt, f"datasets.{phase}", source):
            sets.append(TestSet(f"{phase}{suffix}", phase, level_opt["level"], bool(dataset_opt.estimation),
                                build_dataset(level_opt, phase, source)))
    return sets


def entry_for(model: torch.nn.Module, path: str, quality: Optional[int]) -> EntryInfo:
    """Report entry of a checkpoint: tagged by its quality (the model's, else ``quality``, the
    option file's), else by its file stem."""
    quality = (getattr(model, "hparams", None) or {}).get("quality") or quality
    p = Path(path)
    tag = p.stem
    if p.parent.name == "checkpoints" and p.parent.parent.name:  # experiments/<run>/checkpoints/best.pth
        tag = f"{p.parent.parent.name}-{p.stem}"
    return EntryInfo(tag=f"q{quality}" if quality else tag, quality=quality, checkpoint=path)


# ------------------------------------------------------------------------------------------
# The loop over images
def is_sidd_blocks(dataset: Any) -> bool:
    """The SIDD benchmark's noisy blocks: no ground truth, positions in the 40×32 layout."""
    return not dataset.has_gt and hasattr(dataset, "block_index")


def run_coder(coder: Coder, test_set: TestSet, out_dir: Path, protocol: str, save_images: bool,
              progress: bool = True) -> Tuple[List[Dict[str, Any]], Blocks]:
    """Code every image of ``test_set`` with ``coder`` under ``protocol``; per-image rows, and the
    decoded SIDD blocks when the set is the benchmark's."""
    dataset = test_set.dataset
    sidd = is_sidd_blocks(dataset)
    blocks: Blocks = {e.tag: {} for e in coder.entries} if sidd else {}
    rows = []
    bar = tqdm(range(len(dataset)), desc=f"{test_set.label} {coder.method}", unit="img",
               leave=False, disable=not progress or None, dynamic_ncols=True)
    for index in bar:
        name = dataset.image_name(index)
        sample = prepare_sample(dataset[index], dataset.has_gt, protocol, name)
        results = coder.code(sample.noisy, sample.blur)
        h, w = sample.noisy.shape[-2:]
        for entry, coded in zip(coder.entries, results):
            row = {"dataset": test_set.label, "method": coder.method, "entry": entry.tag,
                   "quality": entry.quality, "checkpoint": entry.checkpoint, "image": name,
                   "height": h, "width": w, "bytes": coded.num_bytes, "bpp": coded.bpp,
                   "encoding_time": coded.encoding_time, "decoding_time": coded.decoding_time,
                   "protocol": protocol}
            row.update(measure(coded.x_hat, sample.gt, protocol))
            rows.append(row)
            if save_images or sidd:
                image = to_8bit(coded.x_hat, protocol)
                if save_images:
                    write_image(out_dir / "images" / coder.method / entry.tag / f"{name}.png", image)
                if sidd:
                    blocks[entry.tag][dataset.block_index(index)] = image
    bar.close()
    return rows, blocks


# ------------------------------------------------------------------------------------------
# Orchestration
def evaluate(opt: Options, progress: bool = True) -> Dict[str, List[Dict[str, Any]]]:
    """Run every checkpoint and baseline of ``opt`` on every test set; write the outputs.

    Returns test-set label → list of reports (each with ``_json`` and ``_csv`` paths).
    """
    source = opt.path.option_file
    checkpoints = checkpoint_list(opt.path.checkpoint, source)
    baselines = baseline_coders(opt.test.baselines, opt.test.baseline_qualities)  # checked before any work
    denoiser = resolve_path(opt.path.root, opt.test.denoiser)
    if not checkpoints and not baselines:
        raise OptionError("missing; expected a checkpoint path or a list of them (or test.baselines)",
                          key="path.checkpoint", source=source)
    if denoiser and not checkpoints:
        raise OptionError("the learned sequential baseline codes the denoiser's output with the "
                          "path.checkpoint codec(s); path.checkpoint is missing", key="test.denoiser", source=source)
    if denoiser and not os.path.isfile(denoiser):
        raise CheckpointError(f"test.denoiser: {denoiser} does not exist; expected a checkpoint file")
    check_data_roots(opt)
    test_sets = build_test_sets(opt.datasets, source)
    device = device_from_gpu_ids(opt.gpu_ids)
    root = Path(opt.path.results_root)
    protocol, save_images, update = opt.test.protocol, opt.test.save_images, opt.path.update
    precision = resolved_precision(opt.test.precision, device, source)
    results: Dict[str, Dict[str, MethodResult]] = {t.label: {} for t in test_sets}

    def collect(coder: Coder, test_set: TestSet) -> None:
        out_dir = root / test_set.label
        rows, blocks = run_coder(coder, test_set, out_dir, protocol, save_images, progress)
        res = results[test_set.label].setdefault(coder.method, MethodResult(
            coder.method, coder.description, coder.estimation, precision=getattr(coder, "precision", None)))
        res.entries.extend(coder.entries)
        res.rows.extend(rows)
        for tag, entry_blocks in blocks.items():  # written now: blocks of many checkpoints need not sit in memory
            res.submissions.append(write_submission(out_dir, coder.method, tag, entry_blocks,
                                                    [r for r in rows if r["entry"] == tag]))

    denoiser_model = None
    if denoiser:
        denoiser_model = load_for_inference(denoiser, opt.test.denoiser_model, update, device)
    used_tags: List[str] = []
    for path in checkpoints:
        logger.info("checkpoint %s", path)
        model = load_for_inference(path, opt.network.model, update, device)
        entry = entry_for(model, path, opt.network.quality)
        if entry.tag in used_tags:  # e.g. two q3 checkpoints of different runs
            entry.tag = f"{entry.tag}-{used_tags.count(entry.tag) + 1}"
        used_tags.append(entry.tag)
        method = getattr(model, "name", "") or opt.network.model
        for test_set in test_sets:
            coder = ModelCoder(model, entry, method, test_set.estimation, device, precision)
            if denoiser_model is not None:
                coder = learned_sequential_coder(denoiser_model, coder)
            collect(coder, test_set)
        del model
    for coder in baselines:
        for test_set in test_sets:
            collect(coder, test_set)

    return {t.label: [write_outputs(res, t.label, t.level, root / t.label, opt.name, protocol)
                      for res in results[t.label].values()]
            for t in test_sets}


def resolved_precision(name: str, device: torch.device, source: str) -> str:
    """``test.precision`` for ``device``: ``auto`` becomes bfloat16 or float32; one the device
    cannot run is an error naming the file and key."""
    try:
        return NAMES[resolve_precision(name, device)]
    except ArgumentError as e:
        raise OptionError(e.detail, key="test.precision", source=source) from None


# ------------------------------------------------------------------------------------------
# Command line
def evaluate_option_file(path: str, overrides: Sequence[str], progress: bool = True) -> int:
    """Load an evaluation option file with ``overrides``, log to ``results/<name>/test_<time>.log``,
    keep the resolved options beside it, evaluate and log the table."""
    opt = load_options(path, list(overrides), is_train=False)
    root = Path(opt.path.results_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    setup_logger(str(root / f"test_{stamp}.log"))
    save_options(opt, root / f"options_{stamp}.yml")
    try:
        reports = evaluate(opt, progress=progress)
    except OptionError as e:
        # found while building the evaluation: about a key given with --set, it names --set as the loader does
        raise named_by_set(e, [key for key, _ in parse_overrides(overrides)]) from None
    logger.info("results\n%s", format_table(reports))
    for label, items in reports.items():
        for report in items:
            logger.info("%s %s: %s", label, report["name"], report["_json"])
    return 0


def run(args: argparse.Namespace) -> int:
    """``dic test``: evaluate ``args.opt``."""
    return evaluate_option_file(args.opt, args.set, progress=not args.no_progress)

