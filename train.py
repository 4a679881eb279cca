"""Train a model: ``python train.py -opt conf/train/<x>.yml [--set key=value ...]``.

Several GPUs or machines: ``torchrun --nproc_per_node=K train.py -opt ...``.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "codes"))

from dic.apps.train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
