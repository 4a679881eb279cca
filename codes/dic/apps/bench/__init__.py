"""``dic bench``: coding and training speed and memory, beside CompressAI's own path."""
from .runner import add_arguments, benchmark, main, run

__all__ = ["add_arguments", "benchmark", "main", "run"]
