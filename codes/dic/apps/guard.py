"""Running a command with clean user errors, for every launcher (``dic``, ``dic-train``,
``dic-test``): one ``error:`` line and exit code 2 for a user error or an output that cannot be
written, one line and exit code 130 for Ctrl-C, ``warning:`` lines for warnings. It imports no
torch, so ``dic`` can use it before knowing whether its command needs torch (docs/cli.md)."""
from __future__ import annotations

import sys
import warnings
from typing import Any, Callable

from ..errors import DicError

#: Exit codes: a user error (one ``error:`` line), an interrupt (Ctrl-C).
USER_ERROR, INTERRUPTED = 2, 130


def guarded(func: Callable[..., Any], *args: Any) -> int:
    """Run ``func``; a :class:`DicError` becomes ``error: <message>`` on stderr and exit code 2,
    a file-system error that names its file (an output that cannot be written) one line naming
    it and exit code 2, Ctrl-C one line and exit code 130, and a warning ``warning: <message>``.
    The exit code is ``func``'s result when that is an integer, else 0."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result = func(*args)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except DicError as e:
        print(f"error: {e}", file=sys.stderr)
        return USER_ERROR
    except OSError as e:
        if e.filename is None:
            raise
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        return interrupted()


def os_error_message(error: OSError) -> str:
    """``<file>: <reason>`` (``→ <other file>`` for a rename) for an OSError that names a file."""
    other = f" → {error.filename2}" if error.filename2 is not None else ""
    return f"{error.filename}{other}: {error.strerror or error}"


def interrupted() -> int:
    """Say that Ctrl-C stopped the command (atomic writes leave no half-written file) and
    return exit code 130."""
    try:
        print("interrupted (Ctrl-C); no file is left half-written", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    return INTERRUPTED


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"warning: {message}", file=sys.stderr)
