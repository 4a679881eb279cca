"""Train a model: ``python train.py -opt conf/train/<x>.yml [--set key=value ...]``.

Several GPUs or machines: ``torchrun --nproc_per_node=K train.py -opt ...``. Ctrl-C or SIGTERM
during training saves a checkpoint the next run resumes from (exit 130 / 143); Ctrl-C while the
libraries load exits 130 with nothing written.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "codes"))

from dic.apps.launch import dic_train  # noqa: E402

if __name__ == "__main__":
    sys.exit(dic_train())
