"""Load any model checkpoint: ours, or an official release's, converted on the fly."""
from __future__ import annotations

from typing import Any, Optional, Union

import torch
import torch.nn as nn

from ..errors import ArgumentError, CheckpointError
from ..models.factory import create_model
from .io import (PathLike, build_coding_tables, is_dic_checkpoint, load_state_dict_checked, read_checkpoint_file,
                 validated)
from .official import model_from_official


def load_model(
    path: PathLike, arch: Optional[str] = None, map_location: Any = "cpu", **official_hparams: Any
) -> nn.Module:
    """The model stored at ``path``: one of our checkpoints, or an official training or
    evaluation checkpoint converted on the fly (``arch`` recognised from its keys unless given;
    ``official_hparams`` may give ``quality``, ``head_dim`` or ``num_heads`` the file cannot tell)."""
    obj = read_checkpoint_file(path, map_location)
    if is_dic_checkpoint(obj):
        ckpt = validated(obj, path)
        if arch is not None and arch != ckpt["model"]:
            raise CheckpointError(f"checkpoint {path} holds a '{ckpt['model']}' model, not '{arch}'")
        try:
            model = create_model(ckpt["model"], **ckpt["hparams"])
        except ArgumentError as e:
            raise CheckpointError(f"checkpoint {path}: its hyper-parameters do not build a model: {e}") from None
        load_state_dict_checked(model, ckpt["state_dict"], f"checkpoint {path}")
    else:
        model = model_from_official(obj, arch, source=f"checkpoint {path}", **official_hparams)
    return model.to(map_location) if isinstance(map_location, (str, torch.device)) else model


def load_for_inference(path: PathLike, arch: Optional[str] = None, update: bool = True,
                       device: Union[torch.device, str] = "cpu") -> nn.Module:
    """:func:`load_model` in eval mode, then moved to ``device``. The entropy-coder tables are
    used as the file stores them; when ``update`` and the file has none, they are computed on
    the CPU here, with a warning (files coded with them may not decode elsewhere)."""
    model = load_model(path, arch=arch, map_location="cpu").eval()
    if update:
        build_coding_tables(model, f"checkpoint {path}", path)
    return model.to(device)
