"""Train a registered model from an option file: ``python train.py -opt conf/train/x.yml``,
``dic-train -opt ...`` or ``dic train -opt ...``; with ``torchrun`` on several GPUs or machines.

The loop (:func:`fit`) reads top to bottom: one step per batch, then in ``mode: step`` the
schedulers and possibly a validation and checkpoint; at each epoch's end in ``mode: epoch``.

Exact resume. A run stopped after any step and resumed reaches the same weights as one that
never stopped (same seed, same number of processes):

- every training item's randomness (crop position, noise parameters, noise) comes from a seed
  that depends only on (manual_seed, epoch, position in the epoch): :class:`SeededItems` seeds
  the global generators around each ``dataset[i]``, so neither the worker count nor a resume
  changes what an item looks like;
- the order of items is ``DistributedSampler``'s, a function of (manual_seed, epoch);
- a checkpoint records the batches of the current epoch already done, and a resumed run skips
  them by index (nothing is loaded) instead of replaying them;
- the checkpoint holds the weights, both optimizers, both schedulers, the GradScaler, the
  counters, the best loss and every rank's Python / NumPy / torch / CUDA generator states.

Distributed (``torchrun``): one process per GPU (nccl) or per CPU slot (gloo); the batch is
split across ranks; only rank 0 validates, logs and writes files; a step whose loss is bad on
any rank is skipped on all of them.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ...errors import CheckpointError, DataError, OptionError
from ...fileio import atomic_copy
from ...logger import setup_logger
from ...losses import RateDistortionLoss
from ...metrics import ms_ssim, psnr, quantize_8bit
from ...config.build import build_criterion, build_dataset, build_model
from ...models import apply_context_masks
from ...config import Options, check_data_roots, load_options, model_kwargs, save_options
from . import distributed as dist
from .distributed import DistInfo
from .schedule import create_schedulers, current_lr, step_plateau, step_time
from .state import (TrainState, capture_rng, check_same_model, is_training_checkpoint, restore_rng,
                    save_training_checkpoint)

#: Submodules kept in float32 under autocast: the entropy parameters and the likelihoods.
FP32_MODULES = ("entropy_bottleneck", "gaussian_conditional", "context_prediction", "entropy_parameters")


# ============================================================================================
# Command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dic train`` / ``dic-train`` / ``train.py``."""
    parser.add_argument("-opt", "--opt", required=True, metavar="PATH", help="training option file (YAML)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override option keys, e.g. --set train.step.value=100 datasets.train.batch_size=4")


