"""Training checkpoints: write them, and continue a run from one exactly.

A training checkpoint is one of our model checkpoints (:func:`dic.checkpoints.save_checkpoint`,
written atomically) with these extra entries, all tensors or plain containers so that it loads
with ``torch.load(weights_only=True)``:

- ``epoch``, ``iter`` (steps done), ``batch_in_epoch`` (batches of the current epoch done),
  ``loss`` (best validation rd_loss so far), ``skipped_steps`` (capped steps, see
  docs/options.md ``train.loss_cap_mode``), ``seed``, ``world_size``;
- ``optimizer``, ``aux_optimizer``, ``lr_scheduler``, ``aux_lr_scheduler`` (state dicts, the
  official names), ``scaler`` (fp16 GradScaler, or None);
- ``rng``: one entry per rank with the Python, NumPy, torch CPU and CUDA generator states.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch.nn as nn

from ...checkpoints import (is_dic_checkpoint, load_model, load_state_dict_checked, read_checkpoint_file,
                            save_checkpoint)
from ...errors import CheckpointError
from ...fileio import atomic_copy
from . import distributed as dist
from .distributed import DistInfo
from .state import Optimisation, TrainState, restore_rng

#: Entries a training checkpoint has beyond a plain model checkpoint.
TRAINING_KEYS = ("epoch", "iter", "batch_in_epoch", "loss", "optimizer", "aux_optimizer",
                 "lr_scheduler", "aux_lr_scheduler", "rng")


def save_training_checkpoint(path: str, model: nn.Module, state: TrainState, optim: Optimisation,
                             rng: List[Dict[str, Any]], world_size: int) -> None:
    """Write everything needed to continue the run to ``path`` (atomically); ``rng`` holds every
    rank's generator states, in rank order."""
    save_checkpoint(path, model, **state.as_extra(), **optim.state_dicts(), rng=rng, world_size=int(world_size))


def write_checkpoints(folder: Path, copies: Sequence[str], model: nn.Module, state: TrainState,
                      optim: Optimisation, rng: List[Dict[str, Any]], world_size: int) -> None:
    """Write ``folder/latest.pth``, then copy it to each name in ``copies`` (e.g. ``12.pth``,
    ``best.pth``)."""
    latest = Path(folder) / "latest.pth"
    save_training_checkpoint(str(latest), model, state, optim, rng, world_size)
    for name in copies:
        atomic_copy(latest, Path(folder) / name)


def is_training_checkpoint(ckpt: Mapping[str, Any]) -> bool:
    """Whether a loaded checkpoint carries a training state (not only weights)."""
    return all(k in ckpt for k in TRAINING_KEYS)


def check_same_model(ckpt: Mapping[str, Any], model: nn.Module, path: str) -> None:
    """A resumed checkpoint must hold the model the options build: same name, same hyper-parameters."""
    if ckpt["model"] != model.name:
        raise CheckpointError(f"cannot resume from {path}: it holds a '{ckpt['model']}' model but "
                              f"network.model is '{model.name}'")
    theirs, ours = dict(ckpt["hparams"]), dict(model.hparams)
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        listed = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs options {ours.get(k)!r}" for k in diff)
        raise CheckpointError(f"cannot resume from {path}: the network options differ from the "
                              f"checkpoint's ({listed})")


def restore(path: str, model: nn.Module, optim: Optimisation, info: DistInfo,
            logger: logging.Logger) -> Optional[TrainState]:
    """Continue from ``path``. A training checkpoint restores the weights, ``optim``'s states and
    this rank's generators, and returns its counters; a weights-only file (ours, or an official
    one converted on the fly) loads the weights alone and returns None (counters start at 0)."""
    obj = read_checkpoint_file(path, map_location="cpu")
    if not (is_dic_checkpoint(obj) and is_training_checkpoint(obj)):
        weights = obj["state_dict"] if is_dic_checkpoint(obj) else load_model(path, arch=model.name).state_dict()
        load_state_dict_checked(model, weights, f"checkpoint {path}")
        logger.warning(f"{path} holds weights but no training state: weights loaded, optimizers, "
                       "schedulers and counters start afresh")
        return None
    check_same_model(obj, model, path)
    load_state_dict_checked(model, obj["state_dict"], f"checkpoint {path}")
    optim.load_state_dicts(obj)
    state = TrainState.from_checkpoint(obj)
    rng = obj["rng"]
    if int(obj.get("world_size", len(rng))) == info.world_size and len(rng) == info.world_size:
        restore_rng(rng[info.rank])
    else:
        logger.warning(f"{path} was written by {len(rng)} process(es), this run has {info.world_size}: "
                       "generators reseeded, so the continuation is not bit-identical")
        dist.seed_everything(state.seed + state.step, info.rank)
    logger.info(f"resumed from {path}: epoch {state.epoch}, step {state.step} "
                f"({state.batch_in_epoch} batch(es) into the epoch), best rd_loss {state.best_loss:.4f}")
    return state
