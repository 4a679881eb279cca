"""``dic bench``: coding and training speed and memory, beside CompressAI's own path.

The package imports nothing until a name is asked for, so ``dic bench --help`` loads only
:mod:`.arguments` (no torch); ``from dic.apps.bench import benchmark`` imports :mod:`.runner`."""
import importlib
from typing import Any

__all__ = ["add_arguments", "benchmark", "run"]

_HOMES = {"add_arguments": ".arguments", "benchmark": ".runner", "run": ".runner"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
