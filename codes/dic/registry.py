"""Name → class registries, in the manner of CompressAI's ``register_model``: a decorator records
a class under its name (the name option files use). Each package owns its registry
(``dic.models.MODELS``, ``dic.data.DATASETS``, ``dic.losses.LOSSES``), so importing the package
is what fills it."""
from __future__ import annotations

import difflib
from typing import Callable, Dict, List, TypeVar

from .errors import ArgumentError

T = TypeVar("T")


def did_you_mean(name: str, choices: List[str]) -> str:
    """A ' (did you mean 'x'?)' suffix for the closest choice, or '' if none is close."""
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """Maps names to the classes registered under them."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, type] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(cls: T) -> T:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = cls
            return cls

        return decorator

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str, argument: str = "name") -> type:
        """The class registered as ``name``; an :class:`ArgumentError` about ``argument`` (the
        caller's parameter that held the name) listing the registered names otherwise."""
        if name not in self._entries:
            raise ArgumentError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, list(self._entries))}; "
                f"registered {self.kind}s: {', '.join(sorted(self._entries))}",
                argument=argument,
            )
        return self._entries[name]
