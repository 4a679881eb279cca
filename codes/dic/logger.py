"""One logger for the console and a log file. Only rank 0 writes when distributed, so a run
with K processes prints each line once."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

LOGGER_NAME = "dic"
_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def get_rank() -> int:
    """This process's global rank under torchrun (RANK), 0 otherwise."""
    return int(os.environ.get("RANK", 0))


def setup_logger(log_file: Optional[str] = None, rank: Optional[int] = None,
                 level: int = logging.INFO) -> logging.Logger:
    """Configure the ``dic`` logger: console (+ ``log_file``) on rank 0, warnings only elsewhere.

    Calling it again replaces the handlers, so a launcher can add the file once it exists.
    """
    rank = get_rank() if rank is None else rank
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = False
    formatter = logging.Formatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if rank == 0:
        logger.setLevel(level)
        if log_file:
            os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
            file_handler = logging.FileHandler(log_file)
            file_handler.setFormatter(formatter)
            logger.addHandler(file_handler)
    else:
        logger.setLevel(logging.WARNING)
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
