"""Finding the weights a ``.dic`` file was made with. A file records the checkpoint's file name
and weights fingerprint, never a folder; the decoder looks for that name, in order:

1. in the folders given by the caller (``dic decompress --checkpoint-dir``, repeatable);
2. in the folders of ``$DIC_CHECKPOINT_PATH`` (separated by ``os.pathsep``: ``:`` on Linux);
3. beside the ``.dic`` file;
4. for a version-1 file, at the absolute path it records.

A candidate is loaded and fingerprinted; one whose fingerprint differs from the file's is
skipped, and when none matches the error names the file name, the fingerprint, every place
looked in and every candidate skipped (docs/architecture.md)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from torch import nn

from ..errors import CheckpointError
from ..conventions import CHECKPOINT_PATH_ENV
from .header import Header

PathLike = Union[str, os.PathLike]
Loaded = Tuple[nn.Module, str]  # model ready for coding, weights fingerprint
Loader = Callable[[Path], Loaded]


def search_dirs(dirs: Sequence[PathLike] = ()) -> List[Tuple[Path, str]]:
    """The folders to look in, each with where it came from: ``dirs``, then
    ``$DIC_CHECKPOINT_PATH``'s entries (empty entries ignored)."""
    found = [(Path(d), "--checkpoint-dir") for d in dirs]
    env = os.environ.get(CHECKPOINT_PATH_ENV, "")
    found += [(Path(d), f"${CHECKPOINT_PATH_ENV}") for d in env.split(os.pathsep) if d.strip()]
    return found


def candidates(header: Header, dirs: Sequence[PathLike] = (),
               beside: Optional[PathLike] = None) -> List[Tuple[Path, str]]:
    """Where the file's checkpoint may be, in search order, each with why it is looked at."""
    if header.checkpoint is None:
        return []
    file_name = Path(header.checkpoint).name
    places = [(folder / file_name, origin) for folder, origin in search_dirs(dirs)]
    if beside is not None:
        places.append((Path(beside).parent / file_name, "beside the .dic file"))
    if header.version == 1 and Path(header.checkpoint).is_absolute():
        places.append((Path(header.checkpoint), "the path the version-1 file records"))
    unique, seen = [], set()
    for path, origin in places:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, origin))
    return unique


def find_checkpoint(header: Header, load: Loader, name: str = "data", dirs: Sequence[PathLike] = (),
                    beside: Optional[PathLike] = None, cache: Optional[Dict[str, Loaded]] = None
                    ) -> Tuple[nn.Module, str, Path]:
    """The first candidate whose weights fingerprint is the file's: ``(model, fingerprint,
    path)``. ``load(path)`` loads and fingerprints a checkpoint; ``cache`` (path → result)
    spares loading one twice across files. A CheckpointError says what is needed and where
    it looked when no candidate matches."""
    if header.checkpoint is None:
        raise CheckpointError(
            f"{name} records no checkpoint name; pass the {header.model} checkpoint with weights "
            f"fingerprint {header.fingerprint} (-c CHECKPOINT)"
        )
    cache = {} if cache is None else cache
    looked, skipped = [], []
    for path, origin in candidates(header, dirs, beside):
        looked.append(f"{path.parent} ({origin})")
        if not path.is_file():
            continue
        key = os.path.abspath(path)
        try:
            if key not in cache:
                cache[key] = load(path)
        except CheckpointError as exc:
            skipped.append(f"{path} ({exc})")
            continue
        model, fingerprint = cache[key]
        if fingerprint == header.fingerprint:
            return model, fingerprint, path
        what = "other weights" if header.exact else "other weights, or tables computed on another machine"
        skipped.append(f"{path} ({what}: fingerprint {fingerprint})")
    where = "; ".join(looked) if looked else "nowhere (no folder to search)"
    message = (f"{name} needs checkpoint {Path(header.checkpoint).name!r} with weights fingerprint "
               f"{header.fingerprint}; looked in: {where}")
    if skipped:
        message += f"; skipped: {'; '.join(skipped)}"
        if not header.exact:
            message += (f" (a version-{header.version} file predates portable coding: its fingerprint covers "
                        "entropy tables computed where it was written; decode it on a machine like that one)")
    raise CheckpointError(message + f"; pass it with -c, --checkpoint-dir or ${CHECKPOINT_PATH_ENV}")
