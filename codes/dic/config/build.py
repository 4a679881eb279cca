"""Options → library objects: the one place that knows which option key feeds which constructor
argument, and that names the option file and key when the library refuses a value.

The library (models, data sets, losses) takes plain arguments and names an argument in its
errors (``N: expected a positive integer, got -4``); here that becomes
``x.yml: network.N: expected a positive integer, got -4``. Each builder first runs its section
through the schema (:func:`.options.validate_section`), so every argument comes from the file or
the schema's default, never from a library default (docs/options.md, docs/architecture.md)."""
from __future__ import annotations

import contextlib
import copy
import inspect
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch.nn as nn
from torch.utils.data import Dataset

from ..checkpoints import load_pretrained
from ..data import DATASETS
from ..errors import ArgumentError, CheckpointError, DicError, OptionError
from ..logger import get_logger
from ..losses import LAMBDAS, RateDistortionLoss, default_lambda
from ..models import create_model
from .options import Options, validate_section
from .schema import NETWORK_FIXED

#: Loss arguments → the ``network`` keys that feed them.
CRITERION_KEYS = {
    "metric": "network.criterions.criterion_metric",
    "feature_loss": "network.criterions.criterion_fea",
    "lmbda": "network.lambdas.lambda_metric",
    "lambda_fea": "network.lambdas.lambda_fea",
    "alpha_metric": "network.alphas.alpha_metric",
    "alpha_fea": "network.alphas.alpha_fea",
    "quality": "network.quality",
}

logger = get_logger()


@contextlib.contextmanager
def option_keys(source: str, section: str, keys: Optional[Mapping[str, str]] = None) -> Iterator[None]:
    """Re-raise a library error about argument ``a`` as one naming ``source`` and the option key
    of ``a``: ``keys[a]``, else ``<section>.<a>``; an error about no argument names ``section``.
    A refused value becomes an :class:`OptionError`; other errors (unusable data) keep their type."""
    try:
        yield
    except OptionError:
        raise  # already names the file and key
    except DicError as e:
        key = section if e.argument is None else (keys or {}).get(e.argument, f"{section}.{e.argument}")
        if isinstance(e, ArgumentError):
            raise OptionError(e.detail, key=key, source=source) from None
        raise type(e)(f"{source}: {key}: {e.detail}") from None


# ---- models --------------------------------------------------------------------------------
def model_kwargs(network: Mapping[str, Any]) -> Dict[str, Any]:
    """The model hyper-parameters set in ``network``: every key beyond the fixed ones is a
    constructor argument of the same name."""
    return {k: v for k, v in network.items() if k not in NETWORK_FIXED}


def build_model(network: Mapping[str, Any], source: str, warm_start: bool = False) -> nn.Module:
    """The network of the ``network`` section; warm-started from ``network.pretrained`` when
    ``warm_start`` (a fresh run on rank 0: other ranks get the weights through DDP)."""
    network = validate_section(network, "network", source)
    with option_keys(source, "network", {"name": "network.model"}):
        model = create_model(network.model, network.quality, **model_kwargs(network))
    if warm_start and network.pretrained not in (None, False):
        try:
            copied = load_pretrained(model, network.pretrained, metric=network.criterions.criterion_metric)
        except CheckpointError as e:
            raise CheckpointError(f"{source}: network.pretrained: {e}") from None
        if network.pretrained in (True, "compressai"):
            logger.info(f"warm start: copied {copied} tensors of CompressAI's cheng2020-anchor (quality "
                        f"{network.quality}, {network.criterions.criterion_metric})")
        else:
            logger.info(f"warm start: copied {copied} tensors from {network.pretrained}")
    return model


# ---- data sets -----------------------------------------------------------------------------
def phase_mode(phase: str) -> str:
    """The data set mode of a phase name: ``train*`` trains, ``val*`` validates, any other name
    (``test``, ``test_kodak``, ``kodak``...) is a test set."""
    phase = str(phase).lower()
    return next((mode for mode in ("train", "val") if phase.startswith(mode)), "test")


def build_dataset(dataset_opt: Mapping[str, Any], phase: str, source: str) -> Dataset:
    """The data set of ``datasets.<phase>``: the class registered as its ``name``, given every
    option key that is one of its constructor's arguments, and the mode of ``phase``."""
    section = f"datasets.{phase}"
    dataset_opt = validate_section(dataset_opt, section, source)
    with option_keys(source, section):
        cls = DATASETS.get(dataset_opt.name)
        accepted = inspect.signature(cls).parameters
        kwargs = {k: v for k, v in dataset_opt.items() if k in accepted and k not in ("root", "mode")}
        return cls(dataset_opt.root, phase_mode(phase), **kwargs)


def expand_levels(dataset_opt: Mapping[str, Any], section: Optional[str] = None,
                  source: Optional[str] = None) -> List[Tuple[str, dict]]:
    """One ``(suffix, options)`` per noise level: a list ``level: [1, 2]`` gives
    ``[("_level1", {..., level: 1}), ("_level2", {..., level: 2})]``; a single or no level gives
    ``[("", options)]``. The evaluator reports each as its own data set. An error names
    ``<section>.level`` (``datasets.<phase>``) and ``source`` when given."""
    level = dataset_opt.get("level")
    if not isinstance(level, (list, tuple)):
        return [("", dict(dataset_opt))]
    if not level:
        raise OptionError("an empty list of noise levels; give 1–4 or a list of them",
                          key=f"{section}.level" if section else "level", source=source)
    out = []
    for lv in level:
        opt = copy.deepcopy(dict(dataset_opt))
        opt["level"] = lv
        out.append((f"_level{lv}", opt))
    return out


# ---- criterion -----------------------------------------------------------------------------
def criterion_lambda(network: Options, source: str) -> float:
    """``network.lambdas.lambda_metric``, or when null the standard λ of the metric at
    ``network.quality`` (``network``: a validated section)."""
    lam, metric, quality = network.lambdas.lambda_metric, network.criterions.criterion_metric, network.quality
    if lam is not None:
        return float(lam)
    if metric not in LAMBDAS:
        raise OptionError(f"no standard λ table for {metric!r} (tables: {', '.join(LAMBDAS)}); "
                          "set network.lambdas.lambda_metric", key="network.criterions.criterion_metric",
                          source=source)
    if quality is None:
        raise OptionError("null takes λ from the quality table, which needs network.quality (1..6); "
                          "set one of them", key="network.lambdas.lambda_metric", source=source)
    with option_keys(source, "network", CRITERION_KEYS):
        return default_lambda(metric, quality)


def build_criterion(network: Mapping[str, Any], source: str) -> RateDistortionLoss:
    """The rate–distortion criterion of the ``network`` section."""
    network = validate_section(network, "network", source)
    criterions, lambdas, alphas = network.criterions, network.lambdas, network.alphas
    lmbda = criterion_lambda(network, source)
    with option_keys(source, "network", CRITERION_KEYS):
        return RateDistortionLoss(
            criterions.criterion_metric, lmbda, feature_loss=criterions.criterion_fea,
            lambda_fea=lambdas.lambda_fea, alpha_metric=alphas.alpha_metric, alpha_fea=alphas.alpha_fea,
        )
