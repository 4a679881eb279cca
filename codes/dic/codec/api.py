"""The coding API: prepare a model, encode an image into ``.dic`` bytes, decode them back.

Every check of :mod:`.format` runs before a byte reaches the entropy decoder; then the model
must be the one that made the file (name, hyper-parameters, weights fingerprint, pad multiple,
latent shapes); after decoding, each latent's integer symbols must have the checksum the encoder
stored, or no image is returned (docs/architecture.md). Devices are ``torch.device`` objects or
their names; parsing command-line device names is the applications' job."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import compressai
import numpy as np
import torch
from torch import nn

from .. import __version__
from ..checkpoints import build_coding_tables, load_for_inference, weights_fingerprint
from ..data.io import to_tensor, to_uint8
from ..errors import BitstreamError, CheckpointError, DataError
from ..models import complete_hparams
from ..models.precision import Precision
from .format import MAGIC, Strings, pack, unpack
from .header import EXACT_VERSION, FORMAT_VERSION, LATENTS, Header, latent_checksum, padding_for
from .search import Loaded, find_checkpoint

ImageLike = Union[np.ndarray, torch.Tensor]
PathLike = Union[str, os.PathLike]
Device = Union[str, torch.device]


def prepare_model(model: nn.Module) -> str:
    """Put ``model`` in the state both sides code in (eval mode, entropy tables as it holds
    them; computed here, with a warning, when it holds none) and return its weights
    fingerprint in that state."""
    model.eval()
    build_coding_tables(model, f"model {model.name}")
    return weights_fingerprint(model)


def load_codec_model(checkpoint: PathLike, arch: Optional[str] = None, device: Device = "cpu") -> Loaded:
    """Load a checkpoint ready for coding (its stored entropy tables, or tables computed here
    with a warning when it has none) and its fingerprint, then move the model to ``device``."""
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) == MAGIC:
            raise CheckpointError(
                f"checkpoint {path} is a compressed .dic image, not a checkpoint (check the argument order)"
            )
    model = load_for_inference(path, arch=arch)
    return model.to(torch.device(device)), weights_fingerprint(model)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _json_clean(value: Any) -> Any:
    """A JSON round trip, so hyper-parameters compare the way they are stored (tuples → lists)."""
    return json.loads(json.dumps(value, sort_keys=True))


def software(device: Device) -> Dict[str, str]:
    """The versions, device and CPU vector level (information only: they decided the
    probabilities of version-2 files, and decide the pixels' last bits of any file)."""
    return {"dic": __version__, "torch": torch.__version__, "compressai": compressai.__version__,
            "device": torch.device(device).type, "cpu": torch.backends.cpu.get_cpu_capability()}


def latent_shapes(model: nn.Module, height: int, width: int) -> Dict[str, List[int]]:
    """The [C, h, w] of ``y`` and ``z`` the model derives for an H×W image."""
    zh, zw = model.latent_shape((height, width))
    return {"y": [int(model.M), 4 * zh, 4 * zw], "z": [int(model.entropy_bottleneck.channels), zh, zw]}


# ----------------------------------------------------------------------------- encoding


def _to_batch(image: ImageLike, device: torch.device) -> torch.Tensor:
    """H×W×3 uint8 array, or 3×H×W / 1×3×H×W tensor (float in [0, 1] or uint8) → 1×3×H×W float."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"encode_image takes an H×W×3 uint8 array, got {image.dtype} of shape {image.shape}")
        x = to_tensor(image)
    elif isinstance(image, torch.Tensor):
        x = image.detach()
        x = x[0] if x.dim() == 4 and x.shape[0] == 1 else x
        if x.dim() != 3 or x.shape[0] != 3:
            raise DataError(f"encode_image takes one RGB image (3×H×W or 1×3×H×W), got shape {tuple(image.shape)}")
        x = to_tensor(x.permute(1, 2, 0).cpu().numpy()) if x.dtype == torch.uint8 else x.float()
    else:
        raise DataError(f"encode_image takes a numpy array or a torch tensor, got {type(image).__name__}")
    return x.unsqueeze(0).to(device)


def encode_image(model: nn.Module, image: ImageLike, *, fingerprint: Optional[str] = None,
                 checkpoint: Optional[PathLike] = None, version: int = FORMAT_VERSION,
                 precision: Precision = "float32") -> bytes:
    """Code one image into the bytes of a ``.dic`` file.

    ``model`` must be in eval mode with its entropy tables built (see :func:`prepare_model`,
    whose return value is the ``fingerprint``; it is computed here when not given). The FILE
    NAME of ``checkpoint`` (not its folder) is recorded so ``dic decompress`` can look for it.
    ``version`` 3 (the default) codes with the exact entropy path, portable to every machine;
    2 with the float path of earlier releases (for comparisons and compatibility tests).
    ``precision``: the analysis transform's arithmetic (docs/precision.md; ``auto`` picks
    bfloat16 only where this machine runs it fast); the file is valid whatever it is.
    """
    if version not in (2, FORMAT_VERSION):
        raise ValueError(f"encode_image writes .dic format version 2 or {FORMAT_VERSION}, not {version!r}")
    device = _model_device(model)
    x = _to_batch(image, device)
    recorded = Path(checkpoint).name if checkpoint is not None else None
    if recorded is not None and "\\" in recorded:
        raise DataError(f"checkpoint file name {recorded!r} cannot be recorded in a .dic file (it contains a "
                        "backslash, a folder separator on Windows); rename it or do not record it")
    height, width = (int(s) for s in x.shape[-2:])
    multiple = int(model.pad_multiple)
    if fingerprint is None:
        fingerprint = weights_fingerprint(model)
    with torch.no_grad():
        out = model.compress(x, exact=version >= EXACT_VERSION, precision=precision)
    if tuple(out["shape"]) != (height, width):
        raise RuntimeError(
            f"{model.name}.compress returned shape {tuple(out['shape'])}, expected the image size {(height, width)}"
        )
    latents = {key: {"shape": list(symbols.shape[1:]), "sha256": latent_checksum(symbols[0], height, width, version)}
               for key, symbols in zip(LATENTS, out["symbols"])}
    header = Header(
        model=model.name, hparams=_json_clean(model.hparams), fingerprint=fingerprint,
        height=height, width=width, padding=padding_for(height, width, multiple), pad_multiple=multiple,
        checkpoint=recorded,
        encoder=software(device), latents=latents, version=version,
    )
    return pack(header, [[bytes(s) for s in latent] for latent in out["strings"]])


# ----------------------------------------------------------------------------- decoding


def check_model(header: Header, model: nn.Module, fingerprint: str, name: str = "data",
                source: str = "the given model") -> None:
    """Refuse to decode with a model other than the one that coded the file, or a header whose
    pad multiple and latent shapes are not what that model derives from the image size."""
    if model.name != header.model:
        raise BitstreamError(f"{name} was made with model {header.model!r}, but {source} is a {model.name!r} model")
    # Files that predate an argument (or recorded only non-default ones) hold its default.
    hparams = _json_clean(complete_hparams(model.name, model.hparams))
    recorded = _json_clean(complete_hparams(header.model, header.hparams))
    if hparams != recorded:
        keys = sorted(k for k in set(hparams) | set(recorded) if hparams.get(k) != recorded.get(k))
        diff = ", ".join(f"{k}={recorded.get(k)!r} in the file vs {hparams.get(k)!r}" for k in keys)
        raise BitstreamError(f"{name} was made with other {header.model} hyper-parameters than {source}: {diff}")
    if fingerprint != header.fingerprint:
        raise BitstreamError(fingerprint_mismatch(header, name, source, fingerprint))
    if header.pad_multiple != model.pad_multiple:
        raise BitstreamError(f"{name} is corrupt: header 'pad_multiple' is {header.pad_multiple}, "
                             f"but {header.model} pads to {model.pad_multiple}")
    if header.latents is not None:
        expected = latent_shapes(model, header.height, header.width)
        for key in LATENTS:
            if header.latents[key]["shape"] != expected[key]:
                raise BitstreamError(
                    f"{name} is corrupt: header latent {key} has shape {header.latents[key]['shape']}, but "
                    f"{header.model} codes a {header.width}×{header.height} image into {expected[key]}"
                )


def fingerprint_mismatch(header: Header, name: str, source: str, fingerprint: str) -> str:
    """The error for a model whose fingerprint is not the file's. A file older than version 3
    fingerprints entropy tables computed on the machine that wrote it, so equal weights can
    differ there: the message says so instead of blaming the weights alone."""
    made = f"; it was made with checkpoint {header.checkpoint}" if header.checkpoint else ""
    if header.exact:
        return (f"{name} was made with other {header.model} weights than {source}: the file's weights "
                f"fingerprint is {header.fingerprint}, the model's is {fingerprint}{made}")
    return (f"{name} does not match {source}: the file's weights fingerprint is {header.fingerprint}, the "
            f"model's is {fingerprint}{made}. The file is version {header.version}, which predates portable "
            "coding: its fingerprint covers entropy-coder tables computed on the machine that wrote it, so "
            "these may be the same weights with tables computed elsewhere; decode it on a machine like the "
            "one that wrote it, or with other weights if it was made with others")


def decode_warnings(header: Header, model: nn.Module, name: str = "data") -> List[str]:
    """What the caller should be told before trusting the image: a version-1 file cannot be
    verified (and, coded on another kind of device, may decode wrong)."""
    if header.version != 1:
        return []
    note = (f"{name} is a version-1 .dic file, which stores no latent checksums: its decoded image "
            "cannot be verified (re-encode it to get a version-2 file)")
    coded, decoding = header.encoder.get("device"), _model_device(model).type
    if coded is not None and coded != decoding:
        note += f"; it was coded on {coded} and is decoded on {decoding}, so it may come out wrong"
    return [note]


def _verifier(header: Header, name: str, device: torch.device):
    """``verify(latent, symbols)`` for :meth:`CodecBase.decompress`: the decoded symbols must
    have the checksum (and shape) the encoder stored."""
    def verify(latent: str, symbols: torch.Tensor) -> None:
        stored = header.latents[latent]
        shape, actual = list(symbols.shape[1:]), latent_checksum(symbols[0], header.height, header.width, header.version)
        if shape == stored["shape"] and actual == stored["sha256"]:
            return
        here, there = _describe(software(device)), _describe(header.encoder) or "not recorded"
        raise BitstreamError(
            f"{name}: the decoded {latent} latent does not match the encoder's for a {header.width}×"
            f"{header.height} image (checksum {actual} of shape {shape}; the file stores {stored['sha256']} "
            f"of shape {stored['shape']}), so no image is returned. The weights are the encoder's "
            f"(fingerprint checked); {_mismatch_cause(header)} Encoder: {there}; this decoder: {here}"
        )
    return verify


def _mismatch_cause(header: Header) -> str:
    """Why decoded symbols can differ from the encoder's, for the file's entropy path."""
    if header.exact:
        return ("the exact entropy path computes the same probabilities on every machine, so the strings or "
                "the header were damaged before the file's CRCs were computed.")
    return (f"this is a version-{header.version} file, which predates portable coding: its probabilities were "
            "computed in floating point, which differs between instruction sets, libraries and devices, so "
            "it must be decoded on a machine like the one that wrote it (or the image re-encoded with this "
            "version of dic, whose files decode everywhere); otherwise its strings were damaged before the "
            "file's CRCs were computed.")


def _describe(info: Dict[str, Any]) -> str:
    """``dic 0.1.0, torch 2.1, compressai 1.2.8, device cpu`` (known keys first)."""
    order = ["dic", "torch", "compressai", "device", "cpu"]
    keys = [k for k in order if k in info] + sorted(k for k in info if k not in order)
    return ", ".join(f"{k} {info[k]}" for k in keys)


def decode_strings(model: nn.Module, header: Header, strings: Strings, name: str = "data",
                   precision: Precision = "float32") -> np.ndarray:
    """Entropy-decode validated strings with a checked model (the exact entropy path for
    version 3, the float path for older files): the H×W×3 uint8 image. For a version-2 or 3
    file every latent is verified against its stored checksum as soon as it is
    decoded; a mismatch raises BitstreamError and no image is returned. ``precision``: the
    synthesis's arithmetic (docs/precision.md); the decoded symbols do not depend on it."""
    verify = None if header.latents is None else _verifier(header, name, _model_device(model))
    with torch.no_grad():
        x_hat = model.decompress(strings, (header.height, header.width), verify=verify, exact=header.exact,
                                 precision=precision)["x_hat"]
    if tuple(x_hat.shape) != (1, 3, header.height, header.width):
        raise BitstreamError(
            f"decoding gave an image of shape {tuple(x_hat.shape)}, expected 1×3×{header.height}×{header.width}"
        )
    return to_uint8(x_hat)


