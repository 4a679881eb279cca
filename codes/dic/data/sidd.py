"""SIDD real-noise data (``name: sidd``), read through annotation JSON files written by
``scripts/sidd_tile_annotations.py``, or straight from a folder of blocks written by
``scripts/sidd_block.py``.

``root`` decides what is read:

- a ``tiles`` annotation (``sidd_medium_srgb_train.json``): SIDD-Medium pairs cut into PNG tiles
  by the camera table. In ``train`` mode each image gives ``crops_per_image`` random
  ``patch_size`` crops per epoch, each read from the (at most four, when ``patch_size`` ≤ the tile
  size) tiles it covers; in other modes the centre crop.
- a ``blocks`` annotation (``sidd_medium_srgb_val.json``: noisy + ground truth validation blocks;
  ``sidd_medium_srgb_test.json``: the benchmark's noisy blocks only), or a blocks folder such as
  ``data/SIDD/SIDD_Benchmark_Data_Blocks/SIDD_Validation``: whole 256×256 blocks (random
  ``patch_size`` crops in ``train`` mode).

Items are ``(gt, noisy)``, or ``noisy`` alone when the blocks have no ground truth (``has_gt``).
The split is the official release's: all of SIDD-Medium trains, the validation blocks validate,
the benchmark blocks test.

Annotation format (paths relative to the JSON file's folder, ``/``-separated)::

    {"format": "dic-sidd-annotation", "version": 1, "kind": "tiles", "has_gt": true,
     "tile_name": "{prefix}_{row:02d}_{col:02d}.png",
     "entries": [{"id": "0001_010", "scene": "0001_001_S6_00100_00060_3200_L", "camera": "S6",
                  "tile_dir": "../SIDD_Medium_Srgb_Tiles/0001_001_S6_00100_00060_3200_L",
                  "gt_prefix": "0001_GT_SRGB_010", "noisy_prefix": "0001_NOISY_SRGB_010",
                  "grid": [6, 9], "tile_size": [500, 592], "size": [3000, 5328]}, ...]}
    {"format": "dic-sidd-annotation", "version": 1, "kind": "blocks", "has_gt": false,
     "entries": [{"id": "0009_00", "scene": "0009_001_S6_00800_00350_3200_L", "image_index": 0,
                  "block_index": 0, "noisy": "../SIDD_Benchmark_Data_Blocks/SIDD_Test/...png",
                  "gt": "..." (blocks with ground truth only)}, ...]}

Tile rows and columns are 1-based in file names.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ArgumentError, DataError
from .registry import register_dataset
from .common import ImageDataset, PathLike, center_crop_position, check_count, crop, random_crop_position
from .io import image_size, read_image, to_tensor

#: camera code → (rows, cols, tile height, tile width); a full image is rows·h × cols·w.
CAMERA_GEOMETRY: Dict[str, Tuple[int, int, int, int]] = {
    "S6": (6, 9, 500, 592),
    "GP": (4, 8, 761, 506),
    "N6": (6, 8, 520, 526),
    "G4": (6, 8, 498, 664),
    "IP": (6, 8, 504, 504),
}

ANNOTATION_FORMAT = "dic-sidd-annotation"
ANNOTATION_VERSION = 1
TILE_NAME = "{prefix}_{row:02d}_{col:02d}.png"
SCENE_FIELDS = ("instance", "scene", "camera", "iso", "shutter", "temperature", "brightness")
_BLOCK_RE = re.compile(r"^(?P<inst>[^_]+)_NOISY_SRGB_(?P<block>\d+)\.png$", re.IGNORECASE)


def parse_scene_name(name: str) -> Dict[str, str]:
    """Split ``<instance>_<scene>_<camera>_<ISO>_<shutter>_<temperature>_<brightness>``."""
    parts = name.split("_")
    if len(parts) != len(SCENE_FIELDS):
        raise DataError(
            f"SIDD folder '{name}' is not named <instance>_<scene>_<camera>_<ISO>_<shutter>_"
            f"<temperature>_<brightness> (e.g. 0001_001_S6_00100_00060_3200_L)"
        )
    return dict(zip(SCENE_FIELDS, parts))


def tile_path(tile_dir: Path, prefix: str, row: int, col: int) -> Path:
    """Path of the tile at 0-based (row, col); file names count from 1."""
    return tile_dir / TILE_NAME.format(prefix=prefix, row=row + 1, col=col + 1)


def read_tiled_crop(
    tile_dir: Path, prefix: str, tile_size: Tuple[int, int], top: int, left: int, size: int
) -> np.ndarray:
    """The ``size``×``size`` crop at (top, left) of a tiled image, assembled from the tiles it covers."""
    th, tw = tile_size
    out = np.empty((size, size, 3), dtype=np.uint8)
    for r in range(top // th, (top + size - 1) // th + 1):
        for c in range(left // tw, (left + size - 1) // tw + 1):
            path = tile_path(tile_dir, prefix, r, c)
            tile = read_image(path)
            if tile.shape[:2] != (th, tw):
                raise DataError(f"tile {path} is {tile.shape[0]}×{tile.shape[1]}, expected {th}×{tw} (H×W)")
            y0, y1 = max(top, r * th), min(top + size, (r + 1) * th)
            x0, x1 = max(left, c * tw), min(left + size, (c + 1) * tw)
            out[y0 - top : y1 - top, x0 - left : x1 - left] = tile[y0 - r * th : y1 - r * th, x0 - c * tw : x1 - c * tw]
    return out


def scan_blocks(folder: Path, relative_to: Optional[Path] = None) -> Tuple[List[Dict[str, Any]], bool]:
    """Block entries of a blocks folder (``<scene>/<inst>_NOISY_SRGB_<bb>.png`` with optional
    ``_GT_`` partners) in sorted scene and block order, and whether every block has ground truth.
    Paths are relative to ``relative_to`` when given, else absolute."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"SIDD blocks folder {folder} does not exist")
    scenes = sorted(p for p in folder.iterdir() if p.is_dir())
    entries, missing_gt = [], []
    for image_index, scene_dir in enumerate(scenes):
        blocks = sorted(
            (int(m["block"]), p, m["inst"])
            for p in scene_dir.iterdir()
            if (m := _BLOCK_RE.match(p.name))
        )
        for block, noisy, inst in blocks:
            entry = {"id": f"{inst}_{block:02d}", "scene": scene_dir.name, "image_index": image_index,
                     "block_index": block, "noisy": _rel(noisy, relative_to)}
            gt = noisy.with_name(noisy.name.replace("_NOISY_", "_GT_"))
            if gt.is_file():
                entry["gt"] = _rel(gt, relative_to)
            else:
                missing_gt.append(gt)
            entries.append(entry)
    if not entries:
        raise DataError(f"no SIDD blocks (<scene>/<instance>_NOISY_SRGB_<block>.png) found in {folder}")
    has_gt = not missing_gt
    if missing_gt and len(missing_gt) < len(entries):
        raise DataError(f"SIDD block {missing_gt[0]} is missing while other blocks in {folder} have ground truth")
    return entries, has_gt


