"""Evaluation: ``python test.py -opt conf/test/x.yml``, ``dic-test`` or ``dic test``; the
sequential baselines; rate–distortion reports, plots and BD-rate."""
from .runner import add_arguments, evaluate, main, run

__all__ = ["add_arguments", "evaluate", "main", "run"]
