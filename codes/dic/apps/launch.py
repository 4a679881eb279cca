"""Entry points of the console scripts (``dic``, ``dic-train``, ``dic-test``) and launchers.

Each imports its command's module inside a Ctrl-C guard: the imports take seconds (torch), and
an interrupt then prints one line and exits 130, as one during the command does, instead of a
traceback. Only ``sys`` and ``importlib`` are needed before the guard, both loaded with Python
itself, so the unguarded window is the interpreter's start-up and this package's two empty
``__init__`` modules (docs/cli.md)."""
import importlib
import sys

INTERRUPTED = 130  # the exit code of dic.apps.guard, repeated: importing it is not yet guarded


def launch(module: str, argv=None) -> int:
    """Import ``module`` and return its ``main(argv)``; Ctrl-C during the import → 130."""
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        try:
            print("interrupted (Ctrl-C) while loading; nothing was written", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        return INTERRUPTED
    return main(argv)


def dic() -> int:
    """``dic``."""
    return launch("dic.apps.cli")


def dic_train() -> int:
    """``dic-train`` and ``train.py``: ``dic train`` (so ``--help`` and a bad argument answer
    before torch is imported)."""
    return launch("dic.apps.cli", ["train", *sys.argv[1:]])


def dic_test() -> int:
    """``dic-test`` and ``test.py``: ``dic test``."""
    return launch("dic.apps.cli", ["test", *sys.argv[1:]])
