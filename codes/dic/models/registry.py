"""The model registry. ``@register_model("name")`` makes a class buildable by ``create_model``,
sets its ``name`` and records its hyper-parameters by construction: every instance's
:attr:`hparams` holds the bound arguments of its constructor (defaults included, ``quality``
and ``N`` as resolved), so a checkpoint or ``.dic`` header rebuilds exactly the model that wrote
it, and no model can forget one (docs/adding_a_model.md)."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, TypeVar

from ..registry import Registry

MODELS = Registry("model")
T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Register a model class as ``name``; its constructor must take named arguments only."""

    def decorator(cls: T) -> T:
        cls.name = name
        cls.__init__ = _recording_init(cls)
        return MODELS.register(name)(cls)

    return decorator


def plain(value: Any) -> Any:
    """A hyper-parameter value as YAML and JSON give it back (tuples as lists)."""
    return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _recording_init(cls: type) -> Callable[..., None]:
    """``cls.__init__`` followed by recording its bound arguments in ``self.hparams``."""
    init = cls.__init__
    signature = inspect.signature(init)
    loose = [p.name for p in signature.parameters.values()
             if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if loose:
        raise TypeError(f"model {cls.__name__}: *args/**kwargs ({', '.join(loose)}) cannot be recorded as "
                        "hyper-parameters; name every constructor argument")

    @functools.wraps(init)
    def init_and_record(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        hparams: Dict[str, Any] = {k: plain(v) for k, v in list(bound.arguments.items())[1:]}
        hparams.update(quality=self.quality, N=self.N)  # as resolved: N from quality, quality 6 by default
        self.hparams = hparams

    return init_and_record
