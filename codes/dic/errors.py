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
    """An option file or command-line override is invalid.

    Plain ``OptionError("message")`` is the message as given. With ``key`` (the dotted option
    key at fault, ``network.N``) the error is structured and its message reads
    ``"<source>: <key>: <detail>"`` (``"<key>: <detail>"`` without ``source``, the option file),
    or, when ``by_set`` (the key came from ``--set``), ``"--set <key>: <detail> (options
    <source>)"``. ``detail`` is the bare message; :meth:`named_by_set` gives the ``--set`` form."""

    def __init__(self, message: str = "", *, key: Optional[str] = None, source: Optional[str] = None,
                 by_set: bool = False, argument: Optional[str] = None):
        super().__init__(message, argument=argument)
        self.key = key
        self.source = None if source is None else str(source)
        self.by_set = bool(by_set) and key is not None
        if key is not None:
            self.args = (self._text(),)

    def _text(self) -> str:
        """The one place the message of a structured error is worded."""
        if self.by_set:
            return f"--set {self.key}: {self.detail}" + (f" (options {self.source})" if self.source else "")
        if self.source:
            return f"{self.source}: {self.key}: {self.detail}"
        return f"{self.key}: {self.detail}"

    def named_by_set(self) -> "OptionError":
        """The same error naming ``--set`` instead of the file (unchanged without a ``key``)."""
        if self.key is None or self.by_set:
            return self
        return OptionError(self.detail, key=self.key, source=self.source, by_set=True)


class DataError(DicError):
    """A data set folder, image or annotation file is missing or unreadable."""


class CheckpointError(DicError):
    """A checkpoint file is missing, of an unknown kind, or does not fit the model."""


class BitstreamError(DicError):
    """A compressed ``.dic`` file is truncated, corrupt, of another kind or version."""
