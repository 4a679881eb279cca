"""Options → library objects: the one place that knows which YAML key feeds which constructor
argument, and that names the option file and key when the library refuses a value.

The applications call these; the library (models, data sets, losses) takes plain arguments."""
from __future__ import annotations

from typing import Any, Mapping

import torch.nn as nn
from torch.utils.data import Dataset

from ..checkpoints import load_pretrained
from ..data import create_dataset
from ..errors import OptionError
from ..losses import RateDistortionLoss
from ..models import create_model
from .options import model_kwargs


def build_model(network: Mapping[str, Any], source: str, warm_start: bool = False) -> nn.Module:
    """The network of the ``network`` section; warm-started from ``network.pretrained`` when
    ``warm_start`` (a fresh run on rank 0: other ranks get the weights through DDP)."""
    try:
        model = create_model(network["model"], network.get("quality"), **model_kwargs(network))
    except OptionError as e:  # a hyper-parameter value the model refuses: name the option file
        raise OptionError(f"{source}: {e}") from None
    pretrained = network.get("pretrained")
    if warm_start and pretrained not in (None, False):
        load_pretrained(model, pretrained, metric=network["criterions"]["criterion_metric"])
    return model


def build_dataset(dataset_opt: Mapping[str, Any], phase: str, source: str) -> Dataset:
    """The data set of ``datasets.<phase>``."""
    return create_dataset(dataset_opt, phase)


def build_criterion(network: Mapping[str, Any], source: str) -> RateDistortionLoss:
    """The rate–distortion criterion of the ``network`` section."""
    return RateDistortionLoss(network)
