"""Option files: defaults, validation messages, overrides, path resolution, official layout."""
import argparse
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dic.errors import OptionError
from dic.config.build import build_model, model_kwargs
from dic.config import describe, load_options, check_data_roots, named_by_set, save_options, validate_section
from dic.config.schema import NETWORK
from dic.models import model_hparams
from dic.models import MODELS

REPO = Path(__file__).resolve().parents[1]

# The official release's training file for multiscale-decomp MSE q1, with its data paths changed.
OFFICIAL_TRAIN = """\
#### general settings
name: multiscale-decomp_mse_q1
use_tb_logger: true
gpu_ids: [0]
# manual_seed: 1
datasets:
  train:
    root: data/flicker/train
    name: synthetic
    patch_size: 256
    batch_size: 16
    n_workers: 4
    use_shuffle: true
  val:
    root: data/flicker/val
    name: synthetic
    patch_size: 256
    batch_size: 1
    n_workers: 0
    use_shuffle: false
network:
  model: multiscale-decomp
  quality: 1
  criterions:
    criterion_metric: mse
    criterion_fea: l1
  lambdas:
    lambda_metric: 0.0018
    lambda_fea: 3.
  alphas:
    alpha_metric: 1.
    alpha_fea: 1.
  pretrained: true
train:
  mode: epoch
  epoch:
    value: 600
    lr: !!float 1e-4
    lr_aux: !!float 1e-3
    lr_scheme: LambdaLR
    warm_up_counts: 20
    milestones: [450, 550]
    gamma: 0.1
    val_freq: 1
  clip_max_norm: 1.0
  loss_cap: 100
path:
  root: {root}
logger:
  print_freq: 100
  save_checkpoint_freq: 10
"""

OFFICIAL_TEST = """\
name: multiscale-decomp_mse_q1
use_tb_logger: true
gpu_ids: [0]
datasets:
  kodak_level1:
    root: data/kodak
    name: synthetic-test
    level: 1
    batch_size: 1
    n_workers: 0
    use_shuffle: false
    cuda: false
    estimation: false
network:
  model: multiscale-decomp
path:
  root: {root}
  checkpoint: experiments/multiscale-decomp_mse_q1/checkpoints/checkpoint_best_loss.pth.tar
  update: true
"""


def write(tmp_path: Path, text: str, name: str = "opt.yml") -> Path:
    path = tmp_path / name
    path.write_text(text.format(root=tmp_path))
    return path


def official(tmp_path: Path) -> dict:
    return yaml.safe_load(OFFICIAL_TRAIN.format(root=tmp_path))


def error_of(tmp_path: Path, raw: dict, **kwargs) -> str:
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(OptionError) as info:
        load_options(path, **kwargs)
    return str(info.value)


def test_official_training_file_validates(tmp_path):
    opt = load_options(write(tmp_path, OFFICIAL_TRAIN))
    assert opt.network.model == "multiscale-decomp"
    assert opt["train"]["epoch"]["lr"] == pytest.approx(1e-4)
    assert opt.train.epoch.milestones == [450, 550]
    assert opt.datasets.train.root == str(tmp_path / "data/flicker/train")
    assert opt.path.experiments_root == str(tmp_path / "experiments/multiscale-decomp_mse_q1")
    # defaults fill keys the file does not mention
    assert opt.train.amp == "off" and opt.datasets.train.legacy_gamma is False


def test_official_test_file_validates(tmp_path):
    opt = load_options(write(tmp_path, OFFICIAL_TEST), is_train=False)
    assert opt.datasets.kodak_level1.level == 1
    assert opt.path.checkpoint.endswith("checkpoint_best_loss.pth.tar")
    assert opt.path.results_root == str(tmp_path / "results/multiscale-decomp_mse_q1")


def test_round_trip_through_saved_options(tmp_path):
    opt = load_options(write(tmp_path, OFFICIAL_TRAIN))
    save_options(opt, tmp_path / "saved/options.yml")
    again = load_options(tmp_path / "saved/options.yml")
    assert again.to_dict() == {**opt.to_dict(), "path": {**opt.path, "option_file": again.path.option_file}}
    assert "is_train" not in (tmp_path / "saved/options.yml").read_text()


