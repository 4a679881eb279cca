"""Everything the training loop touches (:class:`Run`) and how it is built from the options:
processes and device, folders and logs, data, model, optimisation, the resumed state, DDP and
TensorBoard (docs/options.md lists the keys read here)."""
from __future__ import annotations

import functools
import logging
import logging.handlers
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ...config import Options, check_data_roots, save_options
from ...config.build import build_criterion, build_dataset, build_model
from ...data.samplers import ItemSeeds, SeededItems, item_seed, per_rank_batch
from ...errors import ArgumentError, CheckpointError, DataError, OptionError
from ...logger import setup_logger
from ...losses import RateDistortionLoss
from ...models import apply_context_masks
from ..runtime import device_from_gpu_ids
from . import distributed as dist
from .checkpointing import restore
from .distributed import DistInfo
from .schedule import create_schedulers
from .state import Optimisation, TrainState
from .step import TrainStep, build_optimizers, select_amp


@dataclass
class Loaders:
    """The training loader (over ``SeededItems(train set)``, drawing from ``sampler``) and the
    validation loader."""

    train: DataLoader
    sampler: ItemSeeds
    batch_per_rank: int
    steps_per_epoch: int
    val: DataLoader


@dataclass
class Run:
    """One training run: its options, process, model, optimisation, data and counters."""

    opt: Options
    info: DistInfo
    device: torch.device
    logger: logging.Logger
    model: nn.Module  # the bare model (what checkpoints hold; the step calls its DDP wrapper)
    criterion: RateDistortionLoss
    optim: Optimisation
    data: Loaders
    stepper: TrainStep
    state: TrainState
    tb: Any = None  # TensorBoard writer on rank 0, or None
    window: Dict[str, torch.Tensor] = field(default_factory=dict)  # loss sums since the last log line
    window_steps: Any = 0  # uncapped steps in them (a device tensor under train.sync_free_cap)
    pending_capped: Any = None  # sync_free_cap: capped steps not yet counted (a device tensor)
    saved_step: int = -1  # the step latest.pth was last written at

    @property
    def mode(self) -> str:
        return self.opt.train.mode

    @property
    def schedule(self) -> Options:
        """The ``train.<mode>`` section."""
        return getattr(self.opt.train, self.mode)

    @property
    def total_steps(self) -> int:
        value = self.schedule.value
        return value if self.mode == "step" else value * self.data.steps_per_epoch

    def finished(self) -> bool:
        return (self.state.step if self.mode == "step" else self.state.epoch) >= self.schedule.value


def setup(opt: Options) -> Run:
    """Processes, device, data, model, optimisation and the resumed state, then (rank 0) the
    run's folders, its log and TensorBoard. Everything that can refuse the options is built
    before anything is written: a refused run creates no folder and archives no old one."""
    info = dist.env_info()
    logger = setup_logger(None, info.rank)
    device = device_from_gpu_ids(opt.gpu_ids, info.local_rank if info.distributed else None)
    info = dist.init_distributed(device)
    early = hold_records(logger)
    try:
        check_data_roots(opt)
        seed = dist.broadcast_object(opt.manual_seed if opt.manual_seed is not None else random.randint(1, 10**6))
        resume = dist.broadcast_object(resume_path(opt) if info.is_main else None)
        check_resume(resume)
        dist.seed_everything(seed, info.rank)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        run = build_run(opt, info, device, logger, seed, resume)
        if info.is_main:
            prepare_folders(opt, resume, logger)
        dist.barrier()
        run.logger = open_log(opt, info, release(logger, early))
        if info.is_main and opt.use_tb_logger:
            run.tb = open_tensorboard(opt.path.tb_logger)
        log_summary(run)
        return run
    except BaseException:
        release(logger, early)
        dist.cleanup()
        raise


def hold_records(logger: logging.Logger) -> logging.handlers.MemoryHandler:
    """Keep the records logged before the run's log file exists (warnings, the resume line), so
    that :func:`open_log` writes them there too; the console shows them at once."""
    early = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1, target=None)
    logger.addHandler(early)
    return early


def release(logger: logging.Logger, early: logging.handlers.MemoryHandler) -> List[logging.LogRecord]:
    """Detach :func:`hold_records`' handler; the records it held."""
    logger.removeHandler(early)
    records, early.buffer = list(early.buffer), []
    early.close()
    return records


def open_log(opt: Options, info: DistInfo, early: List[logging.LogRecord]) -> logging.Logger:
    """The logger writing to the console and (rank 0) ``experiments/<name>/train.log``; the
    file starts with every option (not shown on the console), then the records held since
    start-up. Rank 0 also saves the options as ``options.yml``."""
    logger = setup_logger(os.path.join(opt.path.experiments_root, "train.log"), info.rank)
    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    if info.is_main:
        save_options(opt, os.path.join(opt.path.experiments_root, "options.yml"))
        dump = "options:\n" + yaml.safe_dump(opt.to_dict(), sort_keys=False).rstrip()
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, dump, None, None)
        for handler in files:
            handler.handle(record)
    for record in early:
        for handler in files:
            handler.handle(record)
    return logger


