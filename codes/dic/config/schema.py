"""The option schema, as data: every key of an option file, its type, default, allowed values and
meaning. The loader (:mod:`.options`) walks it; ``docs/options.md`` is generated from it
(:func:`dic.config.describe`). Choice lists are read from the code that uses them, so a value
the schema accepts is one that code takes (docs/options.md)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from ..apps.evaluate.protocol import PROTOCOLS
from ..apps.train.schedule import SCHEMES
from ..apps.train.step import AMP_MODES, LOSS_CAP_MODES
from ..data import DATASETS
from ..models.precision import PRECISIONS

# --------------------------------------------------------------------------------------------
# Value types: each is a (check, description) pair; check returns the (possibly converted) value
# or raises ValueError.


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(v: Any) -> int:
    if not _is_int(v):
        raise ValueError
    return v


def _float(v: Any) -> float:
    if isinstance(v, str):  # YAML reads "1e-4" as a string; accept it as the official files do
        v = float(v)
    if not (_is_int(v) or isinstance(v, float)):
        raise ValueError
    return float(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError
    return v


def _int_list(v: Any) -> List[int]:
    if not isinstance(v, list) or not all(_is_int(x) for x in v):
        raise ValueError
    return v


def _float_pair(v: Any) -> List[float]:
    if not isinstance(v, list) or len(v) != 2:
        raise ValueError
    return [_float(x) for x in v]


def _int_or_int_list(v: Any):
    return _int_list(v) if isinstance(v, list) else _int(v)


def _str_or_str_list(v: Any):
    if isinstance(v, list):
        if not all(isinstance(x, str) for x in v):
            raise ValueError
        return v
    return _str(v)


def _bool_or_str(v: Any):
    return v if isinstance(v, (bool, str)) else _fail()


def _fail():
    raise ValueError


@dataclass(frozen=True)
class Key:
    """One option: how to check it, its default, and a line of documentation."""

    check: Callable[[Any], Any]
    expected: str
    default: Any = None
    doc: str = ""
    choices: Optional[Tuple[Any, ...]] = None
    bounds: Optional[Tuple[float, float]] = None
    required: bool = False
    path: bool = False  # a file system path: relative values resolve against path.root
    nullable: Optional[bool] = None  # may the file say null? default: only if the default is null

    def allows_null(self) -> bool:
        return self.default is None if self.nullable is None else self.nullable


def INT(default=None, doc="", bounds=None, required=False, nullable=None):
    expected = "an integer" if bounds is None else f"an integer in {bounds[0]}..{bounds[1]}"
    return Key(_int, expected, default, doc, bounds=bounds, required=required, nullable=nullable)


def FLOAT(default=None, doc="", required=False):
    return Key(_float, "a number", default, doc, required=required)


def BOOL(default=None, doc=""):
    return Key(_bool, "true or false", default, doc)


def STR(default=None, doc="", choices=None, required=False, nullable=None):
    expected = "a string" if choices is None else "one of " + ", ".join(map(str, choices))
    return Key(_str, expected, default, doc, choices=choices, required=required, nullable=nullable)


def PATH(default=None, doc="", required=False, many=False):
    check = _str_or_str_list if many else _str
    expected = "a path or a list of paths" if many else "a path"
    return Key(check, expected, default, doc, required=required, path=True)


class Each(dict):
    """A section whose children have free names (``datasets.<phase>``), each with this schema."""


SCHEDULE = {
    "value": INT(None, "number of epochs (mode: epoch) or steps (mode: step) to train"),
    "lr": FLOAT(1e-4, "learning rate of the main optimizer (Adam)"),
    "lr_aux": FLOAT(1e-3, "learning rate of the auxiliary optimizer (entropy bottleneck quantiles)"),
    "lr_scheme": STR("LambdaLR", "learning-rate schedule", SCHEMES),
    "warm_up_counts": INT(0, "LambdaLR: linear warm-up length, in epochs or steps"),
    "milestones": Key(_int_list, "a list of integers", [], "LambdaLR / MultiStepLR: where the rate is multiplied by gamma"),
    "gamma": FLOAT(0.1, "factor applied at each milestone (or on plateau)"),
    "patience": INT(10, "ReduceLROnPlateau: validations without improvement before the rate drops"),
    "val_freq": INT(1, "validate every this many epochs (mode: epoch) or steps (mode: step)"),
}

DATASET = {
    "root": PATH(None, "data folder, annotation JSON (SIDD training) or .mat / block folder (SIDD blocks)", required=True),
    "name": STR(None, "data set kind: a registered data set name (`dic list datasets`)", required=True),
    "patch_size": INT(256, "training: random crop size; validation: centre crop size"),
    "batch_size": INT(1, "images per step, summed over all processes when distributed"),
    "n_workers": INT(0, "data-loading worker processes (per process)"),
    "use_shuffle": BOOL(True, "shuffle the training set each epoch"),
    "level": Key(_int_or_int_list, "an integer in 1..4 or a list of them", None, "synthetic-test: noise level 1–4, or a list (one report each)"),
    "legacy_gamma": BOOL(False, "use the official releases' non-standard sRGB curves to synthesise noise"),
    "crops_per_image": INT(60, "SIDD training: random crops per image per epoch"),
    "skip_small": BOOL(False, "skip images smaller than patch_size with a warning instead of failing"),
    "max_images": INT(None, "use only the first this many images (quick runs)"),
    "estimation": BOOL(False, "evaluation: estimate bpp from likelihoods (forward) instead of coding"),
    "noise_on_device": BOOL(False, "training, synthetic: the loader gives clean crops and noise parameters, and the training step synthesises the noise on the training device (from a per-item seed: exact resume holds, the draws differ from the loader's)"),
    "noise_log10_read": Key(_float_pair, "two numbers [low, high]", [-3.0, -1.5], "training, synthetic: log10 σ_read is drawn uniformly from [low, high]; the default is the papers' range, which stops below levels 3–4 (docs/data.md §1)"),
    "noise_log10_shot": Key(_float_pair, "two numbers [low, high]", [-4.0, -2.0], "training, synthetic: log10 σ_shot is drawn uniformly from [low, high] (papers: [-4, -2])"),
    "use_hflip": BOOL(False, "training, synthetic: mirror each crop left–right at random (the papers: no)"),
    "use_rot": BOOL(False, "training, synthetic: turn each crop by a random multiple of 90° and flip it top–bottom at random (the papers: no)"),
    "channel_shuffle": BOOL(False, "training, synthetic: put each crop's colour channels in a random order, so few similarly coloured photographs do not fix the model's palette (the papers: no; docs/data.md §1)"),
    "channel_gain": FLOAT(0.0, "training, synthetic: multiply each colour channel of each crop by its own exp(U(-g, g)), a random white-balance shift (0: off; the papers: off; docs/data.md §1)"),
    "cuda": BOOL(False, "official key, ignored: the device comes from gpu_ids"),
}

#: Keys every data set section takes, whatever its kind: the loader's and the evaluator's. Any
#: other key must be a constructor argument of the data set class (:func:`dataset_keys`).
PHASE_KEYS = frozenset({"root", "name", "batch_size", "n_workers", "use_shuffle", "estimation", "cuda"})


def dataset_keys(name: str) -> FrozenSet[str]:
    """The option keys a ``datasets.<phase>`` section of data set ``name`` takes: the phase-wide
    ones and its class's constructor arguments (``root`` and ``mode`` come from the phase)."""
    parameters = inspect.signature(DATASETS.get(name)).parameters
    return PHASE_KEYS | (frozenset(parameters) - {"mode"})


