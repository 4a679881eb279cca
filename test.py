"""Evaluate checkpoints: ``python test.py -opt conf/test/<x>.yml [--set key=value ...]``."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "codes"))

from dic.apps.launch import dic_test  # noqa: E402

if __name__ == "__main__":
    sys.exit(dic_test())