def log_summary(run: Run) -> None:
    """A few lines on the console (and in train.log): model, data, steps, where outputs go."""
    opt, model, data, info = run.opt, run.model, run.data, run.info
    train = opt.datasets.train
    hparams = ", ".join(f"{k}={v}" for k, v in model.hparams.items())
    every = "step(s)" if run.mode == "step" else "epoch(s)"
    outputs = f"{opt.path.experiments_root} (train.log lists every option; checkpoints/)"
    if run.tb is not None:
        outputs += f", TensorBoard {opt.path.tb_logger}"
    run.logger.info(
        f"run {opt.name}: model {model.name} ({hparams}), {sum(p.numel() for p in model.parameters()):,d} "
        f"parameters, λ={run.criterion.lmbda:g} ({run.criterion.metric}); seed {run.state.seed}\n"
        f"  data: {len(data.train.dataset)} training items ({train.name}, {train.root}, {train.patch_size}-pixel "
        f"crops), {len(data.val.dataset)} validation image(s); device {run.device}, {info.world_size} process(es), "
        f"{data.batch_per_rank} image(s) per process and step\n"
        f"  steps: {run.total_steps} in all ({data.steps_per_epoch} per epoch), from step {run.state.step}; "
        f"validation every {run.schedule.val_freq} {every}\n"
        f"  outputs: {outputs}")


def check_resume(resume: Optional[str]) -> None:
    """The checkpoint to resume from must exist (checked by every rank: each one reads it)."""
    if resume is not None and not os.path.isfile(resume):
        raise CheckpointError(f"checkpoint to resume from {resume} does not exist (path.resume / path.checkpoint)")


def build_run(opt: Options, info: DistInfo, device: torch.device, logger: logging.Logger, seed: int,
              resume: Optional[str]) -> Run:
    """Data, model, criterion, optimizers and schedulers; then the resumed state and DDP. Writes
    nothing (TensorBoard is opened once the folders exist)."""
    data = build_data(opt, info, device, seed)
    model = build_model(opt.network, opt.path.option_file, warm_start=resume is None and info.is_main).to(device)
    criterion = build_criterion(opt.network, opt.path.option_file)
    amp_dtype = select_amp(opt.train.amp, device, logger)
    channels_last = select_channels_last(opt.train.channels_last, device, logger)
    optim = build_optimisation(opt, model, fp16=amp_dtype == torch.float16)
    state = TrainState(seed=seed)
    if resume is not None:
        state = restore(resume, model, optim, info, logger) or state
        if state.seed != data.sampler.seed:
            if opt.manual_seed is not None:
                logger.warning(f"manual_seed {opt.manual_seed}: the run continues with its checkpoint's seed "
                               f"{state.seed}")
            data.sampler.reseed(state.seed)
    apply_context_masks(model)
    net = model
    if info.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False)
    stepper = TrainStep(model, criterion, optim.optimizer, optim.aux_optimizer, device=device, net=net,
                        clip_max_norm=opt.train.clip_max_norm, loss_cap=opt.train.loss_cap,
                        loss_cap_mode=opt.train.loss_cap_mode, amp_dtype=amp_dtype,
                        scaler=optim.scaler, any_rank=functools.partial(dist.any_rank, device=device),
                        channels_last=channels_last, sync_free_cap=opt.train.sync_free_cap,
                        compile=opt.train.compile)
    return Run(opt=opt, info=info, device=device, logger=logger, model=model, criterion=criterion, optim=optim,
               data=data, stepper=stepper, state=state)


def select_channels_last(wanted: bool, device: torch.device, logger: logging.Logger) -> bool:
    """``train.channels_last`` where it can run: on CUDA. On the CPU torch 2.14.1 crashes (heap
    corruption) in the backward pass of a 1×1 stride-2 convolution with 3 input channels in
    channels_last (CompressAI's first ResidualBlockWithStride), so it is ignored there."""
    if wanted and device.type != "cuda":
        logger.warning("train.channels_last: ignored on the CPU (torch crashes in the backward pass of a 1×1 "
                       "stride-2 convolution with 3 input channels in channels_last); training in the "
                       "contiguous format")
        return False
    return bool(wanted)