def datasets_taking(key: str) -> List[str]:
    """The registered data sets whose sections take ``key``."""
    return [name for name in DATASETS.names() if key in dataset_keys(name)]


NETWORK = {
    "model": STR(None, "model name: a registered model (`dic list models`)", required=True),
    "quality": INT(None, "quality level 1–6: sets N and the default λ", bounds=(1, 6)),
    "criterions": {
        "criterion_metric": STR("mse", "distortion loss: mse or ms-ssim (`dic list losses`)"),
        "criterion_fea": STR("l1", "guidance loss on y and y_inter: l1 or l2; null: none", nullable=True),
        "criterion_adv": STR(None, "official key, unsupported: must stay null"),
    },
    "lambdas": {
        "lambda_metric": FLOAT(None, "λ of the distortion term; null: the standard table for quality and metric"),
        "lambda_fea": FLOAT(3.0, "λ of the guidance loss"),
    },
    "alphas": {
        "alpha_metric": FLOAT(1.0, "our own extra factor on the distortion term (1: none); not the papers': the releases' files have this key but their criterion never reads it, and the paper files leave it out"),
        "alpha_fea": FLOAT(1.0, "our own extra factor on the guidance term (1: none); not the papers': the releases' files have this key but their criterion never reads it, and the paper files leave it out"),
    },
    "pretrained": Key(_bool_or_str, "true, false, 'compressai' or a path", False,
                      "warm start: a checkpoint path (CompressAI's Cheng2020-anchor, or a training checkpoint of this model or of cheng2020-anchor; relative to path.root), or true / 'compressai' for CompressAI's downloadable weights"),
}
NETWORK_FIXED = set(NETWORK)

