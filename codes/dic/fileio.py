"""Atomic file output: everything is written to a temporary file beside the target and renamed
over it at the end, so an interrupted run never leaves half a file where a whole one was.

A target that cannot be written (its folder is a file, is read-only, or refuses new files, as
``/proc`` does) raises :class:`WriteError`, a :class:`~dic.errors.DicError` naming the target
and the reason, so a command prints one line instead of a traceback; it is an OSError too, for
callers that catch those."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from .errors import DicError

PathLike = Union[str, os.PathLike]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class WriteError(DicError, OSError):
    """A file cannot be written where it was asked for; the message names it and says why."""


def _blocking_file(folder: Path) -> Union[Path, None]:
    """The first existing part of ``folder``'s path that is not a folder, if any."""
    for part in [folder, *folder.parents][::-1]:
        if part.exists() and not part.is_dir():
            return part
        if not part.exists():
            return None
    return None


def why_unwritable(path: PathLike) -> Union[str, None]:
    """Why ``path`` cannot be written, judged before writing (None when it looks writable): a
    part of its folder is a file, it is a folder itself, or its nearest existing folder is
    read-only. Writing can still fail (a full disk, ``/proc``); :func:`atomic_output` then
    raises :class:`WriteError`."""
    path = Path(path)
    if path.is_dir():
        return "it is a folder"
    blocking = _blocking_file(path.parent)
    if blocking is not None:
        return f"{blocking} is a file, not a folder"
    existing = next(p for p in [path.parent, *path.parent.parents] if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"folder {existing} is not writable"
    return None


def _write_error(path: Path, exc: OSError, creating: bool = False) -> WriteError:
    """The one-line error for ``path``; ``creating``: the folder refused a new file."""
    judged = why_unwritable(path)
    reason = judged or exc.strerror or str(exc)
    if creating and not judged:
        reason = f"folder {path.parent} refuses new files ({reason})"
    return WriteError(f"cannot write {path}: {reason}")


@contextmanager
def atomic_output(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds,
    delete it if the block raises. ``suffix`` matters to writers that infer a format from it.
    Creating the folder or the temporary file, or the final rename, failing raises
    :class:`WriteError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:
        raise _write_error(path, exc, creating=True) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _write_error(path, exc) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; WriteError naming ``path`` when it cannot be."""
    with atomic_output(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:  # a full disk, a quota
            raise _write_error(Path(path), exc) from None


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(src: PathLike, dst: PathLike) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)