def decode_bytes(data: bytes, model: Optional[nn.Module] = None, checkpoint: Optional[PathLike] = None, *,
                 fingerprint: Optional[str] = None, arch: Optional[str] = None, device: Device = "cpu",
                 name: str = "data", max_pixels: Optional[int] = None,
                 checkpoint_dirs: Sequence[PathLike] = (), beside: Optional[PathLike] = None,
                 precision: Precision = "float32") -> np.ndarray:
    """Decode the bytes of a ``.dic`` file into an H×W×3 uint8 image.

    Weights come from ``model`` (prepared, see :func:`prepare_model`), else from ``checkpoint``,
    else from the search of :mod:`.search` (``checkpoint_dirs``, ``$DIC_CHECKPOINT_PATH``, the
    folder of ``beside`` — the ``.dic`` file's path, when the bytes came from one). Sizes over
    ``max_pixels`` (default: :func:`.header.max_image_pixels`) are refused before decoding.
    Warnings (:func:`decode_warnings`) go through :mod:`warnings`. ``precision``: the synthesis's
    arithmetic (:func:`decode_strings`).
    """
    return decode_with_header(data, model, checkpoint, fingerprint=fingerprint, arch=arch, device=device,
                              name=name, max_pixels=max_pixels, checkpoint_dirs=checkpoint_dirs,
                              beside=beside, precision=precision)[0]


