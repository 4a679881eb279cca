"""The generated option files follow the published recipes (docs/reproducing.md), key by key.

The recipe table is written out here as data on purpose, independently of
scripts/make_train_configs.py, so that a change to the generator that departs from the papers
fails here. Files are read as plain YAML; only the key-table test builds a model, as shapes
(no weights), to compare the network a file asks for with the official key table of its tree.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TRAIN, TEST = REPO / "conf" / "train", REPO / "conf" / "test"
SCRIPT = REPO / "scripts" / "make_train_configs.py"

# CompressAI's standard λ table, quality 1..6
LAMBDA = {"mse": (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483),
          "ms-ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50)}

# file tag → (criterion_metric, qualities, training data set name)
OBJECTIVES = {"mse": ("mse", (1, 2, 3, 4, 5, 6), "synthetic"),
              "msssim": ("ms-ssim", (2, 3, 5, 6), "synthetic"),
              "sidd": ("mse", (1, 2, 3, 4, 5, 6), "sidd")}

LATE = [450, 550, 600, 650, 700]
# ICME 2024, snr-decomp, per official source tree: (tag, quality) → (epochs, lr, milestones, gamma, loss_cap)
ICME = {
    ("mse", 1): (800, 1e-4, LATE, 0.5, 100),
    ("mse", 2): (800, 5e-5, LATE, 0.5, 100),
    ("mse", 3): (800, 5e-5, LATE, 0.5, 100),
    ("mse", 4): (800, 5e-5, LATE, 0.5, 1000),
    ("mse", 5): (800, 5e-5, LATE, 0.5, 1000),
    ("mse", 6): (800, 5e-5, [400, 550, 600, 650, 700], 0.5, 1000),
    ("msssim", 2): (800, 7e-5, [450, 550], 0.1, 100),
    ("msssim", 3): (800, 7e-5, [450, 550], 0.1, 100),
    ("msssim", 5): (800, 7e-5, [450, 550], 0.1, 1000),
    ("msssim", 6): (800, 7e-5, [450, 550], 0.1, 1000),
    ("sidd", 1): (800, 1e-4, LATE, 0.5, 100),
    ("sidd", 2): (800, 1e-4, LATE, 0.5, 100),
    ("sidd", 3): (800, 1e-4, LATE, 0.5, 100),
    ("sidd", 4): (800, 5e-5, LATE, 0.5, 1000),
    ("sidd", 5): (800, 5e-5, LATE, 0.5, 1000),
    ("sidd", 6): (800, 1e-4, [310, 450, 550, 600, 650, 700], 0.5, 1000),
}
# official ICME 2024 runs resumed from an intermediate checkpoint with an edited schedule
ICME_RESUMED = {("mse", 1): 369, ("mse", 4): 59, ("mse", 6): 339, ("sidd", 1): 439, ("sidd", 2): 439, ("sidd", 6): 309}


# the snr-decomp network of each ICME 2024 tree (docs/models.md §3): (branch_width, num_heads,
# the official key table of that tree's network, every key with its shape at N=192)
ICME_NETWORK = {"mse": ("half", 12, "official_keys_icme2024_snr_N192.tsv"),
                "msssim": ("full", 8, "official_keys_icme2024_snr_msssim_sidd_N192.tsv"),
                "sidd": ("full", 8, "official_keys_icme2024_snr_msssim_sidd_N192.tsv")}
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# the entropy-coder tables: filled by update(), their sizes depend on the weights
CODER_TABLES = ("_offset", "_quantized_cdf", "_cdf_length", "scale_table")


def eccv(tag, quality):
    """ECCV 2022, multiscale-decomp: one schedule for every objective, the cap by quality."""
    return 600, 1e-4, [450, 550], 0.1, 100 if quality <= 3 else 1000


RECIPES = {"snr-decomp": lambda tag, q: ICME[tag, q], "multiscale-decomp": eccv}
PAPER = {"snr-decomp": "ICME 2024", "multiscale-decomp": "ECCV 2022"}
PAPER_FILES = [(model, tag, q) for model in RECIPES for tag, (_, qs, _) in OBJECTIVES.items() for q in qs]


def stem(model):
    return model.replace("-", "_")


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_every_paper_file_exists():
    assert len(PAPER_FILES) == 2 * (6 + 4 + 6)
    missing = [f"{stem(m)}_{t}_q{q}.yml" for m, t, q in PAPER_FILES if not (TRAIN / f"{stem(m)}_{t}_q{q}.yml").is_file()]
    assert not missing


@pytest.mark.parametrize("model, tag, quality", PAPER_FILES, ids=lambda v: str(v))
def test_paper_training_file_follows_the_recipe(model, tag, quality):
    name = f"{stem(model)}_{tag}_q{quality}"
    path = TRAIN / f"{name}.yml"
    opt = load(path)
    epochs, lr, milestones, gamma, loss_cap = RECIPES[model](tag, quality)
    metric, _, train_set = OBJECTIVES[tag]

    assert opt["name"] == name
    net = opt["network"]
    assert net["model"] == model
    assert net["quality"] == quality
    assert net["criterions"]["criterion_metric"] == metric
    assert net["criterions"]["criterion_fea"] == "l1"
    assert net["lambdas"]["lambda_metric"] == LAMBDA[metric][quality - 1]
    assert net["lambdas"]["lambda_fea"] == 3
    assert net["pretrained"] is True
    assert "alphas" not in net  # our own factors, not the papers' (the releases never read them)
    if model == "snr-decomp":
        branch_width, heads, _ = ICME_NETWORK[tag]
        assert (net["branch_width"], net["num_heads"]) == (branch_width, heads)
    else:
        assert "branch_width" not in net and "num_heads" not in net

    train = opt["train"]
    assert train["mode"] == "epoch" and "step" not in train
    sched = train["epoch"]
    assert sched["value"] == epochs
    assert sched["lr"] == pytest.approx(lr, rel=1e-12)
    assert sched["lr_aux"] == pytest.approx(1e-3, rel=1e-12)
    assert sched["lr_scheme"] == "LambdaLR"
    assert sched["warm_up_counts"] == 20
    assert sched["milestones"] == milestones
    assert sched["gamma"] == gamma
    assert sched["val_freq"] == 1
    assert train["loss_cap"] == loss_cap
    assert train["loss_cap_mode"] == "zero_grad"
    assert train["clip_max_norm"] == 1.0

    data = opt["datasets"]
    assert set(data) == {"train", "val"}
    assert data["train"]["name"] == train_set and data["val"]["name"] == train_set
    assert data["train"]["batch_size"] == 16
    assert data["train"]["patch_size"] == 256
    if tag != "sidd":  # the releases' sRGB curves for synthetic noise; SIDD's sets do not take the key
        assert data["train"]["legacy_gamma"] is True and data["val"]["legacy_gamma"] is True
    if tag == "sidd":
        assert data["train"]["crops_per_image"] == 60


def read_key_table(name):
    rows = [line.split("\t") for line in (FIXTURES / name).read_text().splitlines()[1:] if line.strip()]
    return {key: tuple(int(d) for d in shape.split("x")) for key, shape, _ in rows}


@pytest.mark.parametrize("tag", list(OBJECTIVES))
def test_snr_paper_files_build_their_trees_network_key_by_key(tag):
    """Every snr-decomp file of a tree asks for the same network, and at q6 (N=192) that network's
    state dict, under the official names, is the tree's key table key by key, shape by shape."""
    from dic.checkpoints.official import ours_to_official
    from dic.models import model_hparams, shape_only_model

    keys = set(model_hparams("snr-decomp")) - {"quality"}
    files = {q: load(TRAIN / f"snr_decomp_{tag}_q{q}.yml")["network"] for q in OBJECTIVES[tag][1]}
    networks = {q: {k: v for k, v in net.items() if k in keys} for q, net in files.items()}
    assert all(n == networks[6] for n in networks.values()), networks
    table = read_key_table(ICME_NETWORK[tag][2])
    model = shape_only_model("snr-decomp", quality=files[6]["quality"], **networks[6])
    ours = {ours_to_official(k, "snr-decomp"): tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(table) ^ set(ours)) == []
    wrong = {k: (table[k], ours[k]) for k in table if not k.endswith(CODER_TABLES) and table[k] != ours[k]}
    assert wrong == {}