def run(args: argparse.Namespace) -> int:
    """Load the options and train."""
    fit(load_options(args.opt, args.set, is_train=True))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``train.py`` and ``dic-train``; a user error prints one line and exits 2."""
    from ..runtime import guarded

    parser = argparse.ArgumentParser(prog="dic-train", description="Train a model from an option file.")
    add_arguments(parser)
    return guarded(run, parser.parse_args(argv))


# ============================================================================================
# The run: everything the loop touches
@dataclass
class Run:
    opt: Options
    info: DistInfo
    device: torch.device
    logger: logging.Logger
    model: nn.Module  # the bare model (what checkpoints hold)
    net: nn.Module  # what the training step calls: the model, or its DDP wrapper
    criterion: RateDistortionLoss
    optimizer: torch.optim.Optimizer
    aux_optimizer: torch.optim.Optimizer
    scheduler: Any
    aux_scheduler: Any
    scaler: Optional[torch.amp.GradScaler]
    amp_dtype: Optional[torch.dtype]
    train_loader: DataLoader  # over SeededItems(train set), drawing from item_sampler
    item_sampler: "ItemSeeds"
    batch_per_rank: int
    steps_per_epoch: int
    val_loader: DataLoader
    state: TrainState
    tb: Any = None
    window: Dict[str, torch.Tensor] = field(default_factory=dict)  # loss sums since the last log line
    window_steps: int = 0

    @property
    def mode(self) -> str:
        return self.opt.train.mode

    @property
    def schedule(self) -> Mapping[str, Any]:
        return self.opt.train[self.mode]

    @property
    def total_steps(self) -> int:
        value = self.schedule["value"]
        return value if self.mode == "step" else value * self.steps_per_epoch

    def finished(self) -> bool:
        value = self.schedule["value"]
        return (self.state.step if self.mode == "step" else self.state.epoch) >= value


# ============================================================================================
# The loop
def fit(opt: Options) -> nn.Module:
    """Train as ``opt`` says (resuming if it asks to); returns the trained, unwrapped model."""
    run = setup(opt)
    state = run.state
    bar = tqdm(total=run.total_steps, initial=min(state.step, run.total_steps), disable=not run.info.is_main,
               desc=opt.name, unit="step", dynamic_ncols=True, mininterval=1.0)
    try:
        with logging_redirect_tqdm(loggers=[run.logger]):
            while not run.finished():
                for gt, noisy in epoch_batches(run):  # the rest of the current epoch
                    terms = train_step(run, gt, noisy)
                    state.step += 1
                    state.batch_in_epoch += 1
                    bar.update(1)
                    if terms is not None and run.info.is_main:
                        bar.set_postfix(loss=f"{float(terms['loss']):.4f}", refresh=False)
                    log_step(run, terms)
                    if run.mode == "step":
                        step_time(run.scheduler, run.aux_scheduler)
                        end_of_period(run, state.step)
                    if run.finished():
                        break
                if state.batch_in_epoch >= run.steps_per_epoch:  # the epoch ran to its end
                    state.epoch += 1
                    state.batch_in_epoch = 0
                    if run.mode == "epoch":
                        step_time(run.scheduler, run.aux_scheduler)
                        end_of_period(run, state.epoch)
            run.logger.info(f"training done: step {state.step}, epoch {state.epoch}, {state.skipped_steps} "
                            f"step(s) skipped, best validation rd_loss {state.best_loss:.4f}; checkpoints in "
                            f"{opt.path.checkpoints}")
    finally:
        bar.close()
        teardown(run)
    return run.model


def train_step(run: Run, gt: torch.Tensor, noisy: torch.Tensor) -> Optional[Dict[str, torch.Tensor]]:
    """One optimisation step of both optimizers; returns the detached loss terms, or None when
    the loss was NaN, infinite or above ``loss_cap`` on any rank and nothing was updated.

    The main and auxiliary losses are back-propagated together: their gradients reach disjoint
    parameters (the aux loss only touches the entropy bottleneck's quantiles, the main loss never
    does), so this equals CompressAI's two backward passes while letting DDP reduce every
    gradient in one pass without ``find_unused_parameters``."""
    gt = gt.to(run.device, non_blocking=True)
    noisy = noisy.to(run.device, non_blocking=True)
    run.optimizer.zero_grad(set_to_none=True)
    run.aux_optimizer.zero_grad(set_to_none=True)
    with autocast(run):
        out = run.net(noisy, gt if run.criterion.uses_guidance else None)
    terms = run.criterion(out, gt)
    terms["aux_loss"] = run.model.aux_loss()
    loss = float(terms["loss"].detach())
    if dist.any_rank(not math.isfinite(loss) or loss > run.opt.train.loss_cap, run.device):
        skip_step(run, loss)
        return None
    total = terms["loss"] + terms["aux_loss"]
    if run.scaler is not None:
        run.scaler.scale(total).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        total.backward()
    if run.opt.train.clip_max_norm > 0:
        nn.utils.clip_grad_norm_(main_parameters(run.optimizer), run.opt.train.clip_max_norm)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.step(run.aux_optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
        run.aux_optimizer.step()
    # keep the stored weights canonical, so replicas and checkpoints agree whether or not a
    # forward pass (a validation on rank 0) has masked them since the last step
    apply_context_masks(run.model)
    return {k: v.detach() for k, v in terms.items()}


def skip_step(run: Run, loss: float) -> None:
    """Count and log a step whose loss was bad here or on another rank."""
    run.state.skipped_steps += 1
    if not run.info.is_main:
        return
    cap = run.opt.train.loss_cap
    here = f"loss {loss:.4g}" if (not math.isfinite(loss) or loss > cap) else "a bad loss on another rank"
    run.logger.warning(f"step {run.state.step + 1}: {here} (loss_cap {cap:g}): nothing updated; "
                       f"{run.state.skipped_steps} step(s) skipped so far")
    if run.tb is not None:
        run.tb.add_scalar("train/skipped_steps", run.state.skipped_steps, run.state.step + 1)


def log_step(run: Run, terms: Optional[Dict[str, torch.Tensor]]) -> None:
    """Accumulate the loss terms; every ``print_freq`` steps log their means and learning rates
    (console, train.log, TensorBoard). Values reach the host only then."""
    if terms is not None:
        for k, v in terms.items():
            run.window[k] = run.window.get(k, 0.0) + v.float()
        run.window_steps += 1
    step = run.state.step
    if step % run.opt.logger.print_freq != 0 and step != run.total_steps:
        return
    if run.window_steps == 0 or not run.info.is_main:
        run.window, run.window_steps = {}, 0
        return
    means = {k: float(v) / run.window_steps for k, v in run.window.items()}
    run.window, run.window_steps = {}, 0
    lrs = {"main": current_lr(run.optimizer), "aux": current_lr(run.aux_optimizer)}
    run.logger.info(f"<epoch {run.state.epoch + 1}, step {step}, lr {lrs['main']:.3e}> " + format_terms(means))
    if run.tb is not None:
        for k, v in means.items():
            run.tb.add_scalar(f"train/{k}", v, step)
        for k, v in lrs.items():
            run.tb.add_scalar(f"lr/{k}", v, step)


def end_of_period(run: Run, counter: int) -> None:
    """After an epoch (mode: epoch) or a step (mode: step) numbered ``counter``: validate every
    ``val_freq``, and write checkpoints — latest (every epoch; in step mode at each validation
    and numbered checkpoint), numbered every ``save_checkpoint_freq``, best on a new lowest
    validation rd_loss — and always at the end of training."""
    last = run.finished()
    validate_now = counter % run.schedule["val_freq"] == 0 or last
    numbered = counter % run.opt.logger.save_checkpoint_freq == 0
    improved = False
    if validate_now:
        metrics = validate(run, counter)
        step_plateau(metrics["rd_loss"], run.scheduler, run.aux_scheduler)
        improved = metrics["rd_loss"] < run.state.best_loss
        if improved:
            run.state.best_loss = metrics["rd_loss"]
    if run.mode == "epoch" or validate_now or numbered:
        save_checkpoints(run, counter, numbered, improved)


# ============================================================================================
# Set-up
def setup(opt: Options) -> Run:
    """Processes, device, folders, logging, data, model, optimizers, schedulers; resume."""
    info = dist.env_info()
    logger = setup_logger(None, info.rank)
    device = select_device(opt.gpu_ids, info, logger)
    info = dist.init_distributed(device)
    try:
        check_data_roots(opt)
        seed = dist.broadcast_object(opt.manual_seed if opt.manual_seed is not None else random.randint(1, 10**6))
        resume = dist.broadcast_object(resume_path(opt) if info.is_main else None)
        if info.is_main:
            prepare_folders(opt, resume, logger)
        dist.barrier()
        logger = setup_logger(os.path.join(opt.path.experiments_root, "train.log"), info.rank)
        if info.is_main:
            save_options(opt, os.path.join(opt.path.experiments_root, "options.yml"))
            logger.info("options:\n" + yaml.safe_dump(opt.to_dict(), sort_keys=False).rstrip())
        dist.seed_everything(seed, info.rank)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        return build_run(opt, info, device, logger, seed, resume)
    except BaseException:
        dist.cleanup()
        raise


def build_run(opt: Options, info: DistInfo, device: torch.device, logger: logging.Logger, seed: int,
              resume: Optional[str]) -> Run:
    """Data, model, criterion, optimizers and schedulers; then the resumed state, DDP, TensorBoard."""
    train_loader, item_sampler, batch_per_rank, steps_per_epoch, val_loader = build_data(opt, info, device, seed)
    network = opt.network
    model = build_model(opt.network, opt.path.option_file, warm_start=resume is None and info.is_main).to(device)
    criterion = build_criterion(network, opt.path.option_file)
    optimizer, aux_optimizer = build_optimizers(model, opt.train[opt.train.mode])
    scheduler, aux_scheduler = create_schedulers(opt.train[opt.train.mode], optimizer, aux_optimizer)
    amp_dtype = select_amp(opt.train.amp, device, logger)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    run = Run(opt, info, device, logger, model, model, criterion, optimizer, aux_optimizer, scheduler,
              aux_scheduler, scaler, amp_dtype, train_loader, item_sampler, batch_per_rank, steps_per_epoch,
              val_loader, TrainState(seed=seed))
    if resume is not None:
        restore(run, resume)
    apply_context_masks(model)
    if amp_dtype is not None:
        keep_fp32(model, device.type)
    if info.distributed:
        run.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          broadcast_buffers=False)
    if info.is_main and opt.use_tb_logger:
        from torch.utils.tensorboard import SummaryWriter

        run.tb = SummaryWriter(log_dir=opt.path.tb_logger)
    logger.info(f"model {model.name} ({', '.join(f'{k}={v}' for k, v in model.hparams.items())}): "
                f"{sum(p.numel() for p in model.parameters()):,d} parameters; λ={criterion.lmbda:g} "
                f"({criterion.metric}); device {device}, {info.world_size} process(es), {batch_per_rank} "
                f"image(s) per process and step; {len(train_loader.dataset)} training items, {steps_per_epoch} "
                f"steps per epoch, {run.total_steps} steps in all; seed {seed}")
    return run


def select_device(gpu_ids: Optional[List[int]], info: DistInfo, logger: logging.Logger) -> torch.device:
    """CPU without ``gpu_ids`` or without CUDA (with a warning); else the process's GPU:
    ``gpu_ids[0]`` alone, ``gpu_ids[LOCAL_RANK]`` under torchrun (GPU LOCAL_RANK when the list
    is shorter than the processes on this machine)."""
    if not gpu_ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        logger.warning(f"gpu_ids {gpu_ids}: CUDA is not available; training on the CPU")
        return torch.device("cpu")
    if info.distributed:
        index = gpu_ids[info.local_rank] if info.local_rank < len(gpu_ids) else info.local_rank
    else:
        index = gpu_ids[0]
        if len(gpu_ids) > 1:
            logger.warning(f"gpu_ids {gpu_ids}: one process trains on one GPU (cuda:{index}); for several "
                           f"GPUs launch with torchrun --nproc_per_node={len(gpu_ids)}")
    if index >= torch.cuda.device_count():
        raise OptionError(f"gpu_ids: GPU {index} requested but only {torch.cuda.device_count()} visible")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def select_amp(amp: str, device: torch.device, logger: logging.Logger) -> Optional[torch.dtype]:
    """The autocast dtype for ``train.amp`` (None: full float32). Mixed precision is CUDA-only."""
    if amp == "off":
        return None
    if device.type != "cuda":
        logger.warning(f"train.amp: {amp} needs CUDA; training in float32 on the CPU")
        return None
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise OptionError(f"train.amp: bf16 is not supported by {torch.cuda.get_device_name(device)}; use fp16 or off")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def keep_fp32(model: nn.Module, device_type: str) -> None:
    """Run the entropy-model submodules outside autocast with float32 inputs, so the entropy
    parameters and likelihoods never lose precision; the transforms stay in mixed precision."""
    for name in FP32_MODULES:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            module.forward = _fp32_forward(module.forward, device_type)


def _fp32_forward(forward, device_type: str):
    def to32(v):
        return v.float() if torch.is_tensor(v) and v.is_floating_point() else v

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return forward(*map(to32, args), **{k: to32(v) for k, v in kwargs.items()})

    return wrapped


def autocast(run: Run):
    """Mixed-precision context of the forward pass (a no-op unless ``train.amp`` is on, on CUDA)."""
    if run.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(run.device.type, dtype=run.amp_dtype)


def resume_path(opt: Options) -> Optional[str]:
    """The checkpoint to resume from: ``path.checkpoint`` (the official key) or an explicit
    ``path.resume``; with ``resume: auto`` this run's ``checkpoints/latest.pth`` if it exists."""
    resume, checkpoint = opt.path.resume, opt.path.checkpoint
    if isinstance(checkpoint, list):
        raise OptionError(f"path.checkpoint: training resumes from one checkpoint, got a list of {len(checkpoint)}")
    if checkpoint:
        if resume not in ("auto", "none") and os.path.abspath(resume) != os.path.abspath(checkpoint):
            raise OptionError(f"path.checkpoint ({checkpoint}) and path.resume ({resume}) name different "
                              "checkpoints; set only one")
        return checkpoint
    if resume == "none":
        return None
    if resume == "auto":
        latest = os.path.join(opt.path.checkpoints, "latest.pth")
        return latest if os.path.isfile(latest) else None
    return resume


