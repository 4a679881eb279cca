"""Errors a user can fix. Launchers print their message and exit non-zero, without a traceback."""


class DicError(Exception):
    """Base class: the message alone tells the user what is wrong and what was expected."""


class OptionError(DicError):
    """An option file or command-line override is invalid."""


class DataError(DicError):
    """A data set folder, image or annotation file is missing or unreadable."""


class CheckpointError(DicError):
    """A checkpoint file is missing, of an unknown kind, or does not fit the model."""


class BitstreamError(DicError):
    """A compressed ``.dic`` file is truncated, corrupt, of another kind or version."""
