"""Train a registered model from an option file: ``python train.py -opt conf/train/x.yml``,
``dic-train -opt ...`` or ``dic train -opt ...``; with ``torchrun`` on several GPUs or machines.

The loop (:func:`fit`) reads top to bottom: one step per batch, then in ``mode: step`` the
schedulers and possibly a validation and checkpoint; at each epoch's end in ``mode: epoch``.
:mod:`.setup` builds what it touches (:class:`~.setup.Run`), :mod:`.step` is one optimisation
step, :mod:`.validation` and :mod:`.checkpointing` the rest.

Exact resume. A run stopped after any step and resumed reaches the same weights as one that
never stopped (same seed, same number of processes):

- every training item's randomness (crop position, noise parameters, noise) comes from a seed
  that depends only on (manual_seed, epoch, position in the epoch): ``SeededItems``
  (:mod:`dic.data.samplers`) seeds the global generators around each ``dataset[i]``, so neither
  the worker count nor a resume changes what an item looks like;
- the order of items is ``DistributedSampler``'s, a function of (manual_seed, epoch);
- a checkpoint records the batches of the current epoch already done, and a resumed run skips
  them by index (nothing is loaded) instead of replaying them;
- the checkpoint holds the weights, both optimizers, both schedulers, the GradScaler, the
  counters, the best loss and every rank's Python / NumPy / torch / CUDA generator states.

Stopping. Ctrl-C (SIGINT) or SIGTERM does not kill the run: the step under way finishes, then
``latest.pth`` is written as a periodic checkpoint would be (weights, optimizers, schedulers,
counters, every rank's generators), the log says where, and the process exits with 130
(SIGINT) or 143 (SIGTERM) — 128 + the signal's number, the status a shell reports for a process
the signal ended, so torchrun's agent and job schedulers (SLURM, Kubernetes) see a run that did
not finish, not a success. With ``path.resume: auto`` the same command continues from it,
exactly. A second Ctrl-C quits at once, without saving. Under torchrun, which passes a signal
on to every worker, the ranks agree on stopping at each step boundary (one small all-reduce per
step), so all stop after the same step and rank 0 alone writes.

Distributed (``torchrun``): one process per GPU (nccl) or per CPU slot (gloo); the batch is
split across ranks; only rank 0 validates, logs and writes files; a step whose loss is bad on
any rank is capped on all of them (docs/options.md, ``train.loss_cap_mode``).
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import Any, Dict

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ...config import Options, load_options, named_by_set, parse_overrides
from ...errors import OptionError
from . import distributed as dist
from .checkpointing import write_checkpoints
from .schedule import current_lr, step_plateau, step_time
from .setup import Run, setup, teardown
from .state import capture_rng
from .step import StepResult, loss_in_range
from .validation import format_terms, log_validation, validate


# ============================================================================================
# Command line
def run(args: argparse.Namespace) -> int:
    """Load the options and train; a run stopped by a signal exits with 128 + its number."""
    opt = load_options(args.opt, args.set, is_train=True)
    try:
        fit(opt)
    except Interrupted as stop:
        return stop.exit_code
    except OptionError as e:
        # found while building the run: about a key given with --set, it names --set as the loader does
        raise named_by_set(e, [key for key, _ in parse_overrides(args.set)]) from None
    return 0


# ============================================================================================
# The loop
def fit(opt: Options) -> nn.Module:
    """Train as ``opt`` says (resuming if it asks to); returns the trained, unwrapped model.
    SIGINT / SIGTERM save a resumable checkpoint, then raise :class:`Interrupted`."""
    run = setup(opt)
    state = run.state
    bar = tqdm(total=run.total_steps, initial=min(state.step, run.total_steps), disable=not run.info.is_main,
               desc=opt.name, unit="step", dynamic_ncols=True, mininterval=1.0)
    stop = 0  # the number of the signal that stops the run, the same on every rank
    try:
        with logging_redirect_tqdm(loggers=[run.logger]), StopSignals(run.info.is_main) as signals:
            while not run.finished() and not stop:
                for gt, noisy in epoch_batches(run):  # the rest of the current epoch
                    result = train_step(run, gt, noisy)
                    state.step += 1
                    state.batch_in_epoch += 1
                    bar.update(1)
                    if not result.capped and result.capped_flag is None and run.info.is_main:
                        bar.set_postfix(loss=f"{result.loss:.4f}", refresh=False)
                    log_step(run, result)
                    if run.mode == "step":
                        step_time(run.optim.scheduler, run.optim.aux_scheduler)
                        end_of_period(run, state.step)
                    if run.finished():
                        break
                    stop = dist.max_over_ranks(signals.received, run.device)
                    if stop:
                        break
                if state.batch_in_epoch >= run.data.steps_per_epoch:  # the epoch ran to its end
                    state.epoch += 1
                    state.batch_in_epoch = 0
                    if run.mode == "epoch":
                        step_time(run.optim.scheduler, run.optim.aux_scheduler)
                        end_of_period(run, state.epoch)
            if stop:
                raise Interrupted(stop, save_on_stop(run, stop))
            run.logger.info(f"training done: step {state.step}, epoch {state.epoch}, {state.capped_steps} "
                            f"step(s) capped ({run.stepper.loss_cap_mode}), best validation rd_loss "
                            f"{state.best_loss:.4f}; checkpoints in {opt.path.checkpoints}")
    finally:
        bar.close()
        teardown(run)
    return run.model


def epoch_batches(run: Run) -> DataLoader:
    """The training loader, set to what is left of the current epoch on this rank."""
    done = min(run.state.batch_in_epoch, run.data.steps_per_epoch)
    run.data.sampler.set_position(run.state.epoch, skip=done * run.data.batch_per_rank)
    return run.data.train


def train_step(run: Run, gt: torch.Tensor, noisy: torch.Tensor) -> StepResult:
    """One optimisation step (:class:`~.step.TrainStep`); a capped one is counted and logged."""
    result = run.stepper(gt, noisy)
    if result.capped:
        note_capped(run, result.loss)
    return result


def note_capped(run: Run, loss: float) -> None:
    """Count and log a step whose loss was outside ``[0, loss_cap)`` here or on another rank."""
    run.state.capped_steps += 1
    if not run.info.is_main:
        return
    cap, mode = run.stepper.loss_cap, run.stepper.loss_cap_mode
    here = "a bad loss on another rank" if loss_in_range(loss, cap) else f"loss {loss:.4g}"
    done = "nothing updated" if mode == "skip" else "main gradients zeroed, both optimizers stepped"
    run.logger.warning(f"step {run.state.step + 1}: {here} (loss_cap {cap:g}): {done}; "
                       f"{run.state.capped_steps} step(s) capped so far (loss_cap_mode {mode})")
    if run.tb is not None:
        run.tb.add_scalar("train/capped_steps", run.state.capped_steps, run.state.step + 1)


def log_step(run: Run, result: StepResult) -> None:
    """Accumulate the loss terms of uncapped steps; every ``print_freq`` steps log their means
    and learning rates (console, train.log, TensorBoard). Values reach the host only then (under
    ``train.sync_free_cap`` the capped flag too: :func:`flush_capped`)."""
    flag = result.capped_flag
    if flag is not None:
        keep = ~flag
        for k, v in result.terms.items():
            run.window[k] = run.window.get(k, 0.0) + torch.where(keep, v.float(), 0.0)
        run.window_steps = run.window_steps + keep.float()
        run.pending_capped = flag.int() if run.pending_capped is None else run.pending_capped + flag.int()
    elif not result.capped:
        for k, v in result.terms.items():
            run.window[k] = run.window.get(k, 0.0) + v.float()
        run.window_steps += 1
    step = run.state.step
    if step % run.opt.logger.print_freq != 0 and step != run.total_steps:
        return
    flush_capped(run)
    steps = float(run.window_steps)
    if steps == 0 or not run.info.is_main:
        run.window, run.window_steps = {}, 0
        return
    means = {k: float(v) / steps for k, v in run.window.items()}
    run.window, run.window_steps = {}, 0
    lrs = {"main": current_lr(run.optim.optimizer), "aux": current_lr(run.optim.aux_optimizer)}
    run.logger.info(f"<epoch {run.state.epoch + 1}, step {step}, lr {lrs['main']:.3e}> " + format_terms(means))
    if run.tb is not None:
        for k, v in means.items():
            run.tb.add_scalar(f"train/{k}", v, step)
        for k, v in lrs.items():
            run.tb.add_scalar(f"lr/{k}", v, step)


def flush_capped(run: Run) -> None:
    """Under ``train.sync_free_cap``: read the capped steps counted on the device since the last
    call (one host synchronisation), add them to the run's count and log them."""
    if run.pending_capped is None:
        return
    count, run.pending_capped = int(run.pending_capped), None
    if count == 0:
        return
    run.state.capped_steps += count
    if run.info.is_main:
        run.logger.warning(f"up to step {run.state.step}: {count} step(s) capped (loss outside [0, "
                           f"{run.stepper.loss_cap:g}); main gradients zeroed, both optimizers stepped); "
                           f"{run.state.capped_steps} so far (sync_free_cap: counted at the log line)")
        if run.tb is not None:
            run.tb.add_scalar("train/capped_steps", run.state.capped_steps, run.state.step)


