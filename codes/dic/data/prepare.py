"""Data preparation behind ``scripts/flicker_process.py`` and ``scripts/prepare_samples.py``
(the SIDD scripts are in :mod:`dic.data.sidd_prepare`). Every step is idempotent: files already
in place are left alone, and a second run says that it had nothing to do. Files are written
atomically, so an interrupted run leaves no half-written output.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import DataError
from .io import atomic_write_text, image_size, list_images, write_image

Log = Callable[[str], None]


def progress(items: Iterable, desc: str, enabled: bool = True, total: Optional[int] = None) -> Iterable:
    """A tqdm bar over ``items`` (on stderr), or the bare iterable when disabled or empty."""
    if not enabled or (total if total is not None else len(items) if hasattr(items, "__len__") else 1) == 0:
        return items
    return tqdm(items, desc=desc, total=total, disable=not enabled, unit="file", dynamic_ncols=True)


def write_json_if_changed(path: Path, doc: Any) -> bool:
    """Write ``doc`` as indented JSON atomically unless the file already holds exactly that.
    Returns True when the file was (re)written."""
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(path, text)
    return True


# ---- Flicker 2W -----------------------------------------------------------------------------

def _place_file(src: Path, dest: Path, copy: bool) -> bool:
    """Hard-link (or with ``copy`` copy) ``src`` to ``dest`` atomically. Returns True when the
    file was hard-linked; a failed link (another file system) falls back to a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    linked = False
    try:
        if tmp.exists():
            tmp.unlink()
        if not copy:
            try:
                os.link(src, tmp)
                linked = True
            except OSError:
                pass
        if not linked:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return linked


def _up_to_date(src: Path, dest: Path, copy: bool) -> bool:
    if not dest.is_file():
        return False
    if not copy and os.path.samefile(src, dest):
        return True
    return dest.stat().st_size == src.stat().st_size


def split_counts(n: int, val_fraction: float) -> int:
    """Number of training images among ``n`` sorted ones: ``round(n · (1 − f))`` with Python's
    ``round``, as the official preparation script computes ``round(n * 0.99)``, keeping at least
    one image on each side.

    A product exactly half-way between two integers goes to the even one (Python's ``round`` is
    banker's rounding): with f = 0.01, n = 150 gives 148.5 → 148 and n = 250 gives 247.5 → 248;
    otherwise it is the nearest integer (n = 120: 118.8 → 119, where a floor would give 118).
    ``1 − 0.01`` is the float 0.99 exactly, so the product is bit for bit the release's.
    The clamp only matters for n ≤ 50, where the rounded count is n: the release's own split
    would then put every image in training and, through ``alls[-0:]``, in validation as well."""
    if n < 2:
        raise DataError(f"need at least 2 usable images to split into train and val, found {n}")
    n_train = round(n * (1.0 - val_fraction))
    return min(max(n_train, 1), n - 1)


def flicker_process(
    src: Path,
    train_dir: Path,
    val_dir: Path,
    min_size: int = 256,
    val_fraction: float = 0.01,
    copy: bool = False,
    show_progress: bool = True,
    log: Log = print,
) -> Dict[str, int]:
    """Keep the images of ``src`` whose width and height are both ≥ ``min_size``, sort them by file
    name and place the first ``round(0.99·n)`` (:func:`split_counts`) in ``train_dir`` and the
    rest in ``val_dir`` as hard links (copies with ``copy=True``, or where linking fails)."""
    src, train_dir, val_dir = Path(src), Path(train_dir), Path(val_dir)
    if not src.is_dir():
        raise DataError(f"Flicker image folder {src} does not exist")
    paths = sorted(list_images(src), key=lambda p: p.name)
    if not paths:
        raise DataError(f"no images found in {src}")
    kept = [p for p in progress(paths, "checking sizes", show_progress) if min(image_size(p)) >= min_size]
    n_train = split_counts(len(kept), val_fraction)
    plan = [(p, train_dir / p.name) for p in kept[:n_train]] + [(p, val_dir / p.name) for p in kept[n_train:]]
    todo = [(s, d) for s, d in plan if not _up_to_date(s, d, copy)]
    linked = sum(_place_file(s, d, copy) for s, d in progress(todo, "placing files", show_progress))
    copies = 0 if copy else len(todo) - linked
    if copies:
        log(f"note: {copies} file(s) were copied because hard links to {src} are not possible")
    _warn_stale(train_dir, {d.name for s, d in plan if d.parent == train_dir}, log)
    _warn_stale(val_dir, {d.name for s, d in plan if d.parent == val_dir}, log)
    summary = {"train": n_train, "val": len(kept) - n_train, "too_small": len(paths) - len(kept), "written": len(todo)}
    head = f"{summary['train']} train / {summary['val']} val images, {summary['too_small']} under {min_size} px left out"
    log(f"nothing to do: {head}, all already in place" if not todo else f"{head}; placed {len(todo)} file(s)")
    return summary


