"""The option loader: YAML file + ``--set`` overrides → validated, defaulted, path-resolved options.

The key layout is the official releases' (``name``, ``datasets.<phase>``, ``network``, ``train``,
``path``, ``logger``), so their files run once their paths point at local data. Every key, its
type, default and allowed values live in the schema (:mod:`.schema`). No key is ever ignored: a
key the schema, the model or the data set does not take is an error naming the file (or
``--set``) and the key.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import yaml

from ..data import DATASETS
from ..errors import ArgumentError, OptionError
from ..fileio import atomic_write_text
from ..losses import LOSSES
from ..models import MODELS, model_hparams
from ..registry import Registry, did_you_mean
from .schema import DERIVED_PATHS, NETWORK_FIXED, SCHEMA, Each, Key, dataset_keys


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
    """Walks a raw option tree against SCHEMA, filling defaults and raising at the first error.
    ``overridden``: the dotted keys set by ``--set``, whose errors name ``--set``, not the file.
    ``given`` collects, per section, the keys the file or ``--set`` set to a value."""

    def __init__(self, source: str, overridden: Iterable[str] = ()):
        self.source = source
        self.overridden: Set[str] = set(overridden)
        self.given: Dict[str, Set[str]] = {}

    def fail(self, key: str, message: str) -> None:
        raise OptionError(message, key=key, source=self.source, by_set=key in self.overridden)

    def section(self, raw: Any, schema: Mapping, prefix: str) -> Dict[str, Any]:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.fail(prefix, f"got {raw!r}, expected a section of keys")
        out: Dict[str, Any] = {}
        self.given[prefix] = {key for key, value in raw.items() if value is not None}
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


def named_by_set(error: OptionError, overridden: Iterable[str]) -> OptionError:
    """``error`` naming ``--set`` when its key is one of the ``overridden`` keys (or lies under
    one: ``network.N`` under ``--set network={...}``), else ``error`` unchanged. For errors
    found after loading, while building a run: the applications pass the ``--set`` keys
    (:func:`parse_overrides`), so these name ``--set`` as the loader's own errors do."""
    key = error.key
    if key is None or error.by_set:
        return error
    if any(key == k or key.startswith(k + ".") for k in overridden):
        return error.named_by_set()
    return error


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
    validator = _Validator(str(path), overridden=(key for key, _ in overrides))
    opt = validator.section(raw, SCHEMA, "")
    _check_semantics(opt, validator, is_train)
    _resolve_paths(opt, path)
    opt["is_train"] = is_train
    return Options.wrap(opt)


def validate_options(raw: Dict[str, Any], source: str = "<options>", is_train: bool = True,
                     base: Optional[Path] = None) -> Options:
    """Validate an already-read option tree (e.g. built in code); paths resolve against ``base``."""
    validator = _Validator(source)
    opt = validator.section(copy.deepcopy(raw), SCHEMA, "")
    _check_semantics(opt, validator, is_train)
    _resolve_paths(opt, (base or Path.cwd()) / "options.yml")
    opt["is_train"] = is_train
    return Options.wrap(opt)


def validate_section(raw: Mapping[str, Any], key: str, source: str = "<options>") -> Options:
    """One section of an option tree (``network``, ``datasets.<phase>``...) checked against the
    schema, with every missing key set to its default; paths are left as given. For building
    library objects from a section alone (:mod:`dic.config.build`). A section may arrive with
    every key already at its default (a loaded file's): a key its data set does not take is an
    error when it holds a value other than the schema's default."""
    schema: Any = SCHEMA
    for part in key.split("."):
        schema = schema if isinstance(schema, Each) else schema[part]
    validator = _Validator(source)
    section = validator.section(copy.deepcopy(dict(raw)), schema, key)
    if key.startswith("datasets."):
        validator.given[key] = {k for k in validator.given[key]
                                if not (isinstance(schema.get(k), Key) and raw[k] == schema[k].default)}
        _check_dataset_keys(section, key, validator)
    return Options.wrap(section)


def _check_semantics(opt: Dict[str, Any], validator: _Validator, is_train: bool) -> None:
    """Checks that span keys: registered names, model hyper-parameters, the keys each data set
    takes, phases, mode section."""
    fail = validator.fail
    network = opt["network"]
    _check_registered(MODELS, network["model"], "network.model", fail)
    _check_model_hparams(network, fail)
    for key in ("criterion_metric", "criterion_fea"):
        if network["criterions"][key] is not None:
            _check_registered(LOSSES, network["criterions"][key], f"network.criterions.{key}", fail)
    if network["criterions"]["criterion_adv"] is not None:
        fail("network.criterions.criterion_adv", "adversarial training is not supported; expected null")
    for phase, dataset in opt["datasets"].items():
        _check_dataset_keys(dataset, f"datasets.{phase}", validator)
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


def _check_dataset_keys(dataset: Dict[str, Any], section: str, validator: _Validator) -> None:
    """Every key the section sets must be one its data set takes (:func:`.schema.dataset_keys`):
    a key it would not use (``level`` on ``sidd``, ``crops_per_image`` on ``synthetic``) is an
    error, never silently dropped."""
    name = dataset["name"]
    _check_registered(DATASETS, name, f"{section}.name", validator.fail)
    accepted = dataset_keys(name)
    for key in sorted(validator.given.get(section, set()) - accepted):
        others = sorted(accepted - {"root", "name", "cuda"})
        validator.fail(f"{section}.{key}", f"the '{name}' data set does not take this key; "
                       f"it takes: {', '.join(others)}")


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
            raise OptionError(f"{dataset['root']} does not exist; expected a data folder or file",
                              key=f"datasets.{phase}.root", source=opt["path"]["option_file"])


def save_options(opt: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write the resolved options as YAML, atomically (temp file then rename); each data set
    section holds only the keys its data set takes, so the file loads back as it is."""
    plain = {k: v for k, v in _plain(opt).items() if k != "is_train"}
    for phase, dataset in plain.get("datasets", {}).items():
        accepted = dataset_keys(dataset["name"])
        plain["datasets"][phase] = {k: v for k, v in dataset.items() if k in accepted}
    atomic_write_text(path, yaml.safe_dump(plain, sort_keys=False))