def end_of_period(run: Run, counter: int) -> None:
    """After an epoch (mode: epoch) or a step (mode: step) numbered ``counter``: validate every
    ``val_freq``, and write checkpoints — latest (every epoch; in step mode at each validation
    and numbered checkpoint), numbered every ``save_checkpoint_freq``, best on a new lowest
    validation rd_loss — and always at the end of training."""
    last = run.finished()
    validate_now = counter % run.schedule.val_freq == 0 or last
    numbered = counter % run.opt.logger.save_checkpoint_freq == 0
    improved = False
    if validate_now:
        metrics = validate_on_main(run, counter)
        step_plateau(metrics["rd_loss"], run.optim.scheduler, run.optim.aux_scheduler)
        improved = metrics["rd_loss"] < run.state.best_loss
        if improved:
            run.state.best_loss = metrics["rd_loss"]
    if run.mode == "epoch" or validate_now or numbered:
        save_checkpoints(run, counter, numbered, improved)


def validate_on_main(run: Run, counter: int) -> Dict[str, float]:
    """Rank 0 validates (:func:`~.validation.validate`) and logs; every rank gets the averages."""
    if not run.info.is_main:
        return dist.broadcast_object(None)
    metrics, count = validate(run.model, run.criterion, run.data.val, run.device, amp_dtype=run.stepper.amp_dtype,
                              out_dir=Path(run.opt.path.val_samples) / str(counter),
                              num_images=run.opt.logger.num_val_images, tb=run.tb, counter=counter)
    log_validation(metrics, count, f"{run.mode} {counter}", counter, run.logger, run.tb)
    return dist.broadcast_object(metrics)