def test_overrides_set_nested_keys_with_yaml_values(tmp_path):
    opt = load_options(write(tmp_path, OFFICIAL_TRAIN),
                       ["train.epoch.value=2", "datasets.train.batch_size=4", "network.lambdas.lambda_fea=0.5",
                        "train.epoch.milestones=[1, 2]"])
    assert opt.train.epoch.value == 2 and opt.datasets.train.batch_size == 4
    assert opt.network.lambdas.lambda_fea == 0.5 and opt.train.epoch.milestones == [1, 2]


def test_override_of_unknown_key_is_rejected(tmp_path):
    with pytest.raises(OptionError, match=r"train\.epoch\.vale: unknown key \(did you mean 'value'\?\)"):
        load_options(write(tmp_path, OFFICIAL_TRAIN), ["train.epoch.vale=3"])


def test_malformed_override(tmp_path):
    with pytest.raises(OptionError, match="expected KEY=VALUE"):
        load_options(write(tmp_path, OFFICIAL_TRAIN), ["train.epoch.value"])


def test_unknown_key_suggests_the_close_one(tmp_path):
    raw = official(tmp_path)
    raw["network"]["qualty"] = 3
    message = error_of(tmp_path, raw)
    assert "bad.yml: network.qualty: unknown key" in message and "did you mean 'quality'?" in message


def test_unknown_top_level_key(tmp_path):
    raw = official(tmp_path)
    raw["loger"] = {}
    assert "loger: unknown key (did you mean 'logger'?)" in error_of(tmp_path, raw)


def test_wrong_type_names_key_value_and_expectation(tmp_path):
    raw = official(tmp_path)
    raw["datasets"]["train"]["batch_size"] = "four"
    assert "datasets.train.batch_size: got 'four' (str), expected an integer" in error_of(tmp_path, raw)


def test_training_noise_range_names_key_and_expectation(tmp_path):
    raw = official(tmp_path)
    raw["datasets"]["train"]["noise_log10_read"] = -1.0
    assert "datasets.train.noise_log10_read: got -1.0 (float), expected two numbers [low, high]" in error_of(tmp_path, raw)


def test_wrong_type_boolean(tmp_path):
    raw = official(tmp_path)
    raw["use_tb_logger"] = "yes please"
    assert "use_tb_logger: got 'yes please' (str), expected true or false" in error_of(tmp_path, raw)


@pytest.mark.parametrize("quality", [0, 7])
def test_quality_outside_range(tmp_path, quality):
    raw = official(tmp_path)
    raw["network"]["quality"] = quality
    assert f"network.quality: got {quality}, expected an integer in 1..6" in error_of(tmp_path, raw)


def test_unknown_model(tmp_path):
    raw = official(tmp_path)
    raw["network"]["model"] = "snr-decom"
    message = error_of(tmp_path, raw)
    assert "network.model: unknown model 'snr-decom' (did you mean 'snr-decomp'?)" in message


def test_unknown_dataset(tmp_path):
    raw = official(tmp_path)
    raw["datasets"]["train"]["name"] = "synthetc"
    message = error_of(tmp_path, raw)
    assert "datasets.train.name: unknown dataset 'synthetc' (did you mean 'synthetic'?)" in message


def test_unknown_loss(tmp_path):
    raw = official(tmp_path)
    raw["network"]["criterions"]["criterion_metric"] = "msssim"
    message = error_of(tmp_path, raw)
    assert "network.criterions.criterion_metric: unknown loss 'msssim' (did you mean 'ms-ssim'?)" in message


def test_unknown_model_hyper_parameter(tmp_path):
    raw = official(tmp_path)
    raw["network"]["nn"] = 16
    message = error_of(tmp_path, raw)
    assert "network.nn: unknown key for model 'multiscale-decomp'" in message and "N" in message


def test_known_model_hyper_parameter_is_kept(tmp_path):
    raw = official(tmp_path)
    raw["network"]["N"] = 16
    path = tmp_path / "ok.yml"
    path.write_text(yaml.safe_dump(raw))
    assert load_options(path).network.N == 16


