"""Two-process DDP training through torchrun on the CPU (gloo): both ranks end with identical
weights, each rank saw different data, only rank 0 wrote files, and a NaN on one rank caps the
step on both, in either loss_cap_mode (skip: nothing updated; zero_grad: both optimizers step)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from dic.checkpoints import load_model, weights_fingerprint
from dic.checkpoints import load_checkpoint

# Runs inside each torchrun process: trains through dic.apps.train.fit, watching (test-side
# only) what the process writes under the run's root and which items it loads, then reports
# the rank's final weight hash to a results folder outside that root.
WRAPPER = textwrap.dedent('''
    import builtins, json, os, sys, tempfile
    option_file, run_root, results = sys.argv[1:4]
    rank = int(os.environ["RANK"])
    writes = []

    def watch(func, is_write):
        def spy(path, *args, **kwargs):
            if is_write(path, args, kwargs) and os.path.abspath(str(path)).startswith(run_root):
                writes.append(f"{func.__name__} {path}")
            return func(path, *args, **kwargs)
        return spy

    if rank != 0:
        mode_of = lambda a, k: (a[0] if a else k.get("mode", "r"))
        builtins.open = watch(builtins.open, lambda p, a, k: any(c in mode_of(a, k) for c in "wax+"))
        for name in ("replace", "rename", "makedirs", "mkdir"):
            setattr(os, name, watch(getattr(os, name), lambda p, a, k: True))
        tempfile.mkstemp = (lambda real: lambda *a, **k: (writes.append(f"mkstemp {k.get('dir')}")
                            if str(k.get("dir", "")).startswith(run_root) else None) or real(*a, **k))(tempfile.mkstemp)

    from dic.apps.train.loop import fit
    from dic.checkpoints import coding_tables, load_coding_tables, weights_fingerprint
    from dic.config import load_options
    from dic.data.samplers import SeededItems
    from dic.losses import RateDistortionLoss

    seen = []
    real_getitem = SeededItems.__getitem__
    SeededItems.__getitem__ = lambda self, key: (seen.append(int(key[0])), real_getitem(self, key))[1]
    if rank == 1:  # this rank's first training loss is NaN: both ranks must cap that step
        real_forward, calls = RateDistortionLoss.forward, []
        def nan_once(self, out_net, gt):
            terms = real_forward(self, out_net, gt)
            if not calls:
                calls.append(1)
                terms["loss"] = terms["loss"] * float("nan")
            return terms
        RateDistortionLoss.forward = nan_once

    model = fit(load_options(option_file))
    load_coding_tables(model, coding_tables(model))  # as a checkpoint of these weights stores them
    with builtins.open(os.path.join(results, f"rank{rank}.json"), "w") as f:
        json.dump({"hash": weights_fingerprint(model), "writes": writes, "seen": seen}, f)
''')


def write_images(folder: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = cv2.resize(rng.random((6, 6, 3)), (64, 64), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"im{i}.png"), np.clip(image * 255, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("loss_cap_mode", ["skip", "zero_grad"])
def test_torchrun_two_processes_gloo(tmp_path, loss_cap_mode):
    data, run_root, results = tmp_path / "data", tmp_path / "run", tmp_path / "results"
    write_images(data / "train", 4, seed=1)
    write_images(data / "val", 1, seed=2)
    run_root.mkdir()
    results.mkdir()
    options = {
        "name": "ddp", "use_tb_logger": True, "manual_seed": 5,
        "datasets": {
            "train": {"root": str(data / "train"), "name": "synthetic", "patch_size": 64, "batch_size": 2},
            "val": {"root": str(data / "val"), "name": "synthetic", "patch_size": 64},
        },
        "network": {"model": "snr-decomp", "quality": 1, "N": 16, "num_layers": 1, "num_heads": 2, "head_dim": 16},
        "train": {"mode": "step", "step": {"value": 3, "lr": 1e-3, "val_freq": 2}, "loss_cap_mode": loss_cap_mode},
        "path": {"root": str(run_root)},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 2},
    }
    option_file = tmp_path / "ddp.yml"
    option_file.write_text(yaml.safe_dump(options))
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(wrapper), str(option_file), str(run_root), str(results)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    rank0, rank1 = (json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["hash"] == rank1["hash"]  # DDP kept the replicas identical
    assert rank1["writes"] == []  # only rank 0 writes
    # per-rank batch 1: epoch 0 splits the 4 images between the ranks (2 steps), epoch 1 one step
    assert len(rank0["seen"]) == len(rank1["seen"]) == 3
    assert sorted(rank0["seen"][:2] + rank1["seen"][:2]) == [0, 1, 2, 3]

    ckpt_dir = run_root / "experiments" / "ddp" / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["2.pth", "best.pth", "latest.pth"]
    assert weights_fingerprint(load_model(ckpt_dir / "latest.pth")) == rank0["hash"]
    ckpt = load_checkpoint(ckpt_dir / "latest.pth")
    assert ckpt["iter"] == 3 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert ckpt["skipped_steps"] == 1  # rank 1's NaN capped the step on both ranks
    log = (run_root / "experiments" / "ddp" / "train.log").read_text()
    assert "2 process(es), 1 image(s) per process" in log and "a bad loss on another rank" in log
    done = "nothing updated" if loss_cap_mode == "skip" else "main gradients zeroed, both optimizers stepped"
    assert f"step 1: a bad loss on another rank (loss_cap 100): {done}" in log
    assert list((run_root / "tb_logger" / "ddp").glob("events.out.tfevents.*"))
