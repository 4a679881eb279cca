#!/usr/bin/env python
"""Write the example training option files in conf/train/ (the generated files are committed;
rerun this after changing the recipe below).

For each model (snr-decomp, multiscale-decomp, cheng2020-anchor):
- ``<model>_mse_q{1..6}.yml``: Flicker 2W, MSE, λ from the standard table (MODELS.md);
- ``<model>_msssim_q{2,3,5,6}.yml``: Flicker 2W, MS-SSIM;
- ``<model>_sidd_q{1..6}.yml``: SIDD-Medium (real noise), MSE;
plus ``tiny.yml``: a small snr-decomp on data/samples that trains in two to three minutes on a CPU.

The recipe is the official releases': 600 epochs of batch 16 on 256×256 crops, Adam 1e-4
(aux 1e-3), 20 warm-up epochs then ×0.1 at epochs 450 and 550, gradient clipping 1.0, loss
cap 100, guidance λ_fea = 3 with L1, and a warm start from CompressAI's Cheng2020-anchor.
The cheng2020-anchor baseline has no guidance branch to train: its files set criterion_fea: null.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))

from dic.losses import LAMBDAS  # noqa: E402  (the λ table lives in one place)

MODELS = ("snr-decomp", "multiscale-decomp", "cheng2020-anchor")
RECIPES = {  # file tag → (metric, qualities, training data, validation data)
    "mse": ("mse", range(1, 7), {"root": "data/flicker/train", "name": "synthetic"},
            {"root": "data/flicker/val", "name": "synthetic"}),
    "msssim": ("ms-ssim", (2, 3, 5, 6), {"root": "data/flicker/train", "name": "synthetic"},
               {"root": "data/flicker/val", "name": "synthetic"}),
    "sidd": ("mse", range(1, 7), {"root": "data/SIDD/annotations/sidd_medium_srgb_train.json", "name": "sidd",
                                  "crops_per_image": 60},
             {"root": "data/SIDD/annotations/sidd_medium_srgb_val.json", "name": "sidd"}),
}
DATA_NOTE = {
    "mse": "Flicker 2W (scripts/flicker_process.py) with synthetic noise",
    "msssim": "Flicker 2W (scripts/flicker_process.py) with synthetic noise",
    "sidd": "SIDD-Medium tiles + validation blocks (scripts/sidd_tile_annotations.py)",
}


def official(model: str, tag: str, quality: int) -> dict:
    """One option tree of the official recipe."""
    metric, _, train_data, val_data = RECIPES[tag]
    return {
        "name": f"{model.replace('-', '_')}_{tag}_q{quality}",
        "use_tb_logger": True,
        "gpu_ids": [0],
        "manual_seed": 1,
        "datasets": {
            "train": {**train_data, "patch_size": 256, "batch_size": 16, "n_workers": 4, "use_shuffle": True},
            "val": {**val_data, "patch_size": 256, "batch_size": 1, "n_workers": 0, "use_shuffle": False},
        },
        "network": {
            "model": model,
            "quality": quality,
            "criterions": {"criterion_metric": metric, "criterion_fea": None if model == "cheng2020-anchor" else "l1"},
            "lambdas": {"lambda_metric": LAMBDAS[metric][quality - 1], "lambda_fea": 3.0},
            "alphas": {"alpha_metric": 1.0, "alpha_fea": 1.0},
            "pretrained": True,
        },
        "train": {
            "mode": "epoch",
            "epoch": {"value": 600, "lr": 1e-4, "lr_aux": 1e-3, "lr_scheme": "LambdaLR", "warm_up_counts": 20,
                      "milestones": [450, 550], "gamma": 0.1, "val_freq": 1},
            "clip_max_norm": 1.0,
            "loss_cap": 100.0,
            "amp": "off",
        },
        "path": {"resume": "auto"},
        "logger": {"print_freq": 100, "save_checkpoint_freq": 10},
    }


def tiny() -> dict:
    """A small snr-decomp on the no-download sample set, for the demo and for trying things out."""
    return {
        "name": "tiny",
        "use_tb_logger": True,
        "gpu_ids": None,
        "manual_seed": 1,
        "datasets": {
            "train": {"root": "data/samples/train", "name": "synthetic", "patch_size": 64, "batch_size": 4,
                      "n_workers": 1},
            "val": {"root": "data/samples/val", "name": "synthetic", "patch_size": 256, "batch_size": 1},
        },
        "network": {
            "model": "snr-decomp", "quality": 3, "N": 32, "num_layers": 1, "num_heads": 2, "head_dim": 32,
            "criterions": {"criterion_metric": "mse", "criterion_fea": "l1"},
            "lambdas": {"lambda_metric": None, "lambda_fea": 3.0},
            "pretrained": False,
        },
        "train": {
            "mode": "step",
            "step": {"value": 600, "lr": 1e-3, "lr_aux": 1e-3, "lr_scheme": "LambdaLR", "warm_up_counts": 10,
                     "milestones": [450], "gamma": 0.3, "val_freq": 150},
            "clip_max_norm": 1.0,
            "loss_cap": 1000.0,
        },
        "path": {"resume": "auto"},
        "logger": {"print_freq": 50, "save_checkpoint_freq": 300, "num_val_images": 2},
    }


def header(model: str, tag: str, quality: int) -> str:
    metric = RECIPES[tag][0]
    return (f"# {model}, {metric.upper()} q{quality} (λ = {LAMBDAS[metric][quality - 1]}), trained on "
            f"{DATA_NOTE[tag]}.\n"
            f"# Official recipe; generated by scripts/make_train_configs.py.\n"
            f"# Run: python train.py -opt conf/train/{model.replace('-', '_')}_{tag}_q{quality}.yml\n\n")


TINY_HEADER = (
    "# A small SNR-aware model (N=32, one transformer layer of 2 heads) trained from scratch on\n"
    "# data/samples (python scripts/prepare_samples.py) with 64×64 crops: 600 steps take two to three\n"
    "# minutes on a 2-core CPU, enough to see the losses fall and to code real bitstreams; `make demo`\n"
    "# trains it. loss_cap is 1000 because a network trained from scratch starts above the official 100.\n"
    "# Generated by scripts/make_train_configs.py.\n"
    "# Run: python train.py -opt conf/train/tiny.yml [--set train.step.value=2000]\n\n"
)


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "conf" / "train", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    count = 0
    for model in MODELS:
        for tag, (_, qualities, _, _) in RECIPES.items():
            for q in qualities:
                tree = official(model, tag, q)
                write(args.out / f"{tree['name']}.yml", header(model, tag, q) + yaml.safe_dump(tree, sort_keys=False))
                count += 1
    write(args.out / "tiny.yml", TINY_HEADER + yaml.safe_dump(tiny(), sort_keys=False))
    print(f"wrote {count + 1} option files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