def save_checkpoints(run: Run, counter: int, numbered: bool, best: bool) -> None:
    """Write ``latest.pth`` (and copies ``<counter>.pth`` / ``best.pth`` when asked) on rank 0;
    every rank contributes its generator states, then all wait for the files."""
    flush_capped(run)
    rng = dist.gather_objects(capture_rng())
    if run.info.is_main:
        copies = ([f"{counter}.pth"] if numbered else []) + (["best.pth"] if best else [])
        write_checkpoints(Path(run.opt.path.checkpoints), copies, run.model, run.state, run.optim, rng,
                          run.info.world_size)
        run.logger.info(f"checkpoint: {', '.join(['latest.pth'] + copies)} at {run.mode} {counter}")
    run.saved_step = run.state.step
    dist.barrier()


# ============================================================================================
# Stopping on a signal
class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal after writing ``checkpoint``; :attr:`exit_code` is 128 + the
    signal's number (130 for SIGINT, 143 for SIGTERM). A KeyboardInterrupt, so that code which
    lets Ctrl-C through lets this through too."""

    def __init__(self, signum: int, checkpoint: Path):
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """While active (main thread only), SIGINT and SIGTERM record their number in
    :attr:`received` instead of stopping the process: the loop stops at the next step boundary
    and saves first. A second SIGINT raises KeyboardInterrupt at once (no checkpoint)."""

    def __init__(self, announce: bool):
        self.announce, self.received = announce, 0
        self._previous: Dict[int, Any] = {}
        self._pid = os.getpid()

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a data-loader worker forked with this handler: the loop stops it
            return
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.received and self.announce:  # os.write: a signal handler must not take the logging locks
            os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                        "(Ctrl-C again: quit without saving)\n".encode())
        self.received = self.received or signum


def save_on_stop(run: Run, signum: int) -> Path:
    """Write ``latest.pth`` at the current step (unless it was written there already) and log
    where it is and how to resume; its path."""
    if run.saved_step != run.state.step:
        save_checkpoints(run, run.state.step if run.mode == "step" else run.state.epoch, numbered=False, best=False)
    path = Path(run.opt.path.checkpoints) / "latest.pth"
    path_opt = run.opt.path
    again = ("run the same command to resume" if path_opt.resume == "auto" and not path_opt.checkpoint
             else f"resume with --set path.resume={path}" + (" path.checkpoint=null" if path_opt.checkpoint else ""))
    if run.info.is_main:
        run.logger.warning(f"{signal.Signals(signum).name}: stopped at step {run.state.step} of {run.total_steps}; "
                           f"checkpoint {path}; {again}")
    return path
