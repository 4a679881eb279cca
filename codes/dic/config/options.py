"""YAML option files → validated, defaulted, path-resolved options.

The key layout is the official releases' (``name``, ``datasets.<phase>``, ``network``, ``train``,
``path``, ``logger``), so their files run once their paths point at local data. Every key, its
type and its default live in :data:`SCHEMA`; ``docs/options.md`` is generated from it.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

from ..errors import ArgumentError, OptionError
from ..fileio import atomic_write_text
from ..data import DATASETS
from ..losses import LOSSES
from ..models import MODELS, model_hparams
from ..registry import Registry, did_you_mean

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
    "lr_scheme": STR("LambdaLR", "learning-rate schedule", ("LambdaLR", "MultiStepLR", "ReduceLROnPlateau")),
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
        "alpha_metric": FLOAT(1.0, "official key: extra factor on the distortion term"),
        "alpha_fea": FLOAT(1.0, "official key: extra factor on the guidance term"),
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
        "loss_cap_mode": STR("skip", "what a capped step does: 'skip' updates nothing; 'zero_grad' (the official releases) zeroes the main gradients yet still steps the main Adam (its moments keep moving the weights), and trains the auxiliary loss as usual", ("skip", "zero_grad")),
        "amp": STR("off", "CUDA mixed precision of the transforms (entropy model stays fp32)", ("off", "bf16", "fp16")),
        "channels_last": BOOL(False, "CUDA: model and batches in channels_last memory format (same losses to float rounding); ignored with a warning on the CPU, where torch 2.14.1 crashes in its backward pass"),
        "fused_adam": BOOL(False, "both Adams as torch's fused kernels (one launch for all parameters; CUDA or CPU); the same updates to float rounding"),
        "sync_free_cap": BOOL(False, "decide the loss cap on the device, without reading the loss on the host each step: a capped step's main gradients are zeroed with a device-side mask; needs loss_cap_mode: zero_grad; capped steps are counted and logged every print_freq steps"),
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
        "protocol": STR("pad", "evaluation: 'pad' codes the whole image (padded to a multiple of 64); 'crop' centre-crops to a multiple of 64; 'official' measures exactly as the papers' releases (docs/reproducing.md)", ("pad", "crop", "official")),
        "save_images": BOOL(False, "evaluation: save decoded images as PNG"),
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


# --------------------------------------------------------------------------------------------
class Options(dict):
    """A nested dict that also reads as attributes: ``opt.network.model``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as e:
            raise AttributeError(key) from e

    @staticmethod
    def wrap(value: Any) -> Any:
        if isinstance(value, Mapping):
            return Options({k: Options.wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return [Options.wrap(v) for v in value]
        return value

    def to_dict(self) -> Dict[str, Any]:
        return _plain(self)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Validator:
    """Walks a raw option tree against SCHEMA, filling defaults and collecting the first error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> None:
        raise OptionError(f"{self.source}: {key}: {message}")

    def section(self, raw: Any, schema: Mapping, prefix: str) -> Dict[str, Any]:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.fail(prefix, f"got {raw!r}, expected a section of keys")
        out: Dict[str, Any] = {}
        for key, value in raw.items():
            if key not in schema:
                if prefix == "path" and key in DERIVED_PATHS:
                    continue  # written by save_options; recomputed from path.root and name
                if prefix == "network" and key not in NETWORK_FIXED:
                    out[key] = value  # model hyper-parameter, checked against the model below
                    continue
                self.fail(self.dotted(prefix, key), f"unknown key{did_you_mean(key, list(schema))}; "
                          f"allowed here: {', '.join(schema)}")
        for key, spec in schema.items():
            dotted = self.dotted(prefix, key)
            value = raw.get(key)
            if isinstance(spec, Each):
                out[key] = self.each(value, spec, dotted)
            elif isinstance(spec, Mapping):
                out[key] = self.section(value, spec, dotted)
            else:
                out[key] = self.value(value, spec, dotted, present=key in raw)
        return out

    def each(self, raw: Any, schema: Mapping, prefix: str) -> Dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(prefix, f"got {raw!r}, expected a section of named entries")
        return {name: self.section(entry, schema, f"{prefix}.{name}") for name, entry in raw.items()}

    def value(self, value: Any, spec: Key, key: str, present: bool) -> Any:
        if value is None:
            if spec.required:
                self.fail(key, f"missing; expected {spec.expected} ({spec.doc})")
            if not present:
                return copy.deepcopy(spec.default)
            if not spec.allows_null():
                self.fail(key, f"got null, expected {spec.expected}")
            return None
        try:
            value = spec.check(value)
        except (ValueError, TypeError):
            self.fail(key, f"got {value!r} ({type(value).__name__}), expected {spec.expected}")
        if spec.choices is not None and value not in spec.choices:
            self.fail(key, f"got {value!r}, expected one of {', '.join(map(str, spec.choices))}"
                           f"{did_you_mean(value, list(spec.choices))}")
        if spec.bounds is not None and not spec.bounds[0] <= value <= spec.bounds[1]:
            self.fail(key, f"got {value!r}, expected {spec.expected}")
        return value

    @staticmethod
    def dotted(prefix: str, key: str) -> str:
        return f"{prefix}.{key}" if prefix else key


# --------------------------------------------------------------------------------------------
def parse_overrides(pairs: Iterable[str]) -> List[Tuple[str, Any]]:
    """``["train.epoch.value=2", "datasets.train.batch_size=4"]`` → (dotted key, YAML value) pairs."""
    out = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--set {pair!r}: expected KEY=VALUE, e.g. train.epoch.value=2")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise OptionError(f"--set {pair!r}: the value is not valid YAML ({e})") from None
        out.append((key.strip(), value))
    return out


def apply_overrides(raw: Dict[str, Any], overrides: Sequence[Tuple[str, Any]]) -> Dict[str, Any]:
    """Set each dotted key in the raw tree, creating sections as needed."""
    for key, value in overrides:
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise OptionError(f"--set {key}: '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return raw


def read_yaml(path: Path) -> Dict[str, Any]:
    """Read an option file; a missing file or bad YAML is an OptionError naming the file."""
    if not path.is_file():
        raise OptionError(f"{path}: option file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise OptionError(f"{path}: not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise OptionError(f"{path}: expected a mapping of option keys at the top level")
    return raw


def project_root_for(option_file: Path) -> Path:
    """Default ``path.root``: the folder holding the ``conf/`` folder the option file lives in,
    else the option file's own folder."""
    for parent in option_file.resolve().parents:
        if parent.name == "conf":
            return parent.parent
    return option_file.resolve().parent


def load_options(path: str | os.PathLike, overrides: Iterable[str] | Sequence[Tuple[str, Any]] = (),
                 is_train: bool = True) -> Options:
    """Read, override, validate and resolve an option file.

    Relative paths resolve against ``path.root`` (default: the project root, the parent of
    the ``conf/`` folder holding the file, else the file's folder), never against the shell's
    current directory.
    """
    path = Path(path)
    raw = read_yaml(path)
    overrides = list(overrides)
    if overrides and isinstance(overrides[0], str):
        overrides = parse_overrides(overrides)
    raw = apply_overrides(raw, overrides)
    opt = _Validator(str(path)).section(raw, SCHEMA, "")
    _check_semantics(opt, str(path), is_train)
    _resolve_paths(opt, path)
    opt["is_train"] = is_train
    return Options.wrap(opt)


def validate_options(raw: Dict[str, Any], source: str = "<options>", is_train: bool = True,
                     base: Optional[Path] = None) -> Options:
    """Validate an already-read option tree (e.g. built in code); paths resolve against ``base``."""
    opt = _Validator(source).section(copy.deepcopy(raw), SCHEMA, "")
    _check_semantics(opt, source, is_train)
    _resolve_paths(opt, (base or Path.cwd()) / "options.yml")
    opt["is_train"] = is_train
    return Options.wrap(opt)


def validate_section(raw: Mapping[str, Any], key: str, source: str = "<options>") -> Options:
    """One section of an option tree (``network``, ``datasets.<phase>``...) checked against the
    schema, with every missing key set to its default; paths are left as given. For building
    library objects from a section alone (:mod:`dic.config.build`)."""
    schema: Any = SCHEMA
    for part in key.split("."):
        schema = schema if isinstance(schema, Each) else schema[part]
    return Options.wrap(_Validator(source).section(copy.deepcopy(dict(raw)), schema, key))


def _check_semantics(opt: Dict[str, Any], source: str, is_train: bool) -> None:
    """Checks that span keys: registered names, model hyper-parameters, phases, mode section."""
    fail = _Validator(source).fail
    network = opt["network"]
    _check_registered(MODELS, network["model"], "network.model", fail)
    _check_model_hparams(network, fail)
    for key in ("criterion_metric", "criterion_fea"):
        if network["criterions"][key] is not None:
            _check_registered(LOSSES, network["criterions"][key], f"network.criterions.{key}", fail)
    if network["criterions"]["criterion_adv"] is not None:
        fail("network.criterions.criterion_adv", "adversarial training is not supported; expected null")
    for phase, dataset in opt["datasets"].items():
        _check_registered(DATASETS, dataset["name"], f"datasets.{phase}.name", fail)
        levels = dataset["level"] if isinstance(dataset["level"], list) else [dataset["level"]]
        if not levels:
            fail(f"datasets.{phase}.level", "an empty list; expected an integer in 1..4 or a list of them")
        for level in levels:
            if level is not None and not 1 <= level <= 4:
                fail(f"datasets.{phase}.level", f"got {level!r}, expected an integer in 1..4")
    if is_train:
        for phase in ("train", "val"):
            if phase not in opt["datasets"]:
                fail(f"datasets.{phase}", "missing; training needs a 'train' and a 'val' data set")
        for phase in opt["datasets"]:
            if phase not in ("train", "val"):
                fail(f"datasets.{phase}", f"unknown training phase{did_you_mean(phase, ['train', 'val'])}; expected train or val")
        mode = opt["train"]["mode"]
        if opt["train"][mode]["value"] is None:
            fail(f"train.{mode}.value", f"missing; expected the number of {mode}s to train")
    elif not opt["datasets"]:
        fail("datasets", "missing; evaluation needs at least one data set")


def _check_registered(registry: Registry, name: str, key: str, fail: Callable[[str, str], None]) -> None:
    """``name`` (the value of option ``key``) must be registered."""
    try:
        registry.get(name)
    except ArgumentError as e:
        fail(key, e.detail)


def _check_model_hparams(network: Dict[str, Any], fail: Callable[[str, str], None]) -> None:
    """Keys under ``network`` beyond the fixed ones must be the model's constructor arguments."""
    allowed = model_hparams(network["model"])
    for key in set(network) - NETWORK_FIXED:
        if key not in allowed or key == "quality":
            fail(f"network.{key}", f"unknown key for model '{network['model']}'"
                 f"{did_you_mean(key, list(allowed) + list(NETWORK_FIXED))}; its hyper-parameters: "
                 f"{', '.join(k for k in allowed if k != 'quality')}")


def _resolve_paths(opt: Dict[str, Any], option_file: Path) -> None:
    path_opt = opt["path"]
    root = Path(os.path.expanduser(path_opt["root"])) if path_opt["root"] else project_root_for(option_file)
    if not root.is_absolute():
        root = option_file.resolve().parent / root
    root = root.resolve()
    path_opt["root"] = str(root)

    def resolve(value):
        if isinstance(value, list):
            return [resolve(v) for v in value]
        p = Path(os.path.expanduser(value))
        return str(p if p.is_absolute() else (root / p).resolve())

    for dataset in opt["datasets"].values():
        dataset["root"] = resolve(dataset["root"])
    if path_opt["checkpoint"]:
        path_opt["checkpoint"] = resolve(path_opt["checkpoint"])
    if path_opt["resume"] not in ("auto", "none"):
        path_opt["resume"] = resolve(path_opt["resume"])
    pretrained = opt["network"]["pretrained"]
    if isinstance(pretrained, str) and pretrained != "compressai":
        opt["network"]["pretrained"] = resolve(pretrained)

    name = opt["name"]
    experiments = root / "experiments" / name
    path_opt.update(
        experiments_root=str(experiments),
        checkpoints=str(experiments / "checkpoints"),
        log=str(experiments),
        val_samples=str(experiments / "val_samples"),
        tb_logger=str(root / "tb_logger" / name),
        results_root=str(root / "results" / name),
        option_file=str(option_file.resolve()),
    )


def check_data_roots(opt: Mapping[str, Any]) -> None:
    """Every data set root must exist: a clear error before any work starts."""
    for phase, dataset in opt["datasets"].items():
        if not os.path.exists(dataset["root"]):
            raise OptionError(f"{opt['path']['option_file']}: datasets.{phase}.root: "
                              f"{dataset['root']} does not exist; expected a data folder or file")


def save_options(opt: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write the resolved options as YAML, atomically (temp file then rename)."""
    plain = {k: v for k, v in _plain(opt).items() if k != "is_train"}
    atomic_write_text(path, yaml.safe_dump(plain, sort_keys=False))


# --------------------------------------------------------------------------------------------
def describe() -> str:
    """Every option key, its type, default and meaning, as a Markdown table (docs/options.md)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def walk(schema: Mapping, prefix: str) -> None:
        for key, spec in schema.items():
            dotted = f"{prefix}.{key}" if prefix else key
            if isinstance(spec, Each):
                walk(spec, f"{dotted}.<phase>")
            elif isinstance(spec, Mapping):
                walk(spec, dotted)
            else:
                default = "required" if spec.required else f"`{yaml.safe_dump(spec.default, default_flow_style=True).strip().removesuffix('...').strip()}`"
                rows.append(f"| `{dotted}` | {spec.expected} | {default} | {spec.doc} |")

    walk(SCHEMA, "")
    return "\n".join(rows) + "\n"
