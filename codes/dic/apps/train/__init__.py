"""Training: ``python train.py -opt conf/train/x.yml``, ``dic-train`` or ``dic train``."""
from .loop import add_arguments, fit, main, run

__all__ = ["add_arguments", "fit", "main", "run"]
