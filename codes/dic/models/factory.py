"""Building registered models by name: ``create_model``, their hyper-parameters with defaults,
types, allowed values and meanings, and parameter counts at full size without allocating the
weights."""
from __future__ import annotations

import collections.abc
import contextlib
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import torch.nn as nn

from ..errors import ArgumentError
from ..registry import did_you_mean
from .registry import MODELS, plain


@dataclass(frozen=True)
class HParam:
    """One constructor hyper-parameter of a model, as the options doc shows it."""

    name: str
    default: Any
    expected: str  # "an integer", "one of serial, checkerboard", ...
    choices: Optional[Tuple[Any, ...]]
    doc: str


def model_hparams(name: str) -> Dict[str, Any]:
    """Constructor hyper-parameters of model ``name`` and their defaults (tuples as lists, as
    YAML and JSON give them back), ``quality`` included."""
    cls = MODELS.get(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: plain(p.default) for p in params}


def complete_hparams(name: str, hparams: Mapping[str, Any]) -> Dict[str, Any]:
    """``hparams`` with every argument it leaves out at its default: files written before an
    argument existed (or recorded only the non-default ones) compare equal to today's models."""
    return {**model_hparams(name), **{k: plain(v) for k, v in hparams.items()}}


def hparam_specs(name: str) -> Dict[str, HParam]:
    """Every hyper-parameter of model ``name`` with its default, type and allowed values (from
    the constructor's annotations) and meaning (from the ``Args:`` sections of the class and
    its bases' docstrings)."""
    cls = MODELS.get(name)
    hints = typing.get_type_hints(cls.__init__)
    docs = _argument_docs(cls)
    out = {}
    for key, default in model_hparams(name).items():
        expected, choices = _describe_type(hints.get(key, type(default)))
        out[key] = HParam(key, default, expected, choices, docs.get(key, ""))
    return out


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
_SEQUENCES = (list, tuple, collections.abc.Sequence)


def _describe_type(hint: Any) -> Tuple[str, Optional[Tuple[Any, ...]]]:
    """A hint in words (``Optional[int]`` → "an integer or null") and its allowed values."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args)), tuple(args)
    if origin is typing.Union and type(None) in args:
        inner, choices = _describe_type(next(a for a in args if a is not type(None)))
        return f"{inner} or null", choices
    if origin in _SEQUENCES and args:
        return f"a list of {_PLURALS.get(args[0], 'values')}", None
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint))), None


_ENTRY = re.compile(r"^    (\w+(?:,\s*\w+)*):\s*(.*)$")


def _argument_docs(cls: type) -> Dict[str, str]:
    """``name → meaning`` from the Google-style ``Args:`` sections of ``cls`` and its bases (the
    class nearest ``cls`` wins); ``a, b: text`` documents both."""
    docs: Dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_parse_args_section(inspect.cleandoc(klass.__dict__.get("__doc__") or "")))
    return docs


def _parse_args_section(doc: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    lines = iter(doc.splitlines())
    for line in lines:
        if line.strip() == "Args:":
            break
    names: Tuple[str, ...] = ()
    for line in lines:
        if line and not line.startswith(" "):
            break
        match = _ENTRY.match(line)
        if match:
            names = tuple(n.strip() for n in match.group(1).split(","))
            out.update({n: match.group(2).strip() for n in names})
        elif line.strip() and names:
            out.update({n: f"{out[n]} {line.strip()}" for n in names})
    return out


def create_model(
    name: str,
    quality: Optional[int] = None,
    **hparams: Any,
) -> nn.Module:
    """Build model ``name``. ``quality`` (1–6) picks N when N is not given (quality 6 when
    neither is). An unknown name, an unknown hyper-parameter or a value the model refuses is an
    :class:`~dic.errors.ArgumentError` naming the argument (a ValueError too).
    A warm start from CompressAI weights is :func:`dic.checkpoints.load_pretrained`."""
    cls = MODELS.get(name)
    allowed = model_hparams(name)
    for key in hparams:
        if key not in allowed or key == "quality":
            raise ArgumentError(
                f"unknown hyper-parameter for model '{name}'{did_you_mean(key, list(allowed))}; "
                f"its hyper-parameters: {', '.join(allowed)}",
                argument=key,
            )
    return cls(quality=quality, **hparams)


@contextlib.contextmanager
def _no_storage():
    """Tensors made inside carry shapes and dtypes but no memory (FakeTensorMode). CompressAI
    makes some buffers with ``torch.Tensor([...])``, which the meta device cannot host."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
    except ImportError:  # pragma: no cover - older or newer torch: build for real
        yield
        return
    with FakeTensorMode():
        yield


def shape_only_model(name: str, quality: Optional[int] = None, **hparams: Any) -> nn.Module:
    """Model ``name`` whose tensors have shapes but no storage: for counting parameters and
    listing state-dict keys at N=192 without allocating hundreds of megabytes."""
    with _no_storage():
        return create_model(name, quality, **hparams)


def count_parameters(name: str, quality: int = 6, **hparams: Any) -> int:
    """Number of learned parameters (buffers excluded) of model ``name`` at ``quality``."""
    model = shape_only_model(name, quality, **hparams)
    return sum(p.numel() for p in model.parameters())
