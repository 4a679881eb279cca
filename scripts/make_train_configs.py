#!/usr/bin/env python
"""Write the option files of the published recipes (the generated files are committed; rerun this
after changing the recipe table below, and `--check` in CI).

Training files, conf/train/ (``--out``):
- ``snr_decomp_{mse_q1..q6,msssim_q2,q3,q5,q6,sidd_q1..q6}.yml``: the ICME 2024 recipe, each
  objective as trained in its own official source tree (per-row lr, milestones, gamma, loss cap)
  and with that tree's network (:data:`ICME_NETWORKS`: the MSE tree's, or the second network of
  the MS-SSIM and SIDD trees);
- ``multiscale_decomp_*.yml``: the ECCV 2022 recipe (600 epochs, ×0.1 at 450 and 550);
- ``cheng2020_anchor_*.yml``: the codec-only baseline. No paper publishes a recipe for it: it
  uses the ECCV 2022 schedule and has no guidance branch (criterion_fea: null);
- ``tiny.yml``: a small snr-decomp on data/samples: 600 steps in about five minutes on 2 busy
  CPU cores (OMP_NUM_THREADS=1).
- ``demo_{joint,codec}_l{1,2,3}.yml``: the demo's ladders (``scripts/demo.py --retrain``): a small
  snr-decomp and the codec-only cheng2020-anchor of the same width, three λ each, on data/samples.

Common to every recipe: epoch mode, Adam with lr_aux 1e-3, LambdaLR with 20 warm-up epochs,
gradient clipping 1.0, batch 16 of 256×256 crops, validation every epoch, warm start from
CompressAI's Cheng2020-anchor of the same quality and metric, guidance λ_fea = 3 with L1, λ from
the standard table, the releases' sRGB curves for the synthetic noise (legacy_gamma: true) and
their loss-cap behaviour (loss_cap_mode: zero_grad). Our own options that no release has
(``network.alphas``, the AMP and throughput switches) stay at their defaults and out of the
paper files, except ``train.amp: 'off'``, written out to say the recipe is float32.

Evaluation files, conf/test/ (``--test-out``): ``official_<model>_<mse|msssim|sidd>.yml`` for both
joint models, the official measurement protocol on the releases' curves, one curve per command
(the checkpoints of the matching training files, best.pth of each run).

``--check`` regenerates everything in memory and exits 1, naming each file that differs from the
disk, is missing, or is an extra file among the generated names (every *.yml of the training
folder; official_*.yml of the evaluation folder); 0 when all match.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))

from dic.losses import LAMBDAS  # noqa: E402  (the λ table lives in one place)

SCRIPT = "scripts/make_train_configs.py"
DOC = "docs/reproducing.md"

# ---- the recipe table ------------------------------------------------------------------------

class Recipe(NamedTuple):  # (not a dataclass: tests load this file without registering it as a module)
    paper: str                    # "ICME 2024", "ECCV 2022"
    tree: Optional[str]           # the official source tree the row was read from (ICME 2024)
    epochs: int
    lr: float
    milestones: Tuple[int, ...]
    gamma: float
    loss_cap: float
    resumed_from: Optional[int] = None  # the official run restarted from this epoch's checkpoint


ICME, ECCV = "ICME 2024", "ECCV 2022"
ICME_TREES = {"mse": "Joint_IC_Denoising_MSE", "msssim": "Joint_IC_Denoising_MS_SSIM",
              "sidd": "Joint_IC_Denoising_SIDD_MSE"}
_LATE = (450, 550, 600, 650, 700)
# ICME 2024 (snr-decomp): (tag, qualities, lr, milestones, gamma, loss_cap), one line per table row
ICME_ROWS = (
    ("mse", (1,), 1e-4, _LATE, 0.5, 100.0),
    ("mse", (2, 3), 5e-5, _LATE, 0.5, 100.0),
    ("mse", (4, 5), 5e-5, _LATE, 0.5, 1000.0),
    ("mse", (6,), 5e-5, (400, 550, 600, 650, 700), 0.5, 1000.0),
    ("msssim", (2, 3), 7e-5, (450, 550), 0.1, 100.0),
    ("msssim", (5, 6), 7e-5, (450, 550), 0.1, 1000.0),
    ("sidd", (1, 2, 3), 1e-4, _LATE, 0.5, 100.0),
    ("sidd", (4, 5), 5e-5, _LATE, 0.5, 1000.0),
    ("sidd", (6,), 1e-4, (310, 450, 550, 600, 650, 700), 0.5, 1000.0),
)
ICME_EPOCHS = 800
# the snr-decomp network each ICME 2024 tree holds (docs/models.md §3): the MSE tree's, and the
# second network of the MS-SSIM and SIDD trees (branches of width N, 8 heads, *_CC unused)
ICME_NETWORKS = {
    "mse": {"branch_width": "half", "num_heads": 12},
    "msssim": {"branch_width": "full", "num_heads": 8},
    "sidd": {"branch_width": "full", "num_heads": 8},
}
NETWORK_NOTE = {
    "half": "the MSE tree's network (branch_width half: branches of N/2 channels, 12 heads)",
    "full": "the MS-SSIM and SIDD trees' network (branch_width full: branches of N channels, 8 heads, *_CC unused)",
}
# official ICME 2024 runs that were stopped and resumed from an intermediate checkpoint with an
# edited schedule: (tag, quality) → epoch of that checkpoint
ICME_RESUMED = {("mse", 1): 369, ("mse", 4): 59, ("mse", 6): 339,
                ("sidd", 1): 439, ("sidd", 2): 439, ("sidd", 6): 309}


def icme_recipe(tag: str, quality: int) -> Recipe:
    for row_tag, qualities, lr, milestones, gamma, cap in ICME_ROWS:
        if row_tag == tag and quality in qualities:
            return Recipe(ICME, ICME_TREES[tag], ICME_EPOCHS, lr, milestones, gamma, cap,
                          ICME_RESUMED.get((tag, quality)))
    raise KeyError(f"no ICME 2024 recipe for {tag} q{quality}")


def eccv_recipe(tag: str, quality: int) -> Recipe:
    """ECCV 2022 (multiscale-decomp): one schedule for every objective, the cap by quality."""
    return Recipe(ECCV, None, 600, 1e-4, (450, 550), 0.1, 100.0 if quality <= 3 else 1000.0)


MODELS = ("snr-decomp", "multiscale-decomp", "cheng2020-anchor")
RECIPE_OF = {"snr-decomp": icme_recipe, "multiscale-decomp": eccv_recipe,
             "cheng2020-anchor": eccv_recipe}  # the baseline borrows the ECCV 2022 schedule
PAPER_MODELS = ("snr-decomp", "multiscale-decomp")

_FLICKER_TRAIN = {"root": "data/flicker/train", "name": "synthetic"}
_FLICKER_VAL = {"root": "data/flicker/val", "name": "synthetic"}
OBJECTIVES = {  # file tag → (metric, qualities, training data, validation data)
    "mse": ("mse", (1, 2, 3, 4, 5, 6), _FLICKER_TRAIN, _FLICKER_VAL),
    "msssim": ("ms-ssim", (2, 3, 5, 6), _FLICKER_TRAIN, _FLICKER_VAL),
    "sidd": ("mse", (1, 2, 3, 4, 5, 6),
             {"root": "data/SIDD/annotations/sidd_medium_srgb_train.json", "name": "sidd", "crops_per_image": 60},
             {"root": "data/SIDD/annotations/sidd_medium_srgb_val.json", "name": "sidd"}),
}
ROW_LABEL = {"mse": "MSE", "msssim": "MS-SSIM", "sidd": "SIDD MSE"}
DATA_NOTE = {
    "mse": "Flicker 2W (scripts/flicker_process.py) with synthetic noise",
    "msssim": "Flicker 2W (scripts/flicker_process.py) with synthetic noise",
    "sidd": "SIDD-Medium tiles + validation blocks (scripts/sidd_tile_annotations.py)",
}


def file_stem(model: str) -> str:
    return model.replace("-", "_")


def train_name(model: str, tag: str, quality: int) -> str:
    return f"{file_stem(model)}_{tag}_q{quality}"


# ---- training files --------------------------------------------------------------------------

def releases_noise(data: dict) -> dict:
    """``legacy_gamma: true`` (the releases' sRGB curves) for a set with synthetic noise; nothing
    for real noise (SIDD), whose data set does not take the key."""
    return {"legacy_gamma": True} if data["name"].startswith("synthetic") else {}


def official(model: str, tag: str, quality: int) -> dict:
    """One training option tree of the recipe of ``model``."""
    metric, _, train_data, val_data = OBJECTIVES[tag]
    r = RECIPE_OF[model](tag, quality)
    return {
        "name": train_name(model, tag, quality),
        "use_tb_logger": True,
        "gpu_ids": [0],
        "manual_seed": 1,
        "datasets": {
            "train": {**train_data, "patch_size": 256, "batch_size": 16, "n_workers": 4, "use_shuffle": True,
                      **releases_noise(train_data)},
            "val": {**val_data, "patch_size": 256, "batch_size": 1, "n_workers": 0, "use_shuffle": False,
                    **releases_noise(val_data)},
        },
        "network": {
            "model": model,
            "quality": quality,
            **(ICME_NETWORKS[tag] if model == "snr-decomp" else {}),
            "criterions": {"criterion_metric": metric, "criterion_fea": None if model == "cheng2020-anchor" else "l1"},
            "lambdas": {"lambda_metric": LAMBDAS[metric][quality - 1], "lambda_fea": 3.0},
            "pretrained": True,
        },
        "train": {
            "mode": "epoch",
            "epoch": {"value": r.epochs, "lr": r.lr, "lr_aux": 1e-3, "lr_scheme": "LambdaLR", "warm_up_counts": 20,
                      "milestones": list(r.milestones), "gamma": r.gamma, "val_freq": 1},
            "clip_max_norm": 1.0,
            "loss_cap": r.loss_cap,
            "loss_cap_mode": "zero_grad",
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


#: The demo's λ ladder (rate points 1, 2, 3): the MSE λ of qualities 2, 3 and 4 of the standard table.
DEMO_LAMBDAS = (LAMBDAS["mse"][1], LAMBDAS["mse"][2], LAMBDAS["mse"][3])
DEMO_MODELS = {"joint": ("snr-decomp", {"N": 32, "num_layers": 1, "num_heads": 2, "head_dim": 16}, "l1"),
               "codec": ("cheng2020-anchor", {"N": 32}, None)}
#: The middle rate point is trained from scratch for DEMO_STEPS on DEMO_PATCH crops; the outer
#: two start from its best checkpoint and train at their own λ as DEMO_FINETUNE says.
DEMO_ANCHOR = 2
DEMO_STEPS = 18000
DEMO_PATCH = 64
#: A fine-tune: crop side, steps, and the steps of its learning-rate drops (×0.3).
DEMO_FINETUNE = (DEMO_PATCH, 4500, [3000])
#: Fine-tunes of their own, (kind, point) → as DEMO_FINETUNE: the joint model's λ = 0.0035 point
#: fine-tuned on 64×64 crops spent less than the anchor on 64×64 tiles and more on whole flat
#: photographs (docs/demo.md, "The ladders, checked").
DEMO_FINETUNES = {("joint", 1): (128, 2000, [1500])}
#: Training noise of the demo: log10 σ ranges that cover the four test levels (level 4 is
#: σ_read 0.083 = 10^-1.08, σ_shot 0.0329 = 10^-1.48), where the papers' stop at 10^-1.5 and 10^-2.
DEMO_LOG10_READ = [-3.0, -1.0]
DEMO_LOG10_SHOT = [-4.0, -1.4]
#: Augmentation of the demo's crops: the seven training photographs are four grey ones and three
#: warm-toned colour ones (red > green > blue on average); without random colour casts the
#: models learn that palette and tint other photographs (docs/data.md §1).
DEMO_AUGMENT = {"use_hflip": True, "use_rot": True, "channel_gain": 0.4}


def demo_name(kind: str, point: int) -> str:
    return f"demo_{kind}_l{point}"


def demo_training(kind: str, point: int) -> Tuple[int, int, List[int]]:
    """(crop side, steps, learning-rate drops) of one rate point: the anchor's drops at 70 % and
    90 % of its steps, a fine-tune's from DEMO_FINETUNE or DEMO_FINETUNES."""
    if point == DEMO_ANCHOR:
        return DEMO_PATCH, DEMO_STEPS, [int(DEMO_STEPS * 0.7), int(DEMO_STEPS * 0.9)]
    return DEMO_FINETUNES.get((kind, point), DEMO_FINETUNE)


def demo_schedule(kind: str, point: int) -> dict:
    """The train.step section of one rate point: the anchor from scratch with lr 1e-3, the others
    (warm-started from the anchor) with lr 3e-4; each ×0.3 at its drops."""
    _, steps, drops = demo_training(kind, point)
    return {"value": steps, "lr": 1e-3 if point == DEMO_ANCHOR else 3e-4, "lr_aux": 1e-3, "lr_scheme": "LambdaLR",
            "warm_up_counts": 20, "gamma": 0.3, "val_freq": 500, "milestones": list(drops)}


def demo(kind: str, point: int) -> dict:
    """One training file of the demo's ladders: ``kind`` joint (snr-decomp, guided by the clean
    image's features) or codec (cheng2020-anchor, noisy → clean), rate point 1–3."""
    model, hparams, fea = DEMO_MODELS[kind]
    pretrained = False if point == DEMO_ANCHOR else f"experiments/{demo_name(kind, DEMO_ANCHOR)}/checkpoints/best.pth"
    return {
        "name": demo_name(kind, point),
        "use_tb_logger": False,
        "gpu_ids": None,
        "manual_seed": point,
        "datasets": {
            "train": {"root": "data/samples/train", "name": "synthetic", "patch_size": demo_training(kind, point)[0], "batch_size": 7,
                      "n_workers": 0, "noise_log10_read": DEMO_LOG10_READ, "noise_log10_shot": DEMO_LOG10_SHOT,
                      **DEMO_AUGMENT},
            "val": {"root": "data/samples/val", "name": "synthetic", "patch_size": 256, "batch_size": 1},
        },
        "network": {
            "model": model, **hparams,
            "criterions": {"criterion_metric": "mse", "criterion_fea": fea},
            "lambdas": {"lambda_metric": DEMO_LAMBDAS[point - 1], "lambda_fea": 3.0},
            "pretrained": pretrained,
        },
        "train": {"mode": "step", "step": demo_schedule(kind, point), "clip_max_norm": 1.0, "loss_cap": 1000.0},
        "path": {"resume": "auto"},
        "logger": {"print_freq": 100, "save_checkpoint_freq": 1500, "num_val_images": 2},
    }


def demo_header(kind: str, point: int) -> str:
    model = DEMO_MODELS[kind][0]
    what = ("the joint model (denoising and coding in one network, guided during training by the\n"
            "clean image's features)" if kind == "joint" else
            "the codec-only baseline (an image codec of the same width, trained from\nnoisy input to clean target)")
    patch, steps, _ = demo_training(kind, point)
    start = (f"trained from scratch for {steps} steps" if point == DEMO_ANCHOR else
             f"fine-tuned for {steps} steps from rate point {DEMO_ANCHOR} (its best.pth)")
    lines = [f"Generated by {SCRIPT} — do not edit (change the script's demo table and rerun it).",
             *f"The demo's {model}: {what}, rate point {point} of 3 (λ = {DEMO_LAMBDAS[point - 1]}),".split("\n"),
             f"{start} on data/samples/train (python scripts/prepare_samples.py),",
             f"validated on data/samples/val; the test photographs are never seen. {patch}×{patch} crops, batch 7 (one per photograph),",
             f"fresh noise per crop with log10 σ_read in {DEMO_LOG10_READ} and log10 σ_shot in {DEMO_LOG10_SHOT}",
             "(wider than the papers' ranges, so that levels 3 and 4 are inside it: README \"Demo\"),",
             "each crop mirrored, turned and given a colour cast at random (the papers do none of this).",
             "Run all six: python scripts/demo.py --retrain (README \"Demo\")."]
    return "".join(f"# {line}\n" for line in lines) + "\n"


def short(x: float) -> str:
    """5e-05 → '5e-5', 0.0001 → '1e-4', 1000.0 → '1000', 0.5 → '0.5'."""
    if x >= 1 or x == 0:
        return f"{x:g}"
    text = f"{x:g}" if x >= 0.01 else f"{x:.0e}"
    return re.sub(r"e-0*(\d)", r"e-\1", text)


def recipe_line(r: Recipe, tag: str, quality: int) -> str:
    where = f"{r.paper}, tree {r.tree}" if r.tree else f"{r.paper}, {ROW_LABEL[tag]}"
    return (f"{where}, q{quality}: {r.epochs} epochs, lr {short(r.lr)}, ×{short(r.gamma)} at "
            f"{' '.join(map(str, r.milestones))}, loss_cap {short(r.loss_cap)}")


def header(model: str, tag: str, quality: int) -> str:
    metric = OBJECTIVES[tag][0]
    r = RECIPE_OF[model](tag, quality)
    name = train_name(model, tag, quality)
    lines = [f"Generated by {SCRIPT} — do not edit (change the script's recipe table and rerun it)."]
    if model in PAPER_MODELS:
        lines.append(f"Recipe: {recipe_line(r, tag, quality)}")
        lines.append(f"(row {ROW_LABEL[tag]} q{quality} of the {r.paper} recipe table in {DOC}).")
    else:
        lines.append(f"Not a paper's recipe: {model} is the codec-only baseline, which no paper publishes a recipe")
        lines.append(f"for. It borrows the {r.paper} schedule ({recipe_line(r, tag, quality).split(', ', 2)[2]})")
        lines.append("and the data settings of the joint models it is compared with.")
    if r.resumed_from is not None:
        lines.append(f"The official run was stopped and resumed from its epoch-{r.resumed_from} checkpoint with an edited")
        lines.append("schedule, which cannot be replayed exactly; this file is the recipe table's row.")
    lines.append(f"{model}, {metric.upper()} q{quality} (λ = {LAMBDAS[metric][quality - 1]}), trained on {DATA_NOTE[tag]}.")
    if model == "snr-decomp":
        lines.append(f"Network: {NETWORK_NOTE[ICME_NETWORKS[tag]['branch_width']]}.")
    if tag == "sidd":
        lines.append("SIDD's noise is real, so no legacy_gamma (the sidd data set does not take it).")
        lines.append("loss_cap_mode zero_grad: the releases' loss-cap behaviour.")
    else:
        lines.append("legacy_gamma: the noise is synthesised on the releases' sRGB curves, as for the published")
        lines.append("figures. loss_cap_mode zero_grad: the releases' loss-cap behaviour.")
    lines.append(f"Run: python train.py -opt conf/train/{name}.yml")
    return "".join(f"# {line}\n" for line in lines) + "\n"


TINY_HEADER = (
    "# A small SNR-aware model (N=32, one transformer layer of 2 heads) trained from scratch on\n"
    "# data/samples (python scripts/prepare_samples.py) with 64×64 crops, enough to see the losses\n"
    "# fall and to code real bitstreams; evaluate it with conf/test/tiny.yml. `make demo` does not use\n"
    "# this file. Measured on 2 CPU cores shared with other jobs (load 3.5-6): 600 steps in 5 min 6 s\n"
    "# with OMP_NUM_THREADS=1; with torch's default two threads such busy cores ran at ~11 s a step\n"
    "# (set OMP_NUM_THREADS=1 on a shared machine). loss_cap is 1000 because a network trained from\n"
    "# scratch starts above the official 100. Ctrl-C saves a checkpoint; the same command resumes.\n"
    f"# Generated by {SCRIPT}.\n"
    "# Run: OMP_NUM_THREADS=1 python train.py -opt conf/train/tiny.yml [--set train.step.value=2000]\n\n"
)


def train_files() -> Dict[str, str]:
    """File name → text of every training option file."""
    files = {}
    for model in MODELS:
        for tag, (_, qualities, _, _) in OBJECTIVES.items():
            for q in qualities:
                tree = official(model, tag, q)
                files[f"{tree['name']}.yml"] = header(model, tag, q) + yaml.safe_dump(tree, sort_keys=False)
    files["tiny.yml"] = TINY_HEADER + yaml.safe_dump(tiny(), sort_keys=False)
    for kind in DEMO_MODELS:
        for point in (1, 2, 3):
            files[f"{demo_name(kind, point)}.yml"] = demo_header(kind, point) + yaml.safe_dump(demo(kind, point), sort_keys=False)
    return files


# ---- official evaluation files ---------------------------------------------------------------

TEST_PREFIX = "official_"
LEVELS = [1, 2, 3, 4]


def test_datasets(tag: str) -> dict:
    if tag == "sidd":
        return {
            "sidd_val": {"name": "sidd", "root": "data/SIDD/SIDD_Benchmark_Data_Blocks/SIDD_Validation"},
            "sidd_benchmark": {"name": "sidd", "root": "data/SIDD/SIDD_Benchmark_Data_Blocks/SIDD_Test"},
        }
    return {
        "kodak": {"name": "synthetic-test", "root": "data/kodak", "level": list(LEVELS), "legacy_gamma": True},
        "clic": {"name": "synthetic-test", "root": "data/CLIC", "level": list(LEVELS), "legacy_gamma": True},
    }


def official_test(model: str, tag: str) -> dict:
    qualities = OBJECTIVES[tag][1]
    return {
        "name": f"{TEST_PREFIX}{file_stem(model)}_{tag}",
        "gpu_ids": [0],
        "datasets": test_datasets(tag),
        "network": {"model": model},
        "path": {
            "checkpoint": [f"experiments/{train_name(model, tag, q)}/checkpoints/best.pth" for q in qualities],
            "update": True,
        },
        "test": {"protocol": "official", "save_images": False},
    }


def test_header(model: str, tag: str) -> str:
    metric, qualities, _, _ = OBJECTIVES[tag]
    paper = RECIPE_OF[model](tag, qualities[0]).paper
    name = f"{TEST_PREFIX}{file_stem(model)}_{tag}"
    qs = ", ".join(f"q{q}" for q in qualities)
    lines = [f"Generated by {SCRIPT} — do not edit (change the script and rerun it).",
             f"{model} ({paper}), {metric.upper()} models {qs}: the official measurement (test.protocol: official,",
             "the releases' test scripts), one curve per command."]
    if tag == "sidd":
        lines += ["SIDD validation blocks (bpp, PSNR, MS-SSIM) and benchmark blocks (bpp; the decoded blocks in the",
                  f"benchmark's submission layout, results/{name}/sidd_benchmark/<model>_q<k>_SubmitSrgb.mat);",
                  "blocks from scripts/sidd_block.py."]
    else:
        lines += [f"Kodak and CLIC at noise levels 1–4, synthesised on the releases' sRGB curves (legacy_gamma):",
                  f"results/{name}/<kodak|clic>_level<k>/{model}.json."]
    if tag == "msssim":
        lines += [f"Plot: dic plot results/{name}/kodak_level1/*.json --metric ms-ssim-db"]
    lines += [f"Checkpoints: best.pth of each conf/train/{file_stem(model)}_{tag}_q<k>.yml run; official release",
              "checkpoints work too (converted on the fly): --set path.checkpoint=[...].",
              f"Expected figures: {DOC}.",
              f"Run: python test.py -opt conf/test/{name}.yml"]
    return "".join(f"# {line}\n" for line in lines) + "\n"


def test_files() -> Dict[str, str]:
    """File name → text of every official evaluation option file."""
    files = {}
    for model in PAPER_MODELS:
        for tag in OBJECTIVES:
            tree = official_test(model, tag)
            files[f"{tree['name']}.yml"] = test_header(model, tag) + yaml.safe_dump(tree, sort_keys=False)
    return files


# ---- writing and checking --------------------------------------------------------------------

def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def differences(expected: Dict[str, str], folder: Path, pattern: str) -> list:
    """'<path>: differs | missing | not generated' for each file of ``folder`` that does not match."""
    problems = []
    for name, text in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what {SCRIPT} generates")
    for path in sorted(folder.glob(pattern)) if folder.is_dir() else ():
        if path.name not in expected:
            problems.append(f"{path}: not generated by {SCRIPT} (remove it, or rename it outside {pattern})")
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of the training option files (default: conf/train)")
    parser.add_argument("--test-out", type=Path, default=None,
                        help="folder of the official evaluation files (default: conf/test when --out is not "
                             "given; with --out alone the evaluation files are left out, so a scratch --out "
                             "never touches conf/)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing: exit 1 naming each file that differs from what would be written")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    train_out = args.out if args.out is not None else REPO / "conf" / "train"
    test_out = args.test_out if args.test_out is not None else (REPO / "conf" / "test" if args.out is None else None)
    jobs = [(train_files(), train_out, "*.yml")]
    if test_out is not None:
        jobs.append((test_files(), test_out, f"{TEST_PREFIX}*.yml"))
    if args.check:
        problems = [p for files, folder, pattern in jobs for p in differences(files, folder, pattern)]
        for p in problems:
            print(p)
        total = sum(len(files) for files, _, _ in jobs)
        if problems:
            print(f"{len(problems)} option file(s) out of step: rerun python {SCRIPT}", file=sys.stderr)
            return 1
        print(f"all {total} generated option files match")
        return 0
    for files, folder, pattern in jobs:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write(folder / name, text)
        print(f"wrote {len(files)} option files to {folder}")
        for p in differences(files, folder, pattern):
            print(f"warning: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
