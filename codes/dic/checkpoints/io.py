"""Our checkpoint files: one dict with the model's registry name, its hyper-parameters and its
state dict, written atomically and read with ``torch.load(weights_only=True)`` so that a file
cannot run code. :func:`dic.checkpoints.load_model` also takes official checkpoints, converted on the fly."""
from __future__ import annotations

import copy
import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table

from ..errors import CheckpointError
from ..fileio import atomic_output
from ..models.base import apply_context_masks

FORMAT = "dic-checkpoint"
VERSION = 1
RESERVED_KEYS = ("format", "version", "model", "hparams", "state_dict")
PathLike = Union[str, os.PathLike]


#: The buffers of CompressAI's entropy models that hold their rANS coding tables.
TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


def _entropy_models(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (EntropyBottleneck, GaussianConditional))]


def has_coding_tables(model: nn.Module) -> bool:
    """Whether every entropy model of ``model`` holds its coding tables."""
    return all(m._quantized_cdf.numel() > 0 and (isinstance(m, EntropyBottleneck) or m.scale_table.numel() > 0)
               for _, m in _entropy_models(model))


def coding_tables(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The rANS coding tables of ``model``'s entropy models as state-dict entries, computed
    afresh from its current weights on CPU copies (``model`` is not touched): the entropy
    bottleneck's CDFs and CompressAI's default 64-scale table for the Gaussian conditional.
    These float computations differ between machines in their last bits, which is why the
    tables travel with the weights (docs/portability.md)."""
    tables: Dict[str, torch.Tensor] = {}
    for name, module in _entropy_models(model):
        twin = copy.deepcopy(module).to("cpu", torch.float32)
        with torch.no_grad():
            if isinstance(twin, EntropyBottleneck):
                twin.update(force=True)
            else:
                twin.update_scale_table(get_scale_table(), force=True)
        for buffer, value in twin.named_buffers(recurse=False):
            if buffer in TABLE_BUFFERS:
                tables[f"{name}.{buffer}"] = value.detach().clone()
    return tables


def build_coding_tables(model: nn.Module, source: str, path: Optional[PathLike] = None) -> None:
    """Give ``model`` coding tables when it has none, computed here, with a warning naming
    ``source`` (and how to store them in ``path``, its checkpoint): files coded with them may
    not decode on another kind of machine."""
    if has_coding_tables(model):
        return
    load_coding_tables(model, coding_tables(model))
    fix = f"`dic tables {path}`" if path is not None else "save it with save_checkpoint, which stores them"
    warnings.warn(
        f"{source} stores no entropy-coder tables, so they were computed on this machine: .dic files "
        f"coded with it may not decode on another kind of machine. Store them with the weights: {fix} "
        "(docs/portability.md)", stacklevel=2)


def load_coding_tables(model: nn.Module, tables: Mapping[str, torch.Tensor]) -> None:
    """Put ``tables`` (state-dict entries, as :func:`coding_tables` returns) into ``model``'s
    entropy models, replacing their table buffers whatever their size."""
    for name, module in _entropy_models(model):
        device = next(module.buffers()).device
        for buffer in TABLE_BUFFERS:
            if f"{name}.{buffer}" in tables:
                setattr(module, buffer, tables[f"{name}.{buffer}"].detach().clone().to(device))


def save_checkpoint(path: PathLike, model: nn.Module, *, weights: Optional[Mapping[str, Any]] = None,
                    **extra: Any) -> None:
    """Write ``{"format", "version", "model", "hparams", "state_dict", **extra}`` to ``path``
    atomically (temporary file in the same folder, then rename). The state dict is ``weights``
    (default: ``model.state_dict()``) with the coding tables computed afresh from ``model``
    (:func:`coding_tables`), so that every file this project writes codes alike everywhere.
    ``extra`` holds whatever the caller needs back (optimizer states, step counters…) as
    tensors and plain containers."""
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} are reserved")
    state = dict(model.state_dict() if weights is None else weights)
    state.update(coding_tables(model))
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.name,
        "hparams": dict(model.hparams),
        "state_dict": state,
        **extra,
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint_file(path: PathLike, map_location: Any = "cpu") -> Any:
    """Whatever ``path`` holds, unpickled with ``weights_only=True``. A missing or unreadable
    file, or one that needs arbitrary Python objects, raises a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path)
        if not unsafe:
            raise CheckpointError(f"checkpoint {path} is not a readable PyTorch file ({_reason(e)})") from None
        raise CheckpointError(
            f"checkpoint {path} stores Python objects other than tensors and plain containers "
            f"(it needs {', '.join(unsafe)}); it is not loaded, since unpickling them could run "
            "code from the file. Re-save only its state dict (torch.save(checkpoint['state_dict'], "
            "...)) from a trusted environment."
        ) from None
    except Exception as e:  # not a zip / legacy torch file, truncated, ...
        raise CheckpointError(f"checkpoint {path} is not a readable PyTorch file ({_reason(e)})") from None