def prepare_folders(opt: Options, resume: Optional[str], logger: logging.Logger) -> None:
    """Create this run's folders. A new run whose folders exist first renames them
    ``<name>_archived_<YYYYmmdd-HHMMSS>``: an old run is never overwritten."""
    if resume is not None and not os.path.isfile(resume):
        raise CheckpointError(f"checkpoint to resume from {resume} does not exist (path.resume / path.checkpoint)")
    if resume is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for folder in (opt.path.experiments_root, opt.path.tb_logger):
            if os.path.exists(folder):
                archived = f"{folder}_archived_{stamp}"
                n = 1
                while os.path.exists(archived):
                    archived, n = f"{folder}_archived_{stamp}_{n}", n + 1
                os.rename(folder, archived)
                logger.info(f"{folder} exists: renamed to {archived}")
    for folder in (opt.path.experiments_root, opt.path.checkpoints, opt.path.val_samples):
        os.makedirs(folder, exist_ok=True)


def build_optimizers(model: nn.Module, schedule: Mapping[str, Any]) -> Tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam on every parameter but the entropy bottleneck's quantiles (``lr``), and Adam on the
    quantiles (``lr_aux``), CompressAI's way."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
    if not aux:
        raise OptionError(f"network.model: '{model.name}' has no entropy-bottleneck quantiles to train")
    return torch.optim.Adam(main, lr=schedule["lr"]), torch.optim.Adam(aux, lr=schedule["lr_aux"])