def _rel(path: Path, base: Optional[Path] = None) -> str:
    if base is None:
        return str(Path(path).resolve())
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def annotation(kind: str, entries: List[Dict[str, Any]], has_gt: bool) -> Dict[str, Any]:
    """The JSON document of a ``tiles`` or ``blocks`` annotation."""
    doc = {"format": ANNOTATION_FORMAT, "version": ANNOTATION_VERSION, "kind": kind, "has_gt": has_gt}
    if kind == "tiles":
        doc["tile_name"] = TILE_NAME
    doc["entries"] = entries
    return doc


def load_annotation(path: Path) -> Dict[str, Any]:
    """Read and check an annotation JSON; DataError naming the file for anything unexpected."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read SIDD annotation {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != ANNOTATION_FORMAT:
        raise DataError(
            f"{path} is not a SIDD annotation written by scripts/sidd_tile_annotations.py "
            f"(expected \"format\": \"{ANNOTATION_FORMAT}\")"
        )
    if doc.get("version") != ANNOTATION_VERSION:
        raise DataError(f"SIDD annotation {path} has version {doc.get('version')!r}, expected {ANNOTATION_VERSION}")
    if doc.get("kind") not in ("tiles", "blocks"):
        raise DataError(f"SIDD annotation {path} has kind {doc.get('kind')!r}, expected 'tiles' or 'blocks'")
    if not doc.get("entries"):
        raise DataError(f"SIDD annotation {path} lists no images")
    return doc


@register_dataset("sidd")
class SIDDDataset(ImageDataset):
    """SIDD pairs from tiles or blocks (see the module docstring).

    Args:
        root: a ``tiles`` or ``blocks`` annotation JSON, or a blocks folder.
        mode: ``train``, ``val`` or ``test``; training needs ground truth.
        patch_size: side of the crops (training, and every tiled image); images smaller than it
            are an error, or skipped with a warning when ``skip_small``.
        crops_per_image: random crops per tiled image per epoch in ``train`` mode.
        max_images: use only the first this many images (None: all).
    """

    def __init__(
        self,
        root: PathLike,
        mode: str,
        patch_size: int = 256,
        crops_per_image: int = 60,
        skip_small: bool = False,
        max_images: Optional[int] = None,
    ):
        super().__init__(root, mode)
        self.patch_size = check_count("patch_size", patch_size)
        crops_per_image = check_count("crops_per_image", crops_per_image)
        max_images = check_count("max_images", max_images, optional=True)
        entries = self._read_root()
        if self.mode == "train" and not self.has_gt:
            raise ArgumentError(f"{self.root} has no ground truth, so it cannot train", argument="root")
        self.repeat = crops_per_image if self.tiled and self.mode == "train" else 1
        self.entries = self._check_sizes(entries if max_images is None else entries[:max_images], skip_small)
        self.names = [e["id"] for e in self.entries]

    # ---- start-up checks -----------------------------------------------------------------
    def _read_root(self) -> List[Dict[str, Any]]:
        """The entries of ``root``; sets ``has_gt``, ``tiled`` and ``base`` (what paths in the
        entries are relative to)."""
        root = self.root
        if root.is_dir():
            entries, self.has_gt = scan_blocks(root)
            self.tiled, self.base = False, root
        elif root.is_file():
            doc = load_annotation(root)
            entries, self.has_gt = doc["entries"], bool(doc.get("has_gt", True))
            self.tiled, self.base = doc["kind"] == "tiles", root.parent
        else:
            raise DataError(f"SIDD annotation file or blocks folder {root} does not exist", argument="root")
        return entries

    def _path(self, rel: str) -> Path:
        return (self.base / rel).resolve()

    def _check_sizes(self, entries: List[Dict[str, Any]], skip_small: bool) -> List[Dict[str, Any]]:
        """The entries at least ``patch_size`` a side where crops are taken; smaller ones are an
        error, or left out when ``skip_small``."""
        kept = []
        for e in entries:
            size = self._entry_size(e)
            needs_patch = self.mode == "train" or self.tiled
            if needs_patch and min(size) < self.patch_size:
                if not skip_small:
                    raise DataError(
                        f"SIDD image {e['id']} ({e.get('scene', '')}) is {size[0]}×{size[1]} (H×W), smaller "
                        f"than patch_size {self.patch_size}; lower patch_size or set skip_small",
                        argument="patch_size",
                    )
                continue
            kept.append(e)
        if not kept:
            raise DataError(f"no SIDD image in {self.root} is at least {self.patch_size} px a side",
                            argument="patch_size")
        return kept

    def _entry_size(self, e: Dict[str, Any]) -> Tuple[int, int]:
        if not self.tiled:
            return image_size(self._path(e["noisy"]))
        tile_dir = self._path(e["tile_dir"])
        rows, cols = e["grid"]
        for prefix in (e["gt_prefix"], e["noisy_prefix"]):
            for r in range(rows):
                for c in range(cols):
                    if not tile_path(tile_dir, prefix, r, c).is_file():
                        raise DataError(
                            f"SIDD tile {tile_path(tile_dir, prefix, r, c)} is missing; "
                            "run scripts/sidd_tile_annotations.py again"
                        )
        return tuple(e["size"])

    # ---- items ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries) * self.repeat

    def image_name(self, index: int) -> str:
        return self.names[index // self.repeat]

    def block_index(self, index: int) -> Tuple[int, int]:
        """(image, block) position of a block item in the benchmark's 40×32 layout."""
        e = self.entries[index // self.repeat]
        return int(e.get("image_index", 0)), int(e.get("block_index", 0))

    def _position(self, h: int, w: int) -> Tuple[int, int]:
        place = random_crop_position if self.mode == "train" else center_crop_position
        return place(h, w, self.patch_size)

    def _read_tiled(self, e: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
        top, left = self._position(*e["size"])
        tile_dir, tile_size = self._path(e["tile_dir"]), tuple(e["tile_size"])
        gt = read_tiled_crop(tile_dir, e["gt_prefix"], tile_size, top, left, self.patch_size)
        noisy = read_tiled_crop(tile_dir, e["noisy_prefix"], tile_size, top, left, self.patch_size)
        return gt, noisy

    def _read_block(self, e: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
        noisy = read_image(self._path(e["noisy"]))
        gt = read_image(self._path(e["gt"])) if self.has_gt else None
        if gt is not None and gt.shape != noisy.shape:
            raise DataError(f"SIDD block {e['gt']} is {gt.shape[:2]} but its noisy partner is {noisy.shape[:2]}")
        if self.mode == "train":
            top, left = self._position(*noisy.shape[:2])
            noisy, gt = crop(noisy, top, left, self.patch_size), crop(gt, top, left, self.patch_size)
        return gt, noisy

    def __getitem__(self, index: int):
        e = self.entries[index // self.repeat]
        gt, noisy = self._read_tiled(e) if self.tiled else self._read_block(e)
        if gt is None:
            return to_tensor(noisy)
        return to_tensor(gt), to_tensor(noisy)
