"""The coding API: prepare a model, encode an image into ``.dic`` bytes, decode them back.

Every integrity check of :mod:`.format` runs before a byte reaches the entropy decoder; then
the model's name, hyper-parameters and weights fingerprint must equal the header's."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import compressai
import numpy as np
import torch
from torch import nn

from .. import __version__
from ..checkpoints import load_model, weights_fingerprint
from ..errors import BitstreamError, CheckpointError, DataError, OptionError
from ..models.base import PAD_MULTIPLE
from .format import MAGIC, Header, Strings, pack, unpack

ImageLike = Union[np.ndarray, torch.Tensor]


def prepare_model(model: nn.Module) -> str:
    """Put ``model`` in the state both sides code in (eval mode, entropy tables rebuilt with
    ``update(force=True)``) and return its weights fingerprint in that state."""
    model.eval()
    model.update(force=True)
    return weights_fingerprint(model)


def load_codec_model(checkpoint: Union[str, os.PathLike], arch: Optional[str] = None,
                     device: str = "cpu") -> Tuple[nn.Module, str]:
    """Load a checkpoint ready for coding: tables and fingerprint are computed on the CPU (so
    they do not depend on the device), then the model moves to ``device``."""
    device = _check_device(device)
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) == MAGIC:
            raise CheckpointError(
                f"checkpoint {path} is a compressed .dic image, not a checkpoint (check the argument order)"
            )
    model = load_model(str(path), arch=arch, map_location="cpu")
    fingerprint = prepare_model(model)
    return model.to(device), fingerprint


def _check_device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise OptionError(f"--device is {device!r}; expected cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return device


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _padding(height: int, width: int, multiple: int = PAD_MULTIPLE) -> Tuple[int, int, int, int]:
    """[top, bottom, left, right] replicate padding to the next multiple (the models pad at the
    bottom and right and crop the same after decoding)."""
    return 0, -height % multiple, 0, -width % multiple


def _json_clean(value: Any) -> Any:
    """A JSON round trip, so hyper-parameters compare the way they are stored (tuples → lists)."""
    return json.loads(json.dumps(value, sort_keys=True))


# ----------------------------------------------------------------------------- pure API


def _to_batch(image: ImageLike, device: torch.device) -> torch.Tensor:
    """H×W×3 uint8 array, or 3×H×W / 1×3×H×W tensor (float in [0, 1] or uint8) → 1×3×H×W float."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"encode_image takes an H×W×3 uint8 array, got {image.dtype} of shape {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255)
    elif isinstance(image, torch.Tensor):
        x = image.detach()
        x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    else:
        raise DataError(f"encode_image takes a numpy array or a torch tensor, got {type(image).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise DataError(f"encode_image takes one RGB image (3×H×W or 1×3×H×W), got shape {tuple(x.shape)}")
    return x.to(device)


def _normalise_strings(strings: Sequence, name: str) -> Strings:
    out = []
    for latent in strings:
        latent = [latent] if isinstance(latent, (bytes, bytearray)) else list(latent)
        if not all(isinstance(s, (bytes, bytearray)) for s in latent):
            raise TypeError(f"{name}.compress returned strings that are not bytes")
        out.append([bytes(s) for s in latent])
    return out


def encode_image(model: nn.Module, image: ImageLike, *, fingerprint: Optional[str] = None,
                 checkpoint: Optional[Union[str, os.PathLike]] = None) -> bytes:
    """Code one image into the bytes of a ``.dic`` file.

    ``model`` must be in eval mode with its entropy tables built (see :func:`prepare_model`,
    whose return value is the ``fingerprint``; it is computed here when not given). ``checkpoint``
    is recorded so ``dic decompress`` can find the weights without ``-c``.
    """
    device = _model_device(model)
    x = _to_batch(image, device)
    height, width = x.shape[-2:]
    multiple = int(getattr(model, "pad_multiple", PAD_MULTIPLE))
    if fingerprint is None:
        fingerprint = weights_fingerprint(model)
    with torch.no_grad():
        out = model.compress(x)
    if tuple(out["shape"]) != (height, width):
        raise RuntimeError(
            f"{model.name}.compress returned shape {tuple(out['shape'])}, expected the image size {(height, width)}"
        )
    header = Header(
        model=model.name,
        hparams=_json_clean(model.hparams),
        fingerprint=fingerprint,
        height=int(height),
        width=int(width),
        padding=_padding(height, width, multiple),
        pad_multiple=multiple,
        checkpoint=str(Path(checkpoint).resolve()) if checkpoint is not None else None,
        encoder={"dic": __version__, "torch": torch.__version__, "compressai": compressai.__version__,
                 "device": device.type},
    )
    return pack(header, _normalise_strings(out["strings"], model.name))


def check_model(header: Header, model: nn.Module, fingerprint: str, name: str = "data",
                source: str = "the given model") -> None:
    """Refuse to decode with a model other than the one that coded the file."""
    if model.name != header.model:
        raise BitstreamError(f"{name} was made with model {header.model!r}, but {source} is a {model.name!r} model")
    hparams = _json_clean(model.hparams)
    if hparams != header.hparams:
        keys = sorted(k for k in set(hparams) | set(header.hparams) if hparams.get(k) != header.hparams.get(k))
        diff = ", ".join(f"{k}={header.hparams.get(k)!r} in the file vs {hparams.get(k)!r}" for k in keys)
        raise BitstreamError(f"{name} was made with other {header.model} hyper-parameters than {source}: {diff}")
    if fingerprint != header.fingerprint:
        raise BitstreamError(
            f"{name} was made with other {header.model} weights than {source}: the file's weights "
            f"fingerprint is {header.fingerprint}, the model's is {fingerprint}"
            + (f"; it was made with checkpoint {header.checkpoint}" if header.checkpoint else "")
        )


def device_warning(header: Header, model: nn.Module, name: str = "data") -> Optional[str]:
    """A warning when the file was coded on another kind of device than it is decoded on: the
    entropy models' floating-point results may then differ and the image may come out wrong."""
    coded, decoding = header.encoder.get("device"), _model_device(model).type
    if coded is None or coded == decoding:
        return None
    return (f"{name} was coded on {coded} and is decoded on {decoding}; learned codecs are only "
            f"reliable on the same kind of device (use --device {coded})")


def decode_strings(model: nn.Module, header: Header, strings: Strings) -> np.ndarray:
    """Entropy-decode validated strings with a checked model: the H×W×3 uint8 image."""
    with torch.no_grad():
        x_hat = model.decompress(strings, (header.height, header.width))["x_hat"]
    if tuple(x_hat.shape) != (1, 3, header.height, header.width):
        raise BitstreamError(
            f"decoding gave an image of shape {tuple(x_hat.shape)}, expected 1×3×{header.height}×{header.width}"
        )
    return x_hat[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def decode_bytes(data: bytes, model: Optional[nn.Module] = None,
                 checkpoint: Optional[Union[str, os.PathLike]] = None, *,
                 fingerprint: Optional[str] = None, arch: Optional[str] = None,
                 device: str = "cpu", name: str = "data") -> np.ndarray:
    """Decode the bytes of a ``.dic`` file into an H×W×3 uint8 image.

    Weights come from ``model`` (prepared, see :func:`prepare_model`), else from ``checkpoint``,
    else from the checkpoint path recorded in the file. Every integrity check runs before decoding.
    """
    header, strings = unpack(data, name)
    if model is not None:
        if fingerprint is None:
            fingerprint = weights_fingerprint(model)
        source = "the given model"
    else:
        checkpoint = resolve_checkpoint(header, checkpoint, name)
        model, fingerprint = load_codec_model(checkpoint, arch=arch, device=device)
        source = f"checkpoint {checkpoint}"
    check_model(header, model, fingerprint, name, source)
    note = device_warning(header, model, name)
    if note:
        warnings.warn(note, stacklevel=2)
    return decode_strings(model, header, strings)


def resolve_checkpoint(header: Header, checkpoint: Optional[Union[str, os.PathLike]], name: str) -> str:
    """The checkpoint to decode with: the one given, else the one the file records."""
    if checkpoint is not None:
        return str(checkpoint)
    if header.checkpoint is None:
        raise CheckpointError(
            f"{name} records no checkpoint path; pass the {header.model} checkpoint it was made with "
            "(-c CHECKPOINT)"
        )
    if not Path(header.checkpoint).is_file():
        raise CheckpointError(
            f"{name} was made with checkpoint {header.checkpoint}, which no longer exists; pass the "
            f"checkpoint with weights fingerprint {header.fingerprint} (-c CHECKPOINT)"
        )
    return header.checkpoint