def build_optimisation(opt: Options, model: nn.Module, fp16: bool) -> Optimisation:
    """Both Adams (fused when ``train.fused_adam``), both schedulers of ``train.<mode>``, and a
    GradScaler when training in ``fp16``."""
    schedule = getattr(opt.train, opt.train.mode)
    if opt.train.sync_free_cap and opt.train.loss_cap_mode != "zero_grad":
        raise OptionError(f"needs train.loss_cap_mode: zero_grad (got {opt.train.loss_cap_mode!r}): a skipped "
                          "step cannot be undone without reading the loss on the host",
                          key="train.sync_free_cap", source=opt.path.option_file)
    try:
        optimizer, aux_optimizer = build_optimizers(model, schedule.lr, schedule.lr_aux, fused=opt.train.fused_adam)
    except ArgumentError as e:
        raise OptionError(e.detail, key="network.model", source=opt.path.option_file) from None
    scheduler, aux_scheduler = create_schedulers(
        optimizer, aux_optimizer, lr_scheme=schedule.lr_scheme, warm_up_counts=schedule.warm_up_counts,
        milestones=schedule.milestones, gamma=schedule.gamma, patience=schedule.patience)
    return Optimisation(optimizer, aux_optimizer, scheduler, aux_scheduler,
                        torch.amp.GradScaler("cuda") if fp16 else None)


def build_data(opt: Options, info: DistInfo, device: torch.device, seed: int) -> Loaders:
    """Training loader and its sampler, the per-rank batch, steps per epoch, validation loader."""
    train_opt, val_opt = opt.datasets.train, opt.datasets.val
    train_set = build_dataset(train_opt, "train", opt.path.option_file)
    if train_opt.noise_on_device and not getattr(train_set, "noise_on_device", False):
        raise OptionError(f"the '{train_opt.name}' data set does not synthesise noise (only 'synthetic' does); "
                          "remove the key", key="datasets.train.noise_on_device", source=opt.path.option_file)
    if not getattr(train_set, "has_gt", True):
        raise DataError(f"datasets.train: '{train_opt.name}' at {train_opt.root} has no ground truth to train on")
    batch_per_rank = split_batch(train_opt.batch_size, info.world_size, opt.path.option_file)
    base = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                              shuffle=train_opt.use_shuffle, seed=seed, drop_last=False)
    steps_per_epoch = len(base) // batch_per_rank
    if steps_per_epoch == 0:
        raise DataError(f"datasets.train: {len(train_set)} training item(s) give no full batch of "
                        f"{batch_per_rank} per process; lower datasets.train.batch_size or add images")
    sampler = ItemSeeds(base, seed)
    generator = torch.Generator()  # worker seeds come from here, never from the global generator
    generator.manual_seed(item_seed(seed, -1, info.rank))
    train_loader = DataLoader(SeededItems(train_set), batch_size=batch_per_rank, sampler=sampler,
                              num_workers=train_opt.n_workers, persistent_workers=train_opt.n_workers > 0,
                              pin_memory=device.type == "cuda", drop_last=True, generator=generator)
    val_set = build_dataset(val_opt, "val", opt.path.option_file)
    if not getattr(val_set, "has_gt", True):
        raise DataError(f"datasets.val: '{val_opt.name}' at {val_opt.root} has no ground truth to validate against")
    val_loader = DataLoader(val_set, batch_size=val_opt.batch_size, shuffle=False, num_workers=val_opt.n_workers,
                            pin_memory=device.type == "cuda")
    return Loaders(train=train_loader, sampler=sampler, batch_per_rank=batch_per_rank,
                   steps_per_epoch=steps_per_epoch, val=val_loader)


def split_batch(batch_size: int, world_size: int, source: Optional[str] = None) -> int:
    """``datasets.train.batch_size`` is the global batch: each of the processes takes its share.
    ``source``: the option file, named by the error."""
    try:
        return per_rank_batch(batch_size, world_size)
    except ArgumentError as e:
        raise OptionError(e.detail, key=f"datasets.train.{e.argument}", source=source) from None


def resume_path(opt: Options) -> Optional[str]:
    """The checkpoint to resume from: ``path.checkpoint`` (the official key) or an explicit
    ``path.resume``; with ``resume: auto`` this run's ``checkpoints/latest.pth`` if it exists."""
    resume, checkpoint = opt.path.resume, opt.path.checkpoint
    if isinstance(checkpoint, list):
        raise OptionError(f"training resumes from one checkpoint, got a list of {len(checkpoint)}",
                          key="path.checkpoint", source=opt.path.option_file)
    if checkpoint:
        if resume not in ("auto", "none") and os.path.abspath(resume) != os.path.abspath(checkpoint):
            raise OptionError(f"{resume} and path.checkpoint ({checkpoint}) name different checkpoints; "
                              "set only one", key="path.resume", source=opt.path.option_file)
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


def open_tensorboard(log_dir: str) -> Any:
    """A TensorBoard writer on ``log_dir``."""
    # imported here: tensorboard is an optional, slow-to-import dependency used by rank 0 only
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir)


def teardown(run: Run) -> None:
    """Close TensorBoard and leave the process group."""
    if run.tb is not None:
        run.tb.close()
    dist.cleanup()