SCHEMA: Dict[str, Any] = {
    "name": STR(None, "run name: outputs go to experiments/<name> and results/<name>", required=True),
    "use_tb_logger": BOOL(True, "write TensorBoard logs to tb_logger/<name>"),
    "gpu_ids": Key(_int_list, "a list of integers", None, "GPUs to use; null or []: CPU (a missing GPU falls back to CPU with a warning)"),
    "manual_seed": INT(None, "random seed; null: drawn at random and logged"),
    "datasets": Each(DATASET),
    "network": NETWORK,
    "train": {
        "mode": STR("epoch", "count training in epochs or steps; the matching section below is used", ("epoch", "step")),
        "epoch": SCHEDULE,
        "step": SCHEDULE,
        "clip_max_norm": FLOAT(1.0, "gradient-norm clipping of the main optimizer (0: off)"),
        "loss_cap": FLOAT(100.0, "a step whose main loss is outside [0, loss_cap) (NaN, infinite, negative, or at least this) is capped (see loss_cap_mode); under DDP a bad loss on any process caps the step on all"),
        "loss_cap_mode": STR("skip", "what a capped step does: 'skip' updates nothing; 'zero_grad' (the official releases under PyTorch 1.x) back-propagates, then fills the main and the auxiliary gradients with zeros and steps both Adams, whose moments alone move the weights and the quantiles (whatever the installed PyTorch's zero_grad() does)", LOSS_CAP_MODES),
        "amp": STR("off", "CUDA mixed precision of the transforms (entropy model stays fp32)", AMP_MODES),
        "channels_last": BOOL(False, "CUDA: model and batches in channels_last memory format (same losses to float rounding); ignored with a warning on the CPU, where torch 2.14.1 crashes in its backward pass"),
        "fused_adam": BOOL(False, "both Adams as torch's fused kernels (one launch for all parameters; CUDA or CPU); the same updates to float rounding"),
        "sync_free_cap": BOOL(False, "decide the loss cap on the device, without reading the loss on the host each step: a capped step's main and auxiliary gradients are zeroed with a device-side mask; needs loss_cap_mode: zero_grad; capped steps are counted and logged every print_freq steps"),
        "compile": BOOL(False, "run the forward pass through torch.compile (inductor); the first step compiles (minutes on a CPU); inductor draws the training quantisation noise with its own generator (same distribution, other draws than eager)"),
    },
    "path": {
        "root": PATH(None, "folder that relative paths and experiments/, results/, tb_logger/ resolve against; null: the project root"),
        "resume": STR("auto", "training: 'auto' (latest checkpoint of this run name, if any), 'none', or a checkpoint path"),
        "checkpoint": PATH(None, "training: official key, same as resume: <path>; testing: checkpoint(s) to evaluate, one per quality", many=True),
        "update": BOOL(True, "testing: rebuild the entropy coder tables (update(force=True)) after loading"),
    },
    "logger": {
        "print_freq": INT(100, "log training losses every this many steps"),
        "save_checkpoint_freq": INT(10, "keep a numbered checkpoint every this many epochs (or steps)"),
        "num_val_images": INT(4, "validation images saved as PNG and shown in TensorBoard"),
    },
    "test": {
        "protocol": STR("pad", "evaluation: 'pad' codes the whole image (padded to a multiple of 64); 'crop' centre-crops to a multiple of 64; 'official' measures exactly as the papers' releases (docs/reproducing.md)", PROTOCOLS),
        "save_images": BOOL(False, "evaluation: save decoded images as PNG"),
        "precision": STR("float32", "evaluation: arithmetic of the models' analysis and synthesis transforms (docs/precision.md): float32 (the papers'), bfloat16, float16 (CUDA), or auto (bfloat16 where this machine runs it fast, else float32); the entropy coding is exact whatever it is; recorded in each report", PRECISIONS),
        "baselines": Key(_str_or_str_list, "a list of baseline names", [],
                         "evaluation: classical sequential baselines on the same noisy inputs: nlm-jpeg, nlm-webp, bm3d-jpeg, bm3d-webp (need the bm3d package), jpeg, webp (codec only)"),
        "baseline_qualities": Key(_int_list, "a list of integers", [5, 10, 20, 30, 40, 50, 60, 70, 80, 90],
                                  "evaluation: JPEG / WebP quality ladder of the baselines (1–100)"),
        "denoiser": PATH(None, "evaluation: learned sequential baseline: this checkpoint's reconstruction is coded by each path.checkpoint (e.g. cheng2020-anchor)"),
        "denoiser_model": STR(None, "evaluation: architecture of test.denoiser when it is an official checkpoint"),
    },
}

# Filled in by load_options, never read from a file.
DERIVED_PATHS = ("experiments_root", "checkpoints", "log", "val_samples", "tb_logger", "results_root", "option_file")


