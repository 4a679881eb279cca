"""Train a model: ``python train.py -opt conf/train/<x>.yml [--set key=value ...]``.

Several GPUs or machines: ``torchrun --nproc_per_node=K train.py -opt ...``. Ctrl-C or SIGTERM
during training saves a checkpoint the next run resumes from (exit 130 / 143).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "codes"))

try:
    from dic.apps.train.loop import main  # noqa: E402
except KeyboardInterrupt:  # Ctrl-C while the libraries load: nothing has started yet
    print("interrupted (Ctrl-C) while loading; nothing was written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
