"""SIDD preparation behind ``scripts/sidd_block.py`` and ``scripts/sidd_tile_annotations.py``.

1. :func:`sidd_blocks`: the benchmark ``.mat`` files (n images × b blocks × h × w × 3 uint8 under the
   key equal to the file stem) → ``<out>/SIDD_Validation/<scene>/<inst>_{NOISY,GT}_SRGB_<bb>.png``
   and ``<out>/SIDD_Test/<scene>/<inst>_NOISY_SRGB_<bb>.png``. Scenes are named after the sorted
   folders of ``SIDD_Benchmark_Data`` when it is there, else ``0000``, ``0001``...
2. :func:`sidd_tile_annotations`: every SIDD-Medium image cut into tiles by its camera's geometry
   (sizes verified first), then the train (tiles), val and test (blocks) annotation JSON files.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..errors import DataError
from .io import image_size, read_image, write_image
from .prepare import Log, progress, write_json_if_changed
from .sidd import CAMERA_GEOMETRY, annotation, parse_scene_name, scan_blocks, tile_path

#: The benchmark's files: name → (blocks folder, kind of block).
MAT_FILES = {
    "ValidationNoisyBlocksSrgb.mat": ("SIDD_Validation", "NOISY"),
    "ValidationGtBlocksSrgb.mat": ("SIDD_Validation", "GT"),
    "BenchmarkNoisyBlocksSrgb.mat": ("SIDD_Test", "NOISY"),
}
ANNOTATION_NAMES = {
    "train": "sidd_medium_srgb_train.json",
    "val": "sidd_medium_srgb_val.json",
    "test": "sidd_medium_srgb_test.json",
}
_GT_RE = re.compile(r"^(?P<inst>[^_]+)_GT_SRGB_(?P<entry>\d+)\.png$", re.IGNORECASE)


# ---- blocks from the benchmark's .mat files -------------------------------------------------

def mat_shape(path: Path) -> Tuple[int, ...]:
    """Shape of the array stored under the file's stem, read without loading the data."""
    import scipy.io

    key = path.stem
    try:
        variables = scipy.io.whosmat(str(path))
    except NotImplementedError:
        raise DataError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy.io cannot read; re-save it with "
            "save(..., '-v7') or use the original SIDD download"
        ) from None
    except Exception as exc:
        raise DataError(f"cannot read MATLAB file {path}: {exc}") from None
    found = {name: (shape, cls) for name, shape, cls in variables}
    if key not in found:
        raise DataError(f"{path} holds no array named '{key}' (found: {', '.join(found) or 'nothing'})")
    shape, cls = found[key]
    if len(shape) != 5 or shape[4] != 3 or cls != "uint8":
        raise DataError(
            f"{path}: '{key}' is a {cls} array of shape {tuple(shape)}; expected uint8 of shape "
            "images × blocks × height × width × 3 (40×32×256×256×3 in the real files)"
        )
    return tuple(int(s) for s in shape)


def load_mat_blocks(path: Path) -> np.ndarray:
    """The uint8 block array stored under the file's stem."""
    import scipy.io

    return scipy.io.loadmat(str(path), variable_names=[path.stem])[path.stem]


def scene_names(n: int, benchmark_data_dir: Optional[Path]) -> List[str]:
    """The benchmark's scene folder names in sorted order, or zero-padded indices without them."""
    if benchmark_data_dir is None or not Path(benchmark_data_dir).is_dir():
        return [f"{i:04d}" for i in range(n)]
    names = sorted(p.name for p in Path(benchmark_data_dir).iterdir() if p.is_dir())
    if len(names) != n:
        raise DataError(
            f"{benchmark_data_dir} has {len(names)} scene folders but the .mat files hold {n} images; "
            "pass the matching SIDD_Benchmark_Data folder (or none, to name scenes by index)"
        )
    return names


def block_path(out_dir: Path, folder: str, scene: str, kind: str, block: int) -> Path:
    inst = scene.split("_")[0]
    return out_dir / folder / scene / f"{inst}_{kind}_SRGB_{block:02d}.png"