def test_noise_level_outside_range(tmp_path):
    raw = yaml.safe_load(OFFICIAL_TEST.format(root=tmp_path))
    raw["datasets"]["kodak_level1"]["level"] = [1, 5]
    assert "datasets.kodak_level1.level: got 5, expected an integer in 1..4" in error_of(tmp_path, raw, is_train=False)


def test_training_needs_train_and_val(tmp_path):
    raw = official(tmp_path)
    del raw["datasets"]["val"]
    assert "datasets.val: missing; training needs a 'train' and a 'val' data set" in error_of(tmp_path, raw)


def test_missing_required_key(tmp_path):
    raw = official(tmp_path)
    del raw["name"]
    assert "bad.yml: name: missing; expected a string" in error_of(tmp_path, raw)


def test_missing_data_folder_is_named(tmp_path):
    opt = load_options(write(tmp_path, OFFICIAL_TRAIN))
    with pytest.raises(OptionError, match=r"datasets\.train\.root: .*data/flicker/train does not exist"):
        check_data_roots(opt)


def test_missing_option_file(tmp_path):
    with pytest.raises(OptionError, match="nope.yml: option file not found"):
        load_options(tmp_path / "nope.yml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(OptionError, match="broken.yml: not valid YAML"):
        load_options(path)


def test_relative_paths_resolve_against_project_root_not_cwd(tmp_path, monkeypatch):
    conf = tmp_path / "project" / "conf" / "train"
    conf.mkdir(parents=True)
    raw = official(tmp_path)
    del raw["path"]["root"]
    (conf / "x.yml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    opt = load_options(conf / "x.yml")
    assert opt.path.root == str(tmp_path / "project")
    assert opt.datasets.train.root == str(tmp_path / "project/data/flicker/train")


def test_options_documentation_is_up_to_date():
    documented = (REPO / "docs" / "options.md").read_text()
    assert describe() in documented, "regenerate docs/options.md: python scripts/make_options_doc.py"


def test_launcher_reports_bad_option_without_traceback(tmp_path):
    raw = official(tmp_path)
    raw["network"]["quality"] = 9
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(raw))
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "-opt", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "network.quality: got 9, expected an integer in 1..6" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_model_hyper_parameter_value_names_file_and_key(tmp_path):
    raw = official(tmp_path)
    raw["network"]["N"] = -4
    raw["network"]["pretrained"] = False
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(raw))
    opt = load_options(path)
    with pytest.raises(OptionError, match=r"bad\.yml: network\.N: expected a positive integer, got -4"):
        build_model(opt.network, opt.path.option_file)


def test_warm_start_is_logged_and_its_errors_name_file_and_key(tmp_path, caplog):
    import torch
    from compressai.models import Cheng2020Anchor

    from dic.errors import CheckpointError

    raw = official(tmp_path)
    raw["network"]["N"] = 16
    raw["network"]["pretrained"] = str(tmp_path / "missing.pth")
    path = tmp_path / "warm.yml"
    path.write_text(yaml.safe_dump(raw))
    opt = load_options(path)
    with pytest.raises(CheckpointError, match=r"warm\.yml: network\.pretrained: checkpoint .*missing\.pth does not exist"):
        build_model(opt.network, opt.path.option_file, warm_start=True)
    torch.save(Cheng2020Anchor(N=16).state_dict(), tmp_path / "missing.pth")
    with caplog.at_level("INFO", logger="dic"):
        build_model(opt.network, opt.path.option_file, warm_start=True)
    assert any("warm start: copied" in r.message and "missing.pth" in r.message for r in caplog.records)
    caplog.clear()
    build_model(opt.network, opt.path.option_file, warm_start=False)  # a resumed run: no warm start
    assert not any("warm start" in r.message for r in caplog.records)


