"""Building registered models by name: ``create_model``, their hyper-parameters with defaults,
and parameter counts at full size without allocating the weights."""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Dict, Optional

import torch.nn as nn

from ..errors import ArgumentError
from ..registry import did_you_mean
from .registry import MODELS


def model_hparams(name: str) -> Dict[str, Any]:
    """Constructor hyper-parameters of model ``name`` and their defaults (tuples as lists, as
    YAML and JSON give them back), ``quality`` included."""
    cls = MODELS.get(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: list(p.default) if isinstance(p.default, tuple) else p.default for p in params}


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
