"""Training state: counters, RNG states, and the training checkpoint that resumes a run exactly.

A training checkpoint is one of our model checkpoints (:func:`dic.checkpoints.save_checkpoint`,
written atomically) with these extra entries, all tensors or plain containers so that it loads
with ``torch.load(weights_only=True)``:

- ``epoch``, ``iter`` (steps done), ``batch_in_epoch`` (batches of the current epoch done),
  ``loss`` (best validation rd_loss so far), ``skipped_steps``, ``seed``, ``world_size``;
- ``optimizer``, ``aux_optimizer``, ``lr_scheduler``, ``aux_lr_scheduler`` (state dicts, the
  official names), ``scaler`` (fp16 GradScaler, or None);
- ``rng``: one entry per rank with the Python, NumPy, torch CPU and CUDA generator states.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch

from ...errors import CheckpointError
from ...checkpoints import save_checkpoint

#: Entries a training checkpoint has beyond a plain model checkpoint.
TRAINING_KEYS = ("epoch", "iter", "batch_in_epoch", "loss", "optimizer", "aux_optimizer",
                 "lr_scheduler", "aux_lr_scheduler", "rng")


@dataclass
class TrainState:
    """Counters that, with the weights, optimizers, schedulers and RNGs, define where a run is."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimisation steps done (skipped ones included)
    batch_in_epoch: int = 0  # batches of the current epoch done
    best_loss: float = math.inf  # lowest validation rd_loss so far
    skipped_steps: int = 0  # steps whose loss was NaN, infinite or above loss_cap
    seed: int = 0

    def as_extra(self) -> Dict[str, Any]:
        """The checkpoint entries (official names where the official files have one)."""
        return {"epoch": self.epoch, "iter": self.step, "batch_in_epoch": self.batch_in_epoch,
                "loss": float(self.best_loss), "skipped_steps": self.skipped_steps, "seed": self.seed}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> "TrainState":
        return cls(epoch=int(ckpt["epoch"]), step=int(ckpt["iter"]), batch_in_epoch=int(ckpt["batch_in_epoch"]),
                   best_loss=float(ckpt["loss"]), skipped_steps=int(ckpt.get("skipped_steps", 0)),
                   seed=int(ckpt.get("seed", 0)))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
def capture_rng() -> Dict[str, Any]:
    """This process's generator states, as tensors and plain values (weights_only-safe)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [int(version), [int(v) for v in internal], gauss],
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back the generator states :func:`capture_rng` recorded."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), int(npy["pos"]),
                         int(npy["has_gauss"]), float(npy["cached_gaussian"])))
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            torch.cuda.set_rng_state(cuda[torch.cuda.current_device() % len(cuda)].cpu())


# --------------------------------------------------------------------------------------------
def save_training_checkpoint(path: str, model: torch.nn.Module, state: TrainState, optimizer, aux_optimizer,
                             scheduler, aux_scheduler, scaler: Optional[Any], rng: List[Dict[str, Any]],
                             world_size: int) -> None:
    """Write everything needed to continue the run to ``path`` (atomically)."""
    save_checkpoint(
        path, model, **state.as_extra(),
        optimizer=optimizer.state_dict(), aux_optimizer=aux_optimizer.state_dict(),
        lr_scheduler=scheduler.state_dict(), aux_lr_scheduler=aux_scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None else None,
        rng=rng, world_size=int(world_size),
    )


def is_training_checkpoint(ckpt: Mapping[str, Any]) -> bool:
    """Whether a loaded checkpoint carries a training state (not only weights)."""
    return all(k in ckpt for k in TRAINING_KEYS)


def check_same_model(ckpt: Mapping[str, Any], model: torch.nn.Module, path: str) -> None:
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