@pytest.mark.parametrize("key, value, message", [
    ("N", 15, "network.N: snr-decomp needs an even width, got 15"),
    ("local_blocks", [2], r"network.local_blocks: expected two non-negative integers \[stage 1, stage 2\], got \[2\]"),
    ("num_heads", 0, "network.num_heads: expected a positive integer, got 0"),
])
def test_refused_model_values_name_file_and_key(tmp_path, key, value, message):
    raw = official(tmp_path)
    raw["network"].update(model="snr-decomp", pretrained=False, **{key: value})
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(raw))
    opt = load_options(path)
    with pytest.raises(OptionError, match="^" + str(path).replace(".", r"\.") + ": " + message):
        build_model(opt.network, opt.path.option_file)


def test_build_model_from_a_bare_section():
    """build_model checks a section it is handed against the schema and names the key of any
    value the model refuses (here an unknown hyper-parameter the loader would have caught)."""
    model = build_model({"model": "multiscale-decomp", "N": 16}, "x.yml")
    assert model.hparams == {"quality": None, "N": 16, "context": "serial"}
    with pytest.raises(OptionError, match=r"^x\.yml: network\.num_layer: unknown hyper-parameter for model "
                                          r"'snr-decomp' \(did you mean 'num_layers'\?\)"):
        build_model({"model": "snr-decomp", "num_layer": 2}, "x.yml")
    with pytest.raises(OptionError, match=r"^x\.yml: network\.model: unknown model 'snr-decom'"):
        build_model({"model": "snr-decom"}, "x.yml")
    with pytest.raises(OptionError, match=r"^x\.yml: network\.quality: got 9, expected an integer in 1\.\.6"):
        build_model({"model": "snr-decomp", "quality": 9}, "x.yml")


def test_validate_section_fills_schema_defaults():
    section = validate_section({"name": "synthetic", "root": "data/x"}, "datasets.train_small", "x.yml")
    assert section.patch_size == 256 and section.use_shuffle is True and section.level is None
    network = validate_section({"model": "snr-decomp", "N": 64}, "network", "x.yml")
    assert network.criterions.criterion_fea == "l1" and network.lambdas.lambda_fea == 3.0
    assert model_kwargs(network) == {"N": 64}
    with pytest.raises(OptionError, match=r"^x\.yml: datasets\.val\.root: missing"):
        validate_section({"name": "synthetic"}, "datasets.val", "x.yml")


def test_model_defaults_agree_with_the_schema():
    """quality is both a fixed network key and every model's argument: one default."""
    for name in MODELS.names():
        assert model_hparams(name)["quality"] == NETWORK["quality"].default, name


def test_empty_level_list_is_named(tmp_path):
    raw = yaml.safe_load(OFFICIAL_TEST.format(root=tmp_path))
    raw["datasets"]["kodak_level1"]["level"] = []
    assert "bad.yml: datasets.kodak_level1.level: an empty list" in error_of(tmp_path, raw, is_train=False)


# ------------------------------------------------------------------ no option is ignored
@pytest.mark.parametrize("name,key,value", [
    ("sidd", "level", [1, 3]),  # would give two identical reports labelled as two noise levels
    ("folder", "level", 2),
    ("sidd", "use_hflip", True),
    ("synthetic", "crops_per_image", 10),
])
def test_a_key_the_data_set_does_not_take_is_an_error(tmp_path, name, key, value):
    raw = yaml.safe_load(OFFICIAL_TEST.format(root=tmp_path))
    raw["datasets"]["kodak_level1"].update({"name": name, "level": None, key: value})
    message = error_of(tmp_path, raw, is_train=False)
    assert f"bad.yml: datasets.kodak_level1.{key}: the '{name}' data set does not take this key" in message
    assert "it takes: " in message and "max_images" in message


def test_a_training_set_refuses_keys_of_another_kind(tmp_path):
    raw = official(tmp_path)
    raw["datasets"]["train"]["crops_per_image"] = 30  # SIDD's, not the synthetic set's
    assert "datasets.train.crops_per_image: the 'synthetic' data set does not take" in error_of(tmp_path, raw)


