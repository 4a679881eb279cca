"""Where a run stands: its counters (:class:`TrainState`), the optimisation objects whose states a
checkpoint carries (:class:`Optimisation`), and every generator's state (:func:`capture_rng`).
:mod:`.checkpointing` writes them to a training checkpoint and reads them back.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch.optim import Optimizer


@dataclass
class TrainState:
    """Counters that, with the weights, optimizers, schedulers and RNGs, define where a run is."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimisation steps done (capped ones included)
    batch_in_epoch: int = 0  # batches of the current epoch done
    best_loss: float = math.inf  # lowest validation rd_loss so far
    capped_steps: int = 0  # steps whose loss was outside [0, loss_cap) (skipped or zero-gradient)
    seed: int = 0

    def as_extra(self) -> Dict[str, Any]:
        """The checkpoint entries (official names where the official files have one; the capped
        count keeps its first name, ``skipped_steps``)."""
        return {"epoch": self.epoch, "iter": self.step, "batch_in_epoch": self.batch_in_epoch,
                "loss": float(self.best_loss), "skipped_steps": self.capped_steps, "seed": self.seed}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> "TrainState":
        return cls(epoch=int(ckpt["epoch"]), step=int(ckpt["iter"]), batch_in_epoch=int(ckpt["batch_in_epoch"]),
                   best_loss=float(ckpt["loss"]), capped_steps=int(ckpt.get("skipped_steps", 0)),
                   seed=int(ckpt.get("seed", 0)))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Optimisation:
    """Both optimizers, both learning-rate schedulers and fp16's GradScaler (None otherwise)."""

    optimizer: Optimizer
    aux_optimizer: Optimizer
    scheduler: Any
    aux_scheduler: Any
    scaler: Optional[torch.amp.GradScaler] = None

    def state_dicts(self) -> Dict[str, Any]:
        """Their states, under the official checkpoint names."""
        return {"optimizer": self.optimizer.state_dict(), "aux_optimizer": self.aux_optimizer.state_dict(),
                "lr_scheduler": self.scheduler.state_dict(), "aux_lr_scheduler": self.aux_scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dicts(self, ckpt: Mapping[str, Any]) -> None:
        """Put back the states :meth:`state_dicts` wrote (the scaler's when both sides have one).
        The optimizers keep this run's kernel choice (``train.fused_adam``), whatever the
        checkpoint's run used."""
        _load_keeping_kernel(self.optimizer, ckpt["optimizer"])
        _load_keeping_kernel(self.aux_optimizer, ckpt["aux_optimizer"])
        self.scheduler.load_state_dict(ckpt["lr_scheduler"])
        self.aux_scheduler.load_state_dict(ckpt["aux_lr_scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])


def _load_keeping_kernel(optimizer: Optimizer, state: Mapping[str, Any]) -> None:
    """``optimizer.load_state_dict(state)`` with the saved groups' ``fused`` / ``foreach`` flags
    replaced by the optimizer's own (torch would take the saved ones, and place the step
    counters for them)."""
    groups = [dict(saved, **{k: group.get(k) for k in ("fused", "foreach") if k in group})
              for saved, group in zip(state["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({**state, "param_groups": groups})


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