@pytest.mark.parametrize("model, tag, quality", PAPER_FILES, ids=lambda v: str(v))
def test_paper_training_file_header_names_generator_and_recipe_row(model, tag, quality):
    text = (TRAIN / f"{stem(model)}_{tag}_q{quality}.yml").read_text(encoding="utf-8")
    head = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert text.startswith("# Generated by scripts/make_train_configs.py")
    assert f"Recipe: {PAPER[model]}" in head and f"q{quality}:" in head
    resumed = ICME_RESUMED.get((tag, quality)) if model == "snr-decomp" else None
    if resumed is None:
        assert "cannot be replayed" not in head
    else:
        assert f"epoch-{resumed} checkpoint" in head and "cannot be replayed exactly" in head
    assert "../shared" not in text
    if model == "snr-decomp":
        tree = "the MSE tree's network" if tag == "mse" else "the MS-SSIM and SIDD trees' network"
        assert f"# Network: {tree}" in head


def test_codec_only_baseline_files_are_labelled_and_use_the_eccv_schedule():
    for tag, (metric, qualities, _) in OBJECTIVES.items():
        for q in qualities:
            path = TRAIN / f"cheng2020_anchor_{tag}_q{q}.yml"
            opt = load(path)
            assert "Not a paper's recipe" in path.read_text(encoding="utf-8"), path
            assert opt["network"]["criterions"]["criterion_fea"] is None
            assert opt["network"]["lambdas"]["lambda_metric"] == LAMBDA[metric][q - 1]
            epochs, lr, milestones, gamma, cap = eccv(tag, q)
            sched = opt["train"]["epoch"]
            assert (sched["value"], sched["lr"], sched["milestones"], sched["gamma"], opt["train"]["loss_cap"]) == \
                (epochs, lr, milestones, gamma, cap), path