def _unsafe_globals(path: Path) -> List[str]:
    """The globals a torch.save file refers to beyond what weights_only allows ([] if unknown)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        return []


def _reason(error: Exception) -> str:
    """The informative line of a torch.load error (its weights-only messages are long)."""
    lines = [l.strip() for l in str(error).splitlines() if l.strip()]
    picked = [l for l in lines if "WeightsUnpickler error" not in l and "Check the documentation" not in l]
    return (picked[-1] if picked else type(error).__name__)[:200]


def is_dic_checkpoint(obj: Any) -> bool:
    """Whether a loaded object is one of our checkpoints (rather than an official file)."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Our checkpoint at ``path`` as a dict; a CheckpointError when it is missing, unreadable,
    of a newer version, or some other kind of file (official ones go through load_model or
    ``dic convert``)."""
    return validated(read_checkpoint_file(path, map_location), path)


def validated(obj: Any, path: PathLike) -> Dict[str, Any]:
    if not is_dic_checkpoint(obj):
        raise CheckpointError(
            f"checkpoint {path} is not a dic checkpoint (no 'format': '{FORMAT}' entry); an "
            "official checkpoint converts with `dic convert IN OUT --arch ARCH` or loads with load_model"
        )
    version = obj.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"checkpoint {path} has version {version!r}; this dic reads versions ≤ {VERSION}")
    for key, kind in (("model", str), ("hparams", Mapping), ("state_dict", Mapping)):
        if not isinstance(obj.get(key), kind):
            raise CheckpointError(f"checkpoint {path}: entry '{key}' is missing or not a {kind.__name__}")
    return dict(obj)


def load_state_dict_checked(
    model: nn.Module, state_dict: Mapping[str, Any], source: str, names: Optional[Mapping[str, str]] = None
) -> None:
    """Strict ``load_state_dict`` whose error lists the missing and unexpected keys (shown by
    their ``names`` in the source file when given) and any shape mismatch, naming ``source``."""
    expected = model.state_dict()
    _check_context_masks(model, expected, state_dict, source)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [(names or {}).get(k, k) for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = [f"{what} keys ({len(keys)}): {_some(keys)}" for what, keys in
                 (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError(f"{source} does not fit model '{model.name}' (N={model.N}): " + "; ".join(parts))
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{source} does not fit model '{model.name}' (N={model.N}): {e}") from None


def _check_context_masks(model: nn.Module, expected: Mapping[str, Any], state_dict: Mapping[str, Any],
                         source: str) -> None:
    """A CheckpointError when a stored context-model mask differs from the model's: the weights
    were trained with the other spatial context (serial vs checkerboard, docs/models.md §5).
    Loading them would silently swap the model's context model for the file's."""
    for key, mask in expected.items():
        if not key.endswith("context_prediction.mask"):
            continue
        stored = state_dict.get(key)
        if torch.is_tensor(stored) and stored.shape == mask.shape and not torch.equal(stored.to(mask), mask):
            ours = getattr(model, "context", "serial")
            other = "serial" if ours == "checkerboard" else "checkerboard"
            raise CheckpointError(
                f"{source} does not fit model '{model.name}' with context '{ours}': its '{key}' is a "
                f"{other} context model's; load it with the context it was trained with")


def _some(keys: Iterable[str], limit: int = 12) -> str:
    keys = list(keys)
    more = f", … ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def weights_fingerprint(model: nn.Module) -> str:
    """Hex SHA-256 over every state-dict entry's name, dtype, shape and bytes, entropy-coder
    tables included, after :func:`apply_context_masks`: equal fingerprints mean bit-identical
    coding behaviour, whether or not the model has run a forward pass."""
    apply_context_masks(model)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