def test_keys_the_data_set_takes_and_phase_wide_keys_are_kept(tmp_path):
    raw = yaml.safe_load(OFFICIAL_TEST.format(root=tmp_path))
    raw["datasets"]["sidd"] = {"root": "data/sidd.json", "name": "sidd", "patch_size": 128, "max_images": 3,
                               "batch_size": 1, "n_workers": 0, "use_shuffle": False, "estimation": True,
                               "level": None}  # null: not set
    opt = load_options(write(tmp_path, yaml.safe_dump(raw)), is_train=False)
    assert opt.datasets.sidd.patch_size == 128 and opt.datasets.sidd.max_images == 3


def test_set_errors_name_set_not_the_file(tmp_path):
    path = write(tmp_path, OFFICIAL_TRAIN)
    with pytest.raises(OptionError) as info:
        load_options(path, ["datasets.train.crops_per_image=5"])
    assert str(info.value).startswith("--set datasets.train.crops_per_image: the 'synthetic' data set does not take")
    with pytest.raises(OptionError, match=r"^--set network\.quality: got 9"):
        load_options(path, ["network.quality=9"])
    with pytest.raises(OptionError, match=r"^--set train\.epoch\.vale: unknown key"):
        load_options(path, ["train.epoch.vale=3"])
    raw = official(tmp_path)
    raw["network"]["quality"] = 9
    with pytest.raises(OptionError, match=r"bad\.yml: network\.quality: got 9"):  # the file's own error
        error_of(tmp_path, raw) and load_options(tmp_path / "bad.yml")


def test_a_structured_option_error_keeps_key_source_and_detail():
    error = OptionError("expected a positive integer, got -5", key="network.N", source="x.yml")
    assert (error.key, error.source, error.detail, error.by_set) == (
        "network.N", "x.yml", "expected a positive integer, got -5", False)
    assert str(error) == "x.yml: network.N: expected a positive integer, got -5"
    by_set = error.named_by_set()
    assert str(by_set) == "--set network.N: expected a positive integer, got -5 (options x.yml)"
    assert (by_set.key, by_set.source, by_set.detail, by_set.by_set) == ("network.N", "x.yml", error.detail, True)
    assert str(OptionError("got 9", key="network.quality")) == "network.quality: got 9"
    again = pickle.loads(pickle.dumps(error))  # e.g. from a data loader's worker
    assert str(again) == str(error) and (again.key, again.source, again.detail) == ("network.N", "x.yml", error.detail)
    plain = OptionError("x.yml: option file not found")  # no key: the message as given, never renamed
    assert str(plain) == "x.yml: option file not found" and plain.key is None and plain.source is None
    assert plain.named_by_set() is plain and named_by_set(plain, ["x.yml"]) is plain
    # the app boundary: an overridden key, or a section holding it, names --set; any other key does not
    assert str(named_by_set(error, ["train.epoch.value", "network.N"])) == str(by_set)
    assert str(named_by_set(error, ["network"])) == str(by_set)
    assert named_by_set(error, ["network.N_extra", "network.NN", "train"]) is error


def test_the_loaders_errors_are_structured(tmp_path):
    path = write(tmp_path, OFFICIAL_TRAIN)
    with pytest.raises(OptionError) as info:
        load_options(path, ["network.quality=9"])
    assert (info.value.key, info.value.source, info.value.by_set) == ("network.quality", str(path), True)
    assert info.value.detail.startswith("got 9, expected an integer in 1..6")
    raw = official(tmp_path)
    raw["datasets"]["train"]["root"] = str(tmp_path / "missing")
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(OptionError) as info:
        check_data_roots(load_options(tmp_path / "bad.yml"))
    assert (info.value.key, info.value.by_set) == ("datasets.train.root", False)
    assert info.value.source.endswith("bad.yml") and "does not exist" in info.value.detail