def test_no_unexpected_training_files():
    """Paper-named files carry the recipe; anything else must say what it is in its name."""
    expected = {f"{stem(m)}_{t}_q{q}.yml" for m in ("snr-decomp", "multiscale-decomp", "cheng2020-anchor")
                for t, (_, qs, _) in OBJECTIVES.items() for q in qs} | {"tiny.yml"}
    expected |= {f"demo_{kind}_l{point}.yml" for kind in ("joint", "codec") for point in (1, 2, 3)}  # scripts/demo.py
    extra = {p.name for p in TRAIN.glob("*.yml")} - expected
    assert all("standard_curves" in name for name in extra), extra
    for name in extra:
        opt = load(TRAIN / name)
        assert all(not d.get("legacy_gamma", False) for d in opt["datasets"].values()), name


# ---- official evaluation files ---------------------------------------------------------------

OFFICIAL_TESTS = [(model, tag) for model in RECIPES for tag in OBJECTIVES]


@pytest.mark.parametrize("model, tag", OFFICIAL_TESTS, ids=lambda v: str(v))
def test_official_test_file(model, tag):
    name = f"official_{stem(model)}_{tag}"
    path = TEST / f"{name}.yml"
    opt = load(path)
    assert path.read_text(encoding="utf-8").startswith("# Generated by scripts/make_train_configs.py")
    assert opt["name"] == name
    assert opt["network"]["model"] == model
    assert opt["test"]["protocol"] == "official"
    data = opt["datasets"]
    assert data and all(d.get("legacy_gamma", False) is (tag != "sidd") for d in data.values()), data
    if tag == "sidd":
        assert {d["name"] for d in data.values()} == {"sidd"}
        assert any(d["root"].endswith("SIDD_Test") for d in data.values())  # the benchmark blocks
    else:
        assert {k: (d["name"], d["root"], d["level"]) for k, d in data.items()} == {
            "kodak": ("synthetic-test", "data/kodak", [1, 2, 3, 4]),
            "clic": ("synthetic-test", "data/CLIC", [1, 2, 3, 4])}
    qualities = OBJECTIVES[tag][1]
    checkpoints = opt["path"]["checkpoint"]
    assert len(checkpoints) == (4 if tag == "msssim" else 6)
    # each checkpoint is the best.pth of the matching training file's run
    assert checkpoints == [f"experiments/{stem(model)}_{tag}_q{q}/checkpoints/best.pth" for q in qualities]
    for q in qualities:
        assert load(TRAIN / f"{stem(model)}_{tag}_q{q}.yml")["name"] == f"{stem(model)}_{tag}_q{q}"


def test_every_official_test_file_is_generated_and_the_old_one_is_gone():
    assert {p.stem for p in TEST.glob("official_*.yml")} == {f"official_{stem(m)}_{t}" for m, t in OFFICIAL_TESTS}
    assert not (TEST / "official_snr_decomp_kodak.yml").exists()


# ---- the generator's --check -------------------------------------------------------------------

def test_check_passes_on_the_committed_files():
    out = run_script("--check")
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_names_changed_missing_and_extra_files(tmp_path):
    """On a copy (the real conf/ is never written): --check fails and names each bad file."""
    train, test = tmp_path / "train", tmp_path / "test"
    shutil.copytree(TRAIN, train)
    test.mkdir()
    for p in TEST.glob("official_*.yml"):
        shutil.copy(p, test / p.name)
    args = ("--check", "--out", train, "--test-out", test)
    assert run_script(*args).returncode == 0

    changed = train / "snr_decomp_mse_q6.yml"
    changed.write_text(changed.read_text(encoding="utf-8").replace("- 400\n", "- 450\n"), encoding="utf-8")
    (test / "official_multiscale_decomp_sidd.yml").unlink()
    (test / "official_snr_decomp_kodak.yml").write_text("name: stale\n", encoding="utf-8")
    (test / "my_own.yml").write_text("name: mine\n", encoding="utf-8")  # not a generated name: ignored
    out = run_script(*args)
    assert out.returncode == 1
    report = out.stdout
    assert "snr_decomp_mse_q6.yml: differs" in report
    assert "official_multiscale_decomp_sidd.yml: missing" in report
    assert "official_snr_decomp_kodak.yml: not generated" in report
    assert "my_own.yml" not in report
    assert len(report.strip().splitlines()) == 3


def test_out_alone_writes_training_files_only(tmp_path):
    out = run_script("--out", tmp_path / "train")
    assert out.returncode == 0, out.stderr
    written = {p.name for p in (tmp_path / "train").iterdir()}
    assert written == {p.name for p in TRAIN.glob("*.yml")}
    assert not list(tmp_path.glob("official_*.yml")) and not (tmp_path / "test").exists()