def main_parameters(optimizer: torch.optim.Optimizer) -> List[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


# ============================================================================================
# Data
class SeededItems(Dataset):
    """Wraps a data set so that item ``(index, seed)`` is drawn with Python, NumPy and torch's
    global generators seeded by ``seed`` (their previous states are put back afterwards): an
    item's random crop and noise depend on its seed alone, not on workers or on resuming."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        index, seed = key
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class ItemSeeds(Sampler):
    """This rank's indices for one epoch, from a ``DistributedSampler``, each paired with its item
    seed, minus the first ``skip`` ones (consumed before a resume). :meth:`set_position` picks the
    epoch before each pass, so one loader (with persistent workers) serves the whole run."""

    def __init__(self, base: DistributedSampler, seed: int):
        self.base, self.seed, self.epoch, self.skip = base, seed, 0, 0

    def reseed(self, seed: int) -> None:
        """Use ``seed`` for the order and the items (a resumed run keeps its checkpoint's seed)."""
        self.seed = self.base.seed = seed

    def set_position(self, epoch: int, skip: int = 0) -> None:
        self.base.set_epoch(epoch)
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        world, rank = self.base.num_replicas, self.base.rank
        for position, index in enumerate(self.base):
            if position >= self.skip:
                yield int(index), item_seed(self.seed, self.epoch, position * world + rank)


def item_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the item at global ``position`` of ``epoch``."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def build_data(opt: Options, info: DistInfo, device: torch.device, seed: int):
    """Training loader and its sampler, the per-rank batch, steps per epoch, validation loader."""
    train_opt, val_opt = opt.datasets.train, opt.datasets.val
    train_set = build_dataset(train_opt, "train", opt.path.option_file)
    if not getattr(train_set, "has_gt", True):
        raise DataError(f"datasets.train: '{train_opt.name}' at {train_opt.root} has no ground truth to train on")
    batch_per_rank = per_rank_batch(train_opt.batch_size, info.world_size)
    base = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                              shuffle=train_opt.use_shuffle, seed=seed, drop_last=False)
    steps_per_epoch = len(base) // batch_per_rank
    if steps_per_epoch == 0:
        raise DataError(f"datasets.train: {len(train_set)} training item(s) give no full batch of "
                        f"{batch_per_rank} per process; lower datasets.train.batch_size or add images")
    item_sampler = ItemSeeds(base, seed)
    generator = torch.Generator()  # worker seeds come from here, never from the global generator
    generator.manual_seed(item_seed(seed, -1, info.rank))
    train_loader = DataLoader(SeededItems(train_set), batch_size=batch_per_rank, sampler=item_sampler,
                              num_workers=train_opt.n_workers, persistent_workers=train_opt.n_workers > 0,
                              pin_memory=device.type == "cuda", drop_last=True, generator=generator)
    val_set = build_dataset(val_opt, "val", opt.path.option_file)
    if not getattr(val_set, "has_gt", True):
        raise DataError(f"datasets.val: '{val_opt.name}' at {val_opt.root} has no ground truth to validate against")
    val_loader = DataLoader(val_set, batch_size=val_opt.batch_size, shuffle=False, num_workers=val_opt.n_workers,
                            pin_memory=device.type == "cuda")
    return train_loader, item_sampler, batch_per_rank, steps_per_epoch, val_loader


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """``datasets.train.batch_size`` is the global batch: each of the processes takes its share."""
    if batch_size < 1 or batch_size % world_size:
        raise OptionError(f"datasets.train.batch_size: {batch_size} does not split over {world_size} processes; "
                          f"expected a positive multiple of {world_size}")
    return batch_size // world_size


def epoch_batches(run: Run) -> DataLoader:
    """The training loader, set to what is left of the current epoch on this rank."""
    done = min(run.state.batch_in_epoch, run.steps_per_epoch)
    run.item_sampler.set_position(run.state.epoch, skip=done * run.batch_per_rank)
    return run.train_loader


# ============================================================================================
# Validation
@torch.no_grad()
def validate(run: Run, counter: int) -> Dict[str, float]:
    """Rank 0: every loss term, bpp (estimated from the likelihoods), PSNR on 8-bit images and
    MS-SSIM averaged over the validation set; the first ``num_val_images`` saved as noisy /
    decoded / clean PNGs and shown in TensorBoard. Every rank gets the averages back."""
    if not run.info.is_main:
        return dist.broadcast_object(None)
    from ...data.io import write_image

    model, sums, count = run.model, {}, 0
    out_dir = Path(run.opt.path.val_samples) / str(counter)
    model.eval()
    for gt, noisy in run.val_loader:
        gt, noisy = gt.to(run.device), noisy.to(run.device)
        with autocast(run):
            out = model(noisy, gt if run.criterion.uses_guidance else None)
        terms = {k: float(v) for k, v in run.criterion(out, gt).items()}
        terms["aux_loss"] = float(model.aux_loss())
        x_hat = quantize_8bit(out["x_hat"].float())
        for j in range(gt.shape[0]):
            image = {"psnr": psnr(x_hat[j], gt[j]), "ms_ssim": ms_ssim(x_hat[j:j + 1], gt[j:j + 1]), **terms}
            for k, v in image.items():
                sums[k] = sums.get(k, 0.0) + v
            if count < run.opt.logger.num_val_images:
                name = run.val_loader.dataset.image_name(count)
                trio = {"noisy": noisy[j], "decoded": x_hat[j], "clean": gt[j]}
                for kind, image_tensor in trio.items():
                    write_image(out_dir / f"{name}_{kind}.png", image_tensor.float().cpu())
                if run.tb is not None:
                    run.tb.add_image(f"val_samples/{name}",  # noisy | decoded | clean, side by side
                                     torch.cat(list(trio.values()), dim=-1).float().clamp(0, 1).cpu(), counter)
            count += 1
    model.train()
    metrics = {k: v / count for k, v in sums.items()}
    metrics["bpp"] = metrics["bpp_loss"]
    unit = "epoch" if run.mode == "epoch" else "step"
    run.logger.info(f"validation <{unit} {counter}> {count} image(s): psnr {metrics['psnr']:.3f} dB | ms-ssim "
                    f"{metrics['ms_ssim']:.4f} | " + format_terms(metrics))
    if run.tb is not None:
        for k, v in metrics.items():
            run.tb.add_scalar(f"val/{k}", v, counter)
    return dist.broadcast_object(metrics)


def format_terms(terms: Mapping[str, float]) -> str:
    """``loss 1.2345 | rd 1.1 | bpp 0.45 | mse 0.0012 (×λ 0.52) | fea 0.03 (×λ 0.09) | aux 12.3``."""
    parts = [f"loss {terms['loss']:.4f}", f"rd {terms['rd_loss']:.4f}", f"bpp {terms['bpp_loss']:.4f}"]
    for key, value in terms.items():
        if key.endswith("_loss") and f"weighted_{key}" in terms:
            parts.append(f"{key[:-5]} {value:.5g} (×λ {terms['weighted_' + key]:.4f})")
    if "aux_loss" in terms:
        parts.append(f"aux {terms['aux_loss']:.4g}")
    return " | ".join(parts)


# ============================================================================================
# Checkpoints
def save_checkpoints(run: Run, counter: int, numbered: bool, best: bool) -> None:
    """Write ``latest.pth`` (and copies ``<counter>.pth`` / ``best.pth`` when asked) on rank 0;
    every rank contributes its generator states, then all wait for the files."""
    rng = dist.gather_objects(capture_rng())
    if run.info.is_main:
        folder = Path(run.opt.path.checkpoints)
        latest = folder / "latest.pth"
        save_training_checkpoint(str(latest), run.model, run.state, run.optimizer, run.aux_optimizer,
                                 run.scheduler, run.aux_scheduler, run.scaler, rng, run.info.world_size)
        copies = ([f"{counter}.pth"] if numbered else []) + (["best.pth"] if best else [])
        for name in copies:
            atomic_copy(latest, folder / name)
        run.logger.info(f"checkpoint: {', '.join(['latest.pth'] + copies)} at {run.mode} {counter}")
    dist.barrier()


def restore(run: Run, path: str) -> None:
    """Continue from ``path``: a training checkpoint restores everything; a weights-only file
    (ours, or an official one converted on the fly) only the weights, counters starting at 0."""
    from ...checkpoints import is_dic_checkpoint, load_model, load_state_dict_checked, read_checkpoint_file

    obj = read_checkpoint_file(path, map_location="cpu")
    if not (is_dic_checkpoint(obj) and is_training_checkpoint(obj)):
        weights = obj["state_dict"] if is_dic_checkpoint(obj) else load_model(path, arch=run.model.name).state_dict()
        load_state_dict_checked(run.model, weights, f"checkpoint {path}")
        run.logger.warning(f"{path} holds weights but no training state: weights loaded, optimizers, "
                           "schedulers and counters start afresh")
        return
    check_same_model(obj, run.model, path)
    load_state_dict_checked(run.model, obj["state_dict"], f"checkpoint {path}")
    run.optimizer.load_state_dict(obj["optimizer"])
    run.aux_optimizer.load_state_dict(obj["aux_optimizer"])
    run.scheduler.load_state_dict(obj["lr_scheduler"])
    run.aux_scheduler.load_state_dict(obj["aux_lr_scheduler"])
    if run.scaler is not None and obj.get("scaler"):
        run.scaler.load_state_dict(obj["scaler"])
    run.state = TrainState.from_checkpoint(obj)
    if run.state.seed != run.item_sampler.seed:
        if run.opt.manual_seed is not None:
            run.logger.warning(f"manual_seed {run.opt.manual_seed}: the run continues with its checkpoint's seed "
                               f"{run.state.seed}")
        run.item_sampler.reseed(run.state.seed)
    rng = obj["rng"]
    if int(obj.get("world_size", len(rng))) == run.info.world_size and len(rng) == run.info.world_size:
        restore_rng(rng[run.info.rank])
    else:
        run.logger.warning(f"{path} was written by {len(rng)} process(es), this run has {run.info.world_size}: "
                           "generators reseeded, so the continuation is not bit-identical")
        dist.seed_everything(run.state.seed + run.state.step, run.info.rank)
    run.logger.info(f"resumed from {path}: epoch {run.state.epoch}, step {run.state.step} "
                    f"({run.state.batch_in_epoch} batch(es) into the epoch), best rd_loss {run.state.best_loss:.4f}")


def teardown(run: Run) -> None:
    """Close TensorBoard and leave the process group."""
    if run.tb is not None:
        run.tb.close()
    dist.cleanup()
