"""One optimisation step, shared by ``dic train`` and ``dic bench``: forward (under autocast when
mixed precision is on), rate–distortion loss, one backward pass, gradient clipping, both Adam
steps, the context masks re-applied, and the loss cap (docs/options.md, ``train.loss_cap`` and
``train.loss_cap_mode``).

The loss cap. A step whose main loss lies outside ``[0, loss_cap)`` — NaN, infinite, negative,
or at least ``loss_cap`` — is *capped*:

- ``skip``: nothing is updated (no backward pass, no optimizer step);
- ``zero_grad``: the official releases' step as they ran it under PyTorch 1.x
  (docs/reproducing.md, "loss cap"): the main loss is back-propagated and clipped, then every
  main gradient that exists is filled with zeros and the main Adam steps; the auxiliary loss
  (after the main step) is back-propagated, its gradients filled with zeros, and the auxiliary
  Adam steps. Both Adams thus move the weights and the quantiles by their moments alone. The
  zeros are filled here (:func:`fill_zeros`) rather than by ``Optimizer.zero_grad()``, whose
  PyTorch 2 default (``set_to_none``) would make Adam skip every parameter and move nothing.
  Parameters that got no gradient (frozen or unused ones) are not stepped, as in the releases.

Under DDP a bad loss on any rank caps the step on every rank (``any_rank``), so the replicas
stay identical.

Throughput switches (``train.*`` in docs/options.md), each the same step computed another way:

- ``channels_last``: model and batches in ``torch.channels_last`` (CUDA; same losses to float
  rounding);
- ``fused_adam``: both Adams as torch's fused kernels (:func:`build_optimizers`);
- ``sync_free_cap``: the cap decided on the device (:meth:`TrainStep._sync_free_step`): a capped
  step's main and auxiliary gradients are zeroed by a device-side mask, which is ``zero_grad``
  exactly; the host never waits for the loss, and the result carries the flag as a tensor
  (``capped_flag``) for the loop to count at its next log line;
- ``noise_on_device``: a batch may come as clean crops plus a noise specification (a dict,
  :data:`dic.data.synthetic.NOISE_SPEC_KEYS`), synthesised here on the step's device;
- ``compile``: the forward pass through ``torch.compile``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.optim import Adam, Optimizer

from ...data.noise import add_noise_seeded
from ...errors import ArgumentError, OptionError
from ...losses import RateDistortionLoss
from ...models import apply_context_masks

#: Submodules kept in float32 under autocast: the entropy parameters and the likelihoods.
FP32_MODULES = ("entropy_bottleneck", "gaussian_conditional", "context_prediction", "entropy_parameters")

#: What a capped step does (``train.loss_cap_mode``).
LOSS_CAP_MODES = ("skip", "zero_grad")

#: Whether a step is capped: a host bool, or a device bool tensor (``sync_free_cap``).
Capped = Union[bool, Tensor]


@dataclass
class StepResult:
    """What one step did."""

    terms: Dict[str, Tensor]  # detached loss terms (always present, capped or not)
    capped: bool  # the loss was outside [0, loss_cap) here or on another rank
    loss: float = math.nan  # this process's main loss, on the host (NaN when sync-free)
    capped_flag: Optional[Tensor] = None  # sync-free: ``capped`` as a device bool, not yet read


def loss_in_range(loss: Union[float, Tensor], cap: float) -> Union[bool, Tensor]:
    """Whether a step's main loss may train: within ``[0, cap)`` (NaN and infinities are not).
    A host float gives a bool; a tensor gives a tensor, computed on its device without a sync."""
    return (loss >= 0) & (loss < cap)


class TrainStep:
    """One optimisation step of both optimizers (main + aux), CompressAI's split.

    ``net`` is what the forward pass calls: the model's DDP wrapper, or the model (the default).
    ``any_rank(flag) -> bool`` is true on every rank when ``flag`` is on one (default: ``flag``).
    With ``amp_dtype`` the forward pass runs under autocast and the entropy model is kept in
    float32 (:func:`keep_fp32`, applied here); ``scaler`` is fp16's GradScaler.
    ``channels_last``, ``sync_free_cap`` and ``compile`` (True: inductor; a string: that
    ``torch.compile`` backend) are the switches of the module docstring.

    As in CompressAI's example loop and the official releases, the auxiliary loss is computed
    after the main Adam step, with the bottleneck's updated density weights, and only then
    back-propagated to the quantiles and stepped. DDP still reduces in one pass without
    ``find_unused_parameters``: the main backward carries a zero-weighted aux term, so the
    quantiles take part (with zero gradients)."""

    def __init__(self, model: nn.Module, criterion: RateDistortionLoss, optimizer: Optimizer,
                 aux_optimizer: Optimizer, *, device: torch.device, net: Optional[nn.Module] = None,
                 clip_max_norm: float = 1.0, loss_cap: float = 100.0, loss_cap_mode: str = "skip",
                 amp_dtype: Optional[torch.dtype] = None, scaler: Optional[torch.amp.GradScaler] = None,
                 any_rank: Optional[Callable[[Any], Any]] = None, channels_last: bool = False,
                 sync_free_cap: bool = False, compile: Union[bool, str] = False):
        if loss_cap_mode not in LOSS_CAP_MODES:
            raise ArgumentError(f"expected one of {', '.join(LOSS_CAP_MODES)}, got {loss_cap_mode!r}",
                                argument="loss_cap_mode")
        if sync_free_cap and loss_cap_mode != "zero_grad":
            raise ArgumentError("needs loss_cap_mode zero_grad: a skipped step cannot be undone without "
                                "reading the loss on the host", argument="sync_free_cap")
        self.model, self.criterion = model, criterion
        self.optimizer, self.aux_optimizer = optimizer, aux_optimizer
        self.device = torch.device(device)
        self.net = net if net is not None else model
        self.clip_max_norm, self.loss_cap, self.loss_cap_mode = clip_max_norm, loss_cap, loss_cap_mode
        self.amp_dtype, self.scaler = amp_dtype, scaler
        self.any_rank = any_rank if any_rank is not None else _this_rank
        self.channels_last, self.sync_free_cap = channels_last, sync_free_cap
        if amp_dtype is not None:
            keep_fp32(model, self.device.type)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = self.net
        if compile:
            self.forward = torch.compile(self.net, backend="inductor" if compile is True else compile)

    def inputs(self, gt: Tensor, noisy: Union[Tensor, Mapping[str, Tensor]]) -> Tuple[Tensor, Tensor]:
        """The batch on the step's device (and memory format); a noise specification (a dict:
        ``datasets.train.noise_on_device``) becomes noise drawn here."""
        gt = gt.to(self.device, non_blocking=True)
        if isinstance(noisy, Mapping):
            noisy = add_noise_seeded(gt, noisy["sigma_read"], noisy["sigma_shot"], noisy["seed"].tolist(),
                                     bool(noisy["legacy_gamma"].reshape(-1)[0]))
        else:
            noisy = noisy.to(self.device, non_blocking=True)
        if self.channels_last:
            gt, noisy = (t.contiguous(memory_format=torch.channels_last) for t in (gt, noisy))
        return gt, noisy

    def __call__(self, gt: Tensor, noisy: Union[Tensor, Mapping[str, Tensor]]) -> StepResult:
        """Train on one batch (clean ``gt``, ``noisy`` input or its noise specification), or cap
        the step as the mode says."""
        gt, noisy = self.inputs(gt, noisy)
        self.optimizer.zero_grad(set_to_none=True)
        self.aux_optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            out = self.forward(noisy, gt if self.criterion.uses_guidance else None)
        terms = self.criterion(out, gt)
        if self.sync_free_cap:
            return self._sync_free_step(terms)
        loss = float(terms["loss"].detach())
        capped = self.any_rank(not loss_in_range(loss, self.loss_cap))
        result = StepResult({k: v.detach() for k, v in terms.items()}, capped, loss)
        if capped and self.loss_cap_mode == "skip":
            result.terms["aux_loss"] = self.model.aux_loss().detach()
            return result  # nothing updated
        self._backward(terms["loss"] + 0.0 * self.model.aux_loss(), capped)
        return self._update(result, capped)

    def _sync_free_step(self, terms: Dict[str, Tensor]) -> StepResult:
        """``zero_grad`` capping without a host branch: the flag (all ranks) stays a device
        tensor, and the gradients are zeroed where it is set — ``masked_fill_`` also clears the
        NaNs a bad loss leaves — before both optimizers step."""
        loss = terms["loss"]
        capped = self.any_rank(~loss_in_range(loss.detach(), self.loss_cap))
        self._backward(loss + 0.0 * self.model.aux_loss(), capped)
        return self._update(StepResult({k: v.detach() for k, v in terms.items()}, False, capped_flag=capped), capped)

    def _update(self, result: StepResult, capped: Capped) -> StepResult:
        """Both optimizers' steps on the gradients in place: the main Adam, then the auxiliary
        loss with the updated density weights (:meth:`_aux_step`), its gradients zeroed when the
        step is capped."""
        self._main_step()
        result.terms["aux_loss"] = self._aux_step(capped)
        # keep the stored weights canonical, so replicas and checkpoints agree whether or not a
        # forward pass (a validation on rank 0) has masked them since the last step
        apply_context_masks(self.model)
        return result

    def _backward(self, total: Tensor, capped: Capped) -> None:
        """Gradients of ``total`` (reduced over ranks by DDP), filled with zeros when the step is
        capped, unscaled under fp16 and clipped. The zeros come before the unscaling so that a
        capped fp16 step is not skipped for the infinities it back-propagated (the releases step
        on zeros); clipping zeros leaves zeros, so the order is otherwise the releases'."""
        if self.scaler is not None:
            self.scaler.scale(total).backward()
        else:
            total.backward()
        fill_zeros(parameters(self.optimizer), capped)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip_max_norm > 0:
            nn.utils.clip_grad_norm_(parameters(self.optimizer), self.clip_max_norm)

    def _main_step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def _aux_step(self, capped: Capped) -> Tensor:
        """The auxiliary loss with the updated density weights, its gradients for the quantiles
        (zeros on a capped step) and the aux optimizer's step; returns the loss, detached.
        ``autograd.grad`` leaves DDP's hooks out, which is safe: the aux loss depends only on
        replicated weights (the quantiles; the density, detached), so its gradients are the same
        on every rank. It runs in float32 outside autocast, so it needs no gradient scaling."""
        quantiles = parameters(self.aux_optimizer)
        aux_loss = self.model.aux_loss()
        for p, g in zip(quantiles, torch.autograd.grad(aux_loss, quantiles, allow_unused=True)):
            p.grad = g
        fill_zeros(quantiles, capped)
        self.aux_optimizer.step()
        return aux_loss.detach()


