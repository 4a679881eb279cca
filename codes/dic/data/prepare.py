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

from tqdm import tqdm

from ..errors import DataError
from .io import atomic_write_text, image_size, list_images, read_image, write_image

#: The repository root (``codes/dic/data/prepare.py`` → three folders up); script defaults are
#: relative to it, so the scripts behave the same from any working directory.
REPO_ROOT = Path(__file__).resolve().parents[3]

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

#: scikit-image's bundled photographs (``skimage/data`` in the wheel) per split.
SAMPLES: Dict[str, Sequence[str]] = {
    "train": ("astronaut.png", "coffee.png", "motorcycle_left.png", "hubble_deep_field.jpg"),
    "val": ("chelsea.png", "coins.png"),
    "test": ("rocket.jpg", "camera.png"),
}


def skimage_data_dir() -> Path:
    """The folder of images shipped inside the installed scikit-image package (no download)."""
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def prepare_samples(out_dir: Path, show_progress: bool = True, log: Log = print) -> Dict[str, int]:
    """Write the :data:`SAMPLES` photographs as 8-bit RGB PNGs into ``out_dir/{train,val,test}``."""
    out_dir, data_dir = Path(out_dir), skimage_data_dir()
    jobs: List[tuple] = []
    for split, names in SAMPLES.items():
        for name in names:
            src = data_dir / name
            if not src.is_file():
                raise DataError(f"scikit-image's bundled image {src} is missing; reinstall scikit-image")
            jobs.append((src, out_dir / split / f"{Path(name).stem}.png"))
    todo = [(s, d) for s, d in jobs if not (d.is_file() and image_size(d) == image_size(s))]
    for src, dest in progress(todo, "writing samples", show_progress):
        write_image(dest, read_image(src))
    counts = {split: len(names) for split, names in SAMPLES.items()}
    listing = ", ".join(f"{n} {k}" for k, n in counts.items())
    log(f"nothing to do: {listing} images already in {out_dir}" if not todo else f"wrote {len(todo)} image(s) to {out_dir} ({listing})")
    return {**counts, "written": len(todo)}