def test_a_build_time_error_about_a_set_key_names_set_in_training(tmp_path):
    """network.N=-5 passes the loader (it checks hyper-parameter names, not values): the model's
    constructor refuses it while the run is built, and the error names --set, or the file."""
    from dic.apps.train import loop
    from test_train import options, write_images

    data = tmp_path / "data"
    write_images(data / "train", 4, seed=1)
    write_images(data / "val", 2, seed=2)
    opt = options(tmp_path, data, "r", "network.N=-5")  # loaded: the refusal comes later
    assert opt.network.N == -5
    source = opt.path.option_file
    with pytest.raises(OptionError) as info:
        loop.run(argparse.Namespace(opt=source, set=["train.step.value=1", "network.N=-5"]))
    error = info.value
    assert (error.key, error.source, error.by_set) == ("network.N", source, True)
    assert "-5" in error.detail
    assert str(error) == f"--set network.N: {error.detail} (options {source})"

    raw = yaml.safe_load(Path(source).read_text())
    raw["network"]["N"] = -5  # the same value from the file names the file
    Path(source).write_text(yaml.safe_dump(raw))
    with pytest.raises(OptionError) as info:
        loop.run(argparse.Namespace(opt=source, set=["train.step.value=1"]))
    assert (info.value.key, info.value.by_set) == ("network.N", False)
    assert str(info.value) == f"{source}: network.N: {error.detail}"
    assert not (tmp_path / "experiments").exists()


def test_a_build_time_error_about_a_set_key_names_set_in_evaluation(tmp_path):
    """A level of null passes the loader; the synthetic test set refuses it when the
    evaluation builds its data sets: the error names --set, or the file."""
    from dic.apps.evaluate.runner import evaluate_option_file
    from test_train import write_images

    write_images(tmp_path / "images", 1)
    (tmp_path / "model.pth").write_bytes(b"")  # only checked to exist: the data sets are built first
    raw = {"name": "ev", "path": {"root": str(tmp_path), "checkpoint": "model.pth"},
           "network": {"model": "snr-decomp"},
           "datasets": {"kodak": {"name": "synthetic-test", "root": "images", "level": 1}}}
    path = write(tmp_path, yaml.safe_dump(raw), "ev.yml")
    source = str(path.resolve())
    assert load_options(path, ["datasets.kodak.level=null"], is_train=False).datasets.kodak.level is None
    detail = "a synthetic test set needs a noise level 1–4"
    with pytest.raises(OptionError) as info:
        evaluate_option_file(str(path), ["datasets.kodak.level=null"], progress=False)
    assert (info.value.key, info.value.source, info.value.by_set) == ("datasets.kodak.level", source, True)
    assert str(info.value) == f"--set datasets.kodak.level: {detail} (options {source})"

    raw["datasets"]["kodak"]["level"] = None  # the same from the file names the file
    path = write(tmp_path, yaml.safe_dump(raw), "ev.yml")
    with pytest.raises(OptionError) as info:
        evaluate_option_file(str(path), ["test.save_images=false"], progress=False)
    assert str(info.value) == f"{source}: datasets.kodak.level: {detail}"


def test_a_bare_data_set_section_is_checked_too():
    with pytest.raises(OptionError, match="datasets.test.level: the 'folder' data set does not take"):
        validate_section({"root": "x", "name": "folder", "level": 1}, "datasets.test", "x.yml")


def test_saved_options_hold_only_the_keys_each_data_set_takes(tmp_path):
    opt = load_options(write(tmp_path, OFFICIAL_TRAIN))
    save_options(opt, tmp_path / "saved.yml")
    saved = yaml.safe_load((tmp_path / "saved.yml").read_text())
    assert "crops_per_image" not in saved["datasets"]["train"] and "use_hflip" in saved["datasets"]["train"]


def test_every_shipped_option_file_loads():
    for path in sorted((REPO / "conf").rglob("*.yml")):
        load_options(path, is_train=path.parent.name == "train")


def test_a_loaded_section_passes_again_but_a_foreign_value_does_not(tmp_path):
    opt = load_options(write(tmp_path, OFFICIAL_TEST), is_train=False)
    section = opt.datasets.kodak_level1  # every key filled, crops_per_image at its default
    assert validate_section(section, "datasets.kodak_level1", "x.yml").level == 1
    with pytest.raises(OptionError, match="crops_per_image: the 'synthetic-test' data set does not take"):
        validate_section({**section, "crops_per_image": 5}, "datasets.kodak_level1", "x.yml")
