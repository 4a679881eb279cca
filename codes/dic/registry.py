"""Name → class registries for models, data sets and losses, in the manner of CompressAI's
``register_model``: a decorator records a class under the name used in option files."""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, List, TypeVar

from .errors import OptionError

T = TypeVar("T")


def did_you_mean(name: str, choices: List[str]) -> str:
    """A ' (did you mean 'x'?)' suffix for the closest choice, or '' if none is close."""
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """Maps YAML names to classes. ``package`` is imported on first lookup so that every
    ``@register`` decorator in it has run."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._entries: Dict[str, type] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(cls: T) -> T:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = cls
            return cls

        return decorator

    def _load(self) -> None:
        importlib.import_module(self.package)

    def names(self) -> List[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def get(self, name: str, key: str = "") -> type:
        """The class registered as ``name``; an :class:`OptionError` naming ``key`` otherwise."""
        self._load()
        if name not in self._entries:
            where = f"{key}: " if key else ""
            raise OptionError(
                f"{where}unknown {self.kind} '{name}'{did_you_mean(name, list(self._entries))}; "
                f"registered {self.kind}s: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]


MODELS = Registry("model", "dic.models")
DATASETS = Registry("dataset", "dic.data")
LOSSES = Registry("loss", "dic.losses")

register_model = MODELS.register
register_dataset = DATASETS.register
register_loss = LOSSES.register