def decode_with_header(data: bytes, model: Optional[nn.Module] = None, checkpoint: Optional[PathLike] = None, *,
                       fingerprint: Optional[str] = None, arch: Optional[str] = None, device: Device = "cpu",
                       name: str = "data", max_pixels: Optional[int] = None,
                       checkpoint_dirs: Sequence[PathLike] = (), beside: Optional[PathLike] = None,
                       cache: Optional[Dict[str, Loaded]] = None,
                       on_load: Optional[Callable[[Path], None]] = None,
                       precision: Precision = "float32") -> Tuple[np.ndarray, Header]:
    """:func:`decode_bytes` (the one decoding path: ``dic decompress`` calls it too), also
    returning the file's header. ``cache`` (path → loaded model) keeps checkpoints loaded
    across calls, as a folder of files needs; ``on_load(path)`` is called before a checkpoint
    is read, so a command can say what it is loading."""
    header, strings = unpack(data, name, max_pixels)
    model, fingerprint, source = load_for_header(
        header, name, model=model, fingerprint=fingerprint, checkpoint=checkpoint, arch=arch,
        device=device, checkpoint_dirs=checkpoint_dirs, beside=beside, cache=cache, on_load=on_load,
    )
    check_model(header, model, fingerprint, name, source)
    for note in decode_warnings(header, model, name):
        warnings.warn(note, stacklevel=3)
    return decode_strings(model, header, strings, name, precision), header