def fill_zeros(params: List[Tensor], capped: Capped) -> None:
    """On a capped step, every existing gradient of ``params`` becomes zeros in place, as
    PyTorch 1.x's ``zero_grad()`` did in the releases (gradients that do not exist stay so, and
    Adam skips their parameters); a device flag masks without a host sync. Nothing otherwise."""
    if torch.is_tensor(capped):
        for p in params:
            if p.grad is not None:
                p.grad.masked_fill_(capped, 0.0)
    elif capped:
        for p in params:
            if p.grad is not None:
                p.grad.zero_()


def _this_rank(flag: Any) -> Any:
    """``any_rank`` of a single process: the flag itself (a bool, or a device tensor left unread)."""
    return flag if torch.is_tensor(flag) else bool(flag)


def build_optimizers(model: nn.Module, lr: float, lr_aux: float, fused: bool = False) -> Tuple[Adam, Adam]:
    """Adam on every parameter but the entropy bottleneck's quantiles (``lr``), and Adam on the
    quantiles (``lr_aux``), CompressAI's way; both torch's fused kernels when ``fused`` (CUDA
    and CPU), else its default. An ArgumentError when the model has no quantiles."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
    if not aux:
        raise ArgumentError(f"'{getattr(model, 'name', type(model).__name__)}' has no entropy-bottleneck "
                            "quantiles for the auxiliary optimizer to train", argument="model")
    kernel = {"fused": True} if fused else {}
    return Adam(main, lr=lr, **kernel), Adam(aux, lr=lr_aux, **kernel)


def parameters(optimizer: Optimizer) -> List[Tensor]:
    """Every parameter ``optimizer`` updates."""
    return [p for group in optimizer.param_groups for p in group["params"]]


# ============================================================================================
# Mixed precision
#: ``train.amp``: float32, or autocast to bfloat16 / float16 (CUDA only).
AMP_MODES = ("off", "bf16", "fp16")


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


def autocast(device: torch.device, amp_dtype: Optional[torch.dtype]) -> ContextManager:
    """Mixed-precision context of a forward pass (a no-op when ``amp_dtype`` is None)."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


def keep_fp32(model: nn.Module, device_type: str) -> None:
    """Run the entropy-model submodules outside autocast with float32 inputs, so the entropy
    parameters and likelihoods never lose precision; the transforms stay in mixed precision.
    Applying it twice changes nothing."""
    for name in FP32_MODULES:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module) and not getattr(module.forward, "keeps_fp32", False):
            module.forward = _fp32_forward(module.forward, device_type)


def _fp32_forward(forward: Callable, device_type: str) -> Callable:
    def to32(v):
        return v.float() if torch.is_tensor(v) and v.is_floating_point() else v

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return forward(*map(to32, args), **{k: to32(v) for k, v in kwargs.items()})

    wrapped.keeps_fp32 = True
    return wrapped