def sidd_blocks(
    mat_dir: Path,
    out_dir: Path,
    benchmark_data_dir: Optional[Path] = None,
    show_progress: bool = True,
    log: Log = print,
) -> Dict[str, int]:
    """Write every block of the benchmark ``.mat`` files found in ``mat_dir`` as a PNG."""
    mat_dir, out_dir = Path(mat_dir), Path(out_dir)
    present = {name: mat_dir / name for name in MAT_FILES if (mat_dir / name).is_file()}
    if not present:
        raise DataError(f"none of {', '.join(MAT_FILES)} found in {mat_dir}")
    val = [n for n in MAT_FILES if MAT_FILES[n][0] == "SIDD_Validation"]
    if len([n for n in val if n in present]) == 1:
        missing = next(n for n in val if n not in present)
        raise DataError(f"{mat_dir / missing} is missing: validation needs both noisy and ground-truth blocks")
    shapes = {name: mat_shape(path) for name, path in present.items()}
    if len({s[:2] for s in shapes.values()}) > 1 or len({s for n, s in shapes.items() if n in val}) > 1:
        raise DataError(f"the .mat files in {mat_dir} disagree in shape: {shapes}")
    n_images, n_blocks = next(iter(shapes.values()))[:2]
    scenes = scene_names(n_images, benchmark_data_dir)
    written = 0
    for name, path in present.items():
        folder, kind = MAT_FILES[name]
        targets = [(i, b, block_path(out_dir, folder, scenes[i], kind, b)) for i in range(n_images) for b in range(n_blocks)]
        todo = [t for t in targets if not t[2].is_file()]
        if not todo:
            log(f"{name}: all {len(targets)} blocks already in {out_dir / folder}")
            continue
        blocks = load_mat_blocks(path)
        for i, b, dest in progress(todo, name, show_progress):
            write_image(dest, blocks[i, b])
        written += len(todo)
        log(f"{name}: wrote {len(todo)} block(s) to {out_dir / folder}")
    if not written:
        log("nothing to do: every block is already written")
    return {"images": n_images, "blocks": n_blocks, "written": written}


# ---- SIDD-Medium tiles and annotations ------------------------------------------------------

def load_geometry(path: Optional[Path]) -> Dict[str, Tuple[int, int, int, int]]:
    """The camera table, with entries replaced or added by a JSON file
    ``{"S6": [rows, cols, tile_h, tile_w], ...}`` (tests use a scaled-down table)."""
    geometry = dict(CAMERA_GEOMETRY)
    if path is None:
        return geometry
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read geometry file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"geometry file {path}: expected an object camera → [rows, cols, tile_h, tile_w]")
    for camera, value in doc.items():
        if not (isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) and v > 0 for v in value)):
            raise DataError(f"geometry file {path}: '{camera}' must be [rows, cols, tile_h, tile_w] of positive integers, got {value!r}")
        geometry[camera] = tuple(value)
    return geometry


def find_pairs(medium_dir: Path, geometry: Mapping[str, Tuple[int, ...]]) -> List[Dict[str, Any]]:
    """One record per GT/NOISY pair of every scene folder, in sorted order."""
    medium_dir = Path(medium_dir)
    if not medium_dir.is_dir():
        raise DataError(f"SIDD-Medium folder {medium_dir} does not exist")
    folders = sorted(p for p in medium_dir.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"no scene folders in SIDD-Medium folder {medium_dir}")
    pairs = []
    for folder in folders:
        info = parse_scene_name(folder.name)
        camera = info["camera"]
        if camera not in geometry:
            raise DataError(f"SIDD folder {folder} names camera '{camera}'; known cameras: {', '.join(sorted(geometry))}")
        gts = sorted((p for p in folder.iterdir() if _GT_RE.match(p.name)), key=lambda p: p.name)
        if not gts:
            raise DataError(f"SIDD folder {folder} holds no <instance>_GT_SRGB_<nnn>.PNG images")
        for gt in gts:
            m = _GT_RE.match(gt.name)
            noisy = gt.with_name(gt.name.replace("_GT_", "_NOISY_"))
            if not noisy.is_file():
                raise DataError(f"SIDD image {gt} has no noisy partner {noisy}")
            pairs.append({"folder": folder, "camera": camera, "id": f"{m['inst']}_{m['entry']}", "gt": gt, "noisy": noisy})
    return pairs


def verify_sizes(pairs: List[Dict[str, Any]], geometry: Mapping[str, Tuple[int, ...]], show_progress: bool = True) -> None:
    """Every image must be exactly rows·h × cols·w of its camera; the first that is not is named."""
    for pair in progress(pairs, "checking sizes", show_progress):
        rows, cols, th, tw = geometry[pair["camera"]]
        for path in (pair["gt"], pair["noisy"]):
            h, w = image_size(path)
            if (h, w) != (rows * th, cols * tw):
                raise DataError(
                    f"SIDD image {path} is {h}×{w} (H×W) but camera {pair['camera']} images must be "
                    f"{rows * th}×{cols * tw} ({rows}×{cols} tiles of {th}×{tw}); the file is damaged, "
                    "in the wrong folder, or the geometry table does not fit"
                )