def _warn_stale(folder: Path, expected: set, log: Log) -> None:
    if not folder.is_dir():
        return
    stale = sorted(p.name for p in list_images(folder) if p.name not in expected)
    if stale:
        log(f"warning: {len(stale)} image(s) in {folder} are not part of this split and were left "
            f"in place (e.g. {stale[0]}); delete them if they came from an older run")


# ---- sample photographs ---------------------------------------------------------------------

#: Every natural photograph among scikit-image's bundled images (``skimage/data`` in the wheel),
#: split once, a priori, so that no test photograph is ever trained or validated on. A natural
#: photograph here is a camera picture of a real scene, in colour or grey. Left out: drawings and
#: synthetic images (``chessboard_*``, ``color``, ``logo``, ``phantom``, ``horse``, ``text``), a
#: scanned page (``page``), microscopy (``cell``, ``ihc``), astronomy (``hubble_deep_field``,
#: ``moon``), retinal scans (``retina``, ``microaneurysms``) and files that are not single
#: pictures (``lfw_subset.npy``, ``motorcycle_disp.npz``, ``*.tif``, ``*.gif``, ``*.xml``).
#: The stereo pair ``motorcycle_left`` / ``motorcycle_right`` is one scene, so both are in train.
#: The test set holds three different subjects (a grey portrait, a cat, an outdoor scene); the
#: list is fixed and must not be re-chosen after looking at test results.
SAMPLES: Dict[str, Sequence[str]] = {
    "train": ("astronaut.png", "brick.png", "clock_motion.png", "grass.png", "gravel.png",
              "motorcycle_left.png", "motorcycle_right.png"),
    "val": ("coffee.png", "coins.png"),
    "test": ("camera.png", "chelsea.png", "rocket.jpg"),
}

#: PNG chunks dropped when reading a bundled photograph: some carry an ICC profile that libpng
#: flags ("iCCP: known incorrect sRGB profile") on every read. The pixels are unchanged.
_DROPPED_PNG_CHUNKS = (b"iCCP",)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def skimage_data_dir() -> Path:
    """The folder of images shipped inside the installed scikit-image package (no download)."""
    import skimage.data  # optional at import time: only the sample preparation needs it

    return Path(skimage.data.__file__).resolve().parent


def strip_png_chunks(data: bytes, dropped: Sequence[bytes] = _DROPPED_PNG_CHUNKS) -> bytes:
    """PNG bytes without the ancillary chunks named in ``dropped``; other bytes unchanged.
    Malformed PNG data is returned as is (the decoder then reports it)."""
    if not data.startswith(_PNG_MAGIC):
        return data
    out, pos = [_PNG_MAGIC], len(_PNG_MAGIC)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            return data
        if data[pos + 4:pos + 8] not in dropped:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def read_photograph(path: Path) -> np.ndarray:
    """A bundled photograph as H×W×3 uint8 RGB, read without libpng's ICC-profile warning."""
    data = strip_png_chunks(path.read_bytes())
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot decode scikit-image's bundled image {path}; reinstall scikit-image")
    return np.ascontiguousarray(image[:, :, ::-1])


def sample_plan(out_dir: Path, data_dir: Path) -> List[tuple]:
    """(source, destination) of every :data:`SAMPLES` photograph; a missing source is an error."""
    jobs = []
    for split, names in SAMPLES.items():
        for name in names:
            src = data_dir / name
            if not src.is_file():
                raise DataError(f"scikit-image's bundled image {src} is missing; reinstall scikit-image")
            jobs.append((src, out_dir / split / f"{Path(name).stem}.png"))
    return jobs


def _remove_stale_samples(out_dir: Path, expected: Sequence[Path], log: Log) -> None:
    """Delete images under ``out_dir/<split>`` that are not in :data:`SAMPLES` (an older list
    would otherwise leak a test photograph into training). The folder is ours: only this
    function's caller writes it."""
    keep = {Path(p).resolve() for p in expected}
    for split in SAMPLES:
        folder = out_dir / split
        for path in (list_images(folder) if folder.is_dir() else []):
            if path.resolve() not in keep:
                path.unlink()
                log(f"removed {path}: not in the {split} list of dic.data.prepare.SAMPLES")


def prepare_samples(out_dir: Path, show_progress: bool = True, log: Log = print) -> Dict[str, int]:
    """Write the :data:`SAMPLES` photographs as 8-bit RGB PNGs into ``out_dir/{train,val,test}``.
    The PNGs are re-encoded without ICC profiles, so reading them later prints nothing."""
    out_dir = Path(out_dir)
    jobs = sample_plan(out_dir, skimage_data_dir())
    _remove_stale_samples(out_dir, [d for _, d in jobs], log)
    todo = [(s, d) for s, d in jobs if not (d.is_file() and image_size(d) == image_size(s))]
    for src, dest in progress(todo, "writing samples", show_progress):
        write_image(dest, read_photograph(src))
    counts = {split: len(names) for split, names in SAMPLES.items()}
    listing = ", ".join(f"{n} {k}" for k, n in counts.items())
    log(f"nothing to do: {listing} images already in {out_dir}" if not todo else f"wrote {len(todo)} image(s) to {out_dir} ({listing})")
    return {**counts, "written": len(todo)}
