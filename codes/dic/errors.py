"""Errors a user can fix. Launchers print their message and exit non-zero, without a traceback."""
from __future__ import annotations

from typing import Optional


class DicError(Exception):
    """Base class: the message alone tells the user what is wrong and what was expected.

    ``argument`` names the library argument the error is about, if any; the message then reads
    ``"<argument>: <detail>"``. The library knows no option key: :mod:`dic.config.build` puts
    the option file and the key that fed the argument in its place (docs/architecture.md)."""

    def __init__(self, message: str = "", *, argument: Optional[str] = None):
        super().__init__(f"{argument}: {message}" if argument else message)
        self.argument = argument
        self.detail = message


class ArgumentError(DicError, ValueError):
    """A library function refused the value of one of its ``argument`` s (a ValueError too)."""


class OptionError(DicError):
    """An option file or command-line override is invalid."""


class DataError(DicError):
    """A data set folder, image or annotation file is missing or unreadable."""


class CheckpointError(DicError):
    """A checkpoint file is missing, of an unknown kind, or does not fit the model."""


class BitstreamError(DicError):
    """A compressed ``.dic`` file is truncated, corrupt, of another kind or version."""