def _tile_one(job: Tuple[str, str, str, int, int, int, int]) -> int:
    """Cut one image into its missing tiles; returns the number of tiles written."""
    src, tile_dir, prefix, rows, cols, th, tw = job
    image = read_image(src)
    written = 0
    for r in range(rows):
        for c in range(cols):
            dest = tile_path(Path(tile_dir), prefix, r, c)
            if not dest.is_file():
                write_image(dest, image[r * th : (r + 1) * th, c * tw : (c + 1) * tw])
                written += 1
    return written


def _tiles_missing(tile_dir: Path, prefix: str, rows: int, cols: int) -> bool:
    return any(not tile_path(tile_dir, prefix, r, c).is_file() for r in range(rows) for c in range(cols))


def sidd_tile_annotations(
    medium_dir: Path,
    tiles_dir: Path,
    blocks_dir: Path,
    annotations_dir: Path,
    geometry_json: Optional[Path] = None,
    workers: int = 1,
    show_progress: bool = True,
    log: Log = print,
) -> Dict[str, int]:
    """Tile SIDD-Medium into ``tiles_dir/<scene>/`` and write the train / val / test annotations
    into ``annotations_dir`` (val and test from ``blocks_dir``'s ``SIDD_Validation`` and
    ``SIDD_Test`` when ``scripts/sidd_block.py`` has written them)."""
    tiles_dir, annotations_dir = Path(tiles_dir), Path(annotations_dir)
    geometry = load_geometry(geometry_json)
    pairs = find_pairs(Path(medium_dir), geometry)
    verify_sizes(pairs, geometry, show_progress)

    jobs, entries = [], []
    for pair in pairs:
        rows, cols, th, tw = geometry[pair["camera"]]
        tile_dir = tiles_dir / pair["folder"].name
        for key in ("gt", "noisy"):
            prefix = pair[key].stem
            if _tiles_missing(tile_dir, prefix, rows, cols):
                jobs.append((str(pair[key]), str(tile_dir), prefix, rows, cols, th, tw))
        entries.append({
            "id": pair["id"], "scene": pair["folder"].name, "camera": pair["camera"],
            "tile_dir": _relpath(tile_dir, annotations_dir),
            "gt_prefix": pair["gt"].stem, "noisy_prefix": pair["noisy"].stem,
            "grid": [rows, cols], "tile_size": [th, tw], "size": [rows * th, cols * tw],
        })
    tiles_written = _run_tiling(jobs, workers, show_progress)
    if jobs:
        log(f"cut {len(jobs)} image(s) into {tiles_written} tile(s) under {tiles_dir}")
    changed = [write_json_if_changed(annotations_dir / ANNOTATION_NAMES["train"], annotation("tiles", entries, True))]
    for split, folder, need_gt in (("val", "SIDD_Validation", True), ("test", "SIDD_Test", False)):
        changed.append(_write_blocks_annotation(Path(blocks_dir) / folder, annotations_dir, split, need_gt, log))
    if not jobs and not any(changed):
        log(f"nothing to do: {len(entries)} image pair(s) already tiled and every annotation up to date")
    else:
        log(f"annotations for {len(entries)} training pair(s) in {annotations_dir}")
    return {"pairs": len(entries), "images_tiled": len(jobs), "tiles_written": tiles_written}


def _relpath(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _run_tiling(jobs: List[tuple], workers: int, show_progress: bool) -> int:
    if not jobs:
        return 0
    if workers <= 1:
        return sum(_tile_one(j) for j in progress(jobs, "tiling", show_progress))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return sum(progress(pool.imap_unordered(_tile_one, jobs), "tiling", show_progress, total=len(jobs)))


def _write_blocks_annotation(folder: Path, annotations_dir: Path, split: str, need_gt: bool, log: Log) -> bool:
    if not folder.is_dir():
        log(f"no {folder}: skipping the {split} annotation (run scripts/sidd_block.py first)")
        return False
    entries, has_gt = scan_blocks(folder, relative_to=annotations_dir)
    if need_gt and not has_gt:
        raise DataError(f"SIDD validation blocks in {folder} have no ground truth (*_GT_SRGB_*.png)")
    return write_json_if_changed(annotations_dir / ANNOTATION_NAMES[split], annotation("blocks", entries, has_gt))
