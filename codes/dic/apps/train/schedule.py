"""Learning-rate schedules of the official configs, for the main and the auxiliary optimizer.

``lr_scheme`` (in ``train.<mode>``):
- ``LambdaLR``: linear warm-up over ``warm_up_counts`` (rate × (i+1)/warm_up_counts), then the
  rate × ``gamma`` per milestone passed. The auxiliary rate warms up the same way, then stays.
- ``MultiStepLR``: the same without warm-up (rate × gamma per milestone passed); the auxiliary
  rate is constant. Implemented as a ``LambdaLR`` so its state holds only plain values.
- ``ReduceLROnPlateau``: the main rate × ``gamma`` after ``patience`` validations without a lower
  validation rd_loss; the auxiliary rate is constant.

The counter ``i`` is epochs in ``mode: epoch`` and steps in ``mode: step``: :func:`step_time`
is called once per epoch or once per step accordingly, :func:`step_plateau` after each validation.
"""
from __future__ import annotations

import warnings
from typing import Callable, List, Sequence, Tuple

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from ...errors import ArgumentError

SCHEMES = ("LambdaLR", "MultiStepLR", "ReduceLROnPlateau")


def warmup_multistep(warm_up_counts: int, milestones: List[int], gamma: float) -> Callable[[int], float]:
    """Rate factor at count ``i``: ``(i+1)/warm_up_counts`` during warm-up, then
    ``gamma ** (number of milestones ≤ i)``. A closure, so scheduler state never stores it and
    the option file stays the one source of the schedule's shape."""
    milestones = sorted(milestones)

    def factor(i: int) -> float:
        if i < warm_up_counts:
            return (i + 1) / warm_up_counts
        return gamma ** sum(1 for m in milestones if m <= i)

    return factor


def create_schedulers(optimizer: Optimizer, aux_optimizer: Optimizer, *, lr_scheme: str, warm_up_counts: int = 0,
                      milestones: Sequence[int] = (), gamma: float = 0.1,
                      patience: int = 10) -> Tuple[LRScheduler, LRScheduler]:
    """(main, auxiliary) schedulers of ``lr_scheme`` (the values of a ``train.<mode>`` section)."""
    warm, milestones, gamma = int(warm_up_counts or 0), list(milestones or []), float(gamma)
    if lr_scheme == "LambdaLR":
        return (LambdaLR(optimizer, warmup_multistep(warm, milestones, gamma)),
                LambdaLR(aux_optimizer, warmup_multistep(warm, [], 1.0)))
    if lr_scheme == "MultiStepLR":
        return (LambdaLR(optimizer, warmup_multistep(0, milestones, gamma)),
                LambdaLR(aux_optimizer, warmup_multistep(0, [], 1.0)))
    if lr_scheme == "ReduceLROnPlateau":
        main = ReduceLROnPlateau(optimizer, mode="min", factor=gamma, patience=int(patience))
        return main, LambdaLR(aux_optimizer, warmup_multistep(0, [], 1.0))
    raise ArgumentError(f"unknown scheme {lr_scheme!r}; expected one of {', '.join(SCHEMES)}", argument="lr_scheme")


def step_time(*schedulers: LRScheduler) -> None:
    """Advance the count-based schedulers by one (epoch or step); plateau schedulers wait.
    The schedule counts time, so it advances over capped steps too (torch would warn about
    the optimizer not having stepped; that is intended here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        for s in schedulers:
            if not isinstance(s, ReduceLROnPlateau):
                s.step()


def step_plateau(metric: float, *schedulers: LRScheduler) -> None:
    """Feed a validation rd_loss to the plateau schedulers; the others ignore it."""
    for s in schedulers:
        if isinstance(s, ReduceLROnPlateau):
            s.step(metric)


def current_lr(optimizer: Optimizer) -> float:
    """The rate of the optimizer's first parameter group."""
    return float(optimizer.param_groups[0]["lr"])