def load_for_header(header: Header, name: str = "data", *, model: Optional[nn.Module] = None,
                    fingerprint: Optional[str] = None, checkpoint: Optional[PathLike] = None,
                    arch: Optional[str] = None, device: Device = "cpu", checkpoint_dirs: Sequence[PathLike] = (),
                    beside: Optional[PathLike] = None, cache: Optional[Dict[str, Loaded]] = None,
                    on_load: Optional[Callable[[Path], None]] = None) -> Tuple[nn.Module, str, str]:
    """The model to decode ``header``'s file with, its fingerprint and a description of where
    it came from: ``model`` when given, else ``checkpoint``, else the search (``on_load(path)``
    before each checkpoint it reads)."""
    if model is not None:
        return model, fingerprint or weights_fingerprint(model), "the given model"
    cache = {} if cache is None else cache

    def load(path: Path) -> Loaded:
        if on_load is not None:
            on_load(path)
        return load_codec_model(path, arch, device)

    if checkpoint is None:
        found_model, found_fingerprint, path = find_checkpoint(header, load, name, checkpoint_dirs, beside, cache)
        return found_model, found_fingerprint, f"checkpoint {path}"
    key = os.path.abspath(checkpoint)
    if key not in cache:
        cache[key] = load(Path(checkpoint))
    return cache[key][0], cache[key][1], f"checkpoint {checkpoint}"
