"""Training on the CPU with a tiny SNR model: a falling loss, checkpoints that load, exact
kill-and-resume in step and epoch mode, capped bad steps (skip and zero_grad), archived old runs,
schedules, the CLI."""
import copy
import math
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import dic.apps.train.loop as train_mod
from repo_scripts import load_script
from dic.apps.cli import main as dic_main
from dic.apps.train.loop import epoch_batches, fit, train_step
from dic.apps.train.schedule import create_schedulers, step_plateau, step_time, warmup_multistep
from dic.apps.train.setup import resume_path, setup, split_batch, teardown
from dic.apps.train.state import capture_rng, restore_rng
from dic.apps.train.step import keep_fp32, loss_in_range, parameters
from dic.checkpoints import coding_tables, load_checkpoint, load_coding_tables, load_model, weights_fingerprint
from dic.checkpoints.io import TABLE_BUFFERS
from dic.config import load_options
from dic.data import create_dataset
from dic.data.samplers import ItemSeeds, SeededItems, per_rank_batch
from dic.errors import ArgumentError, OptionError
from dic.losses import LAMBDAS, RateDistortionLoss
from dic.models import apply_context_masks, create_model

TINY_NET = {"model": "snr-decomp", "quality": 1, "N": 16, "num_layers": 1, "num_heads": 2, "head_dim": 16}


def write_images(folder: Path, n: int, size: int = 72, seed: int = 0) -> None:
    """Smooth random colour images (a compressible signal), as PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = cv2.resize(rng.random((6, 6, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"im{i}.png"), np.clip(image * 255, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_images(root / "train", 4, seed=1)
    write_images(root / "val", 2, seed=2)
    return root


def options(root: Path, data: Path, name: str = "run", *overrides: str, mode: str = "step", value: int = 4):
    """Options of a tiny run writing under ``root``; ``overrides`` as on the command line."""
    raw = {
        "name": name, "use_tb_logger": False, "manual_seed": 7,
        "datasets": {
            "train": {"root": str(data / "train"), "name": "synthetic", "patch_size": 64, "batch_size": 2},
            "val": {"root": str(data / "val"), "name": "synthetic", "patch_size": 64, "batch_size": 2},
        },
        "network": dict(TINY_NET),
        "train": {"mode": mode, mode: {"value": value, "lr": 1e-3, "val_freq": 2}},
        "path": {"root": str(root)},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 1},
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(raw))
    return load_options(path, list(overrides))


def state_of(model) -> dict:
    """The model's weights, without the entropy-coder tables (computed when a checkpoint is
    saved, so a resumed model holds them and an uninterrupted one does not)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] not in TABLE_BUFFERS}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ------------------------------------------------------------------------------------------------
def test_loss_is_finite_and_falls_on_a_fixed_batch(tmp_path, data):
    opt = options(tmp_path, data, "fixed", "train.step.lr=0.002")
    run = setup(opt)
    try:
        gt, noisy = next(iter(epoch_batches(run)))
        losses = []
        for _ in range(12):
            result = train_step(run, gt, noisy)
            assert not result.capped
            terms = result.terms
            assert all(math.isfinite(float(v)) for v in terms.values())
            losses.append(float(terms["loss"]))
    finally:
        teardown(run)
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    # every term is reported raw and weighted
    assert {"bpp_loss", "mse_loss", "weighted_mse_loss", "fea_loss", "weighted_fea_loss", "rd_loss", "loss",
            "aux_loss"} <= set(terms)


def test_run_writes_outputs_and_checkpoints_load(tmp_path, data):
    opt = options(tmp_path, data, "outputs", "use_tb_logger=true", "logger.save_checkpoint_freq=2",
                  "logger.num_val_images=1", value=3)
    model = fit(opt)
    run_dir = tmp_path / "experiments" / "outputs"
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["2.pth", "best.pth", "latest.pth"]  # validation at 2 and at the end (3)
    assert load_options(run_dir / "options.yml").name == "outputs"
    log = (run_dir / "train.log").read_text()
    assert "validation <step 2>" in log and "validation <step 3>" in log and "training done" in log
    assert sorted(p.name for p in (run_dir / "val_samples" / "3").iterdir()) == [
        "im0_clean.png", "im0_decoded.png", "im0_noisy.png"]
    assert list((tmp_path / "tb_logger" / "outputs").glob("events.out.tfevents.*"))
    # the latest checkpoint holds the final weights and loads as a model, with its training state
    loaded = load_model(run_dir / "checkpoints" / "latest.pth")
    load_coding_tables(model, coding_tables(model))  # the checkpoint stores the tables of its weights
    assert weights_fingerprint(loaded) == weights_fingerprint(model)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pth")
    assert (ckpt["iter"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (3, 1, 1)
    assert math.isfinite(ckpt["loss"]) and ckpt["optimizer"]["state"] and ckpt["aux_optimizer"]["state"]
    assert len(ckpt["rng"]) == 1

    # a new run of the same name (resume: none) archives the old folder instead of overwriting it
    fit(options(tmp_path, data, "outputs", "path.resume=none", value=1))
    archived = [p for p in (tmp_path / "experiments").iterdir() if p.name.startswith("outputs_archived_")]
    assert len(archived) == 1 and (archived[0] / "checkpoints" / "2.pth").is_file()
    assert not (run_dir / "checkpoints" / "2.pth").exists()
    assert [p.name for p in (tmp_path / "tb_logger").iterdir() if "archived" in p.name]


class Interrupt(Exception):
    pass


# the tiny run's first losses are about 34.5 and 38.2 (then 26-42): a cap of 35 caps some steps, not all
ZERO_GRAD_CAP = ("train.loss_cap_mode=zero_grad", "train.loss_cap=35")
# the throughput switches that run on the CPU (README "Training"), all at once
SWITCHES = (*ZERO_GRAD_CAP, "train.sync_free_cap=true", "train.fused_adam=true", "datasets.train.noise_on_device=true")


@pytest.mark.parametrize("mode, value, stop_after, extra, extra_on_resume, common", [
    ("step", 5, 3, "datasets.train.n_workers=2", "datasets.train.n_workers=2", ()),
    ("epoch", 2, 3, "datasets.train.n_workers=0", "manual_seed=null", ()),
    ("step", 5, 3, "datasets.train.n_workers=0", "datasets.train.n_workers=0", ZERO_GRAD_CAP),
    ("step", 5, 3, "datasets.train.n_workers=2", "datasets.train.n_workers=0", SWITCHES),
], ids=["step-mid-epoch-with-workers", "epoch-boundary-seed-from-checkpoint", "step-zero-grad-capped-steps",
        "step-throughput-switches"])
def test_kill_and_resume_equals_uninterrupted(tmp_path, data, monkeypatch, mode, value, stop_after, extra,
                                              extra_on_resume, common):
    """Step mode stops mid-epoch (latest.pth every step) and runs with 2 loader workers against a
    reference without; epoch mode stops inside epoch 2, resumes from the end of epoch 1, and must
    keep the checkpoint's seed when the options no longer give one; the third run caps some of
    its steps with loss_cap_mode zero_grad. All must end bit-identical to the run that never
    stopped."""
    reference = fit(options(tmp_path / "a", data, "r", *common, mode=mode, value=value))

    real_step, calls = train_mod.train_step, []

    def dying_step(run, gt, noisy):
        if len(calls) == stop_after:
            raise Interrupt("killed")
        calls.append(1)
        return real_step(run, gt, noisy)

    monkeypatch.setattr(train_mod, "train_step", dying_step)
    with pytest.raises(Interrupt):
        fit(options(tmp_path / "b", data, "r", extra, *common, mode=mode, value=value))
    monkeypatch.setattr(train_mod, "train_step", real_step)
    resumed = fit(options(tmp_path / "b", data, "r", extra_on_resume, *common, mode=mode, value=value))  # resume: auto

    assert_same_weights(state_of(reference), state_of(resumed))
    a = load_checkpoint(tmp_path / "a" / "experiments" / "r" / "checkpoints" / "latest.pth")
    b = load_checkpoint(tmp_path / "b" / "experiments" / "r" / "checkpoints" / "latest.pth")
    for key in ("optimizer", "aux_optimizer"):
        for pid, st in a[key]["state"].items():
            assert all(torch.equal(st[k], b[key]["state"][pid][k]) for k in st)
    assert (a["iter"], a["epoch"], a["loss"]) == (b["iter"], b["epoch"], b["loss"])
    assert a["skipped_steps"] == b["skipped_steps"]
    log = (tmp_path / "b" / "experiments" / "r" / "train.log").read_text()
    assert "resumed from" in log
    if common:  # some steps, not all, were capped, with their optimizer steps
        assert 0 < a["skipped_steps"] < value
        assert "main gradients zeroed, both optimizers stepped" in log


def test_loss_cap_range():
    """A loss may train when it lies in [0, loss_cap): NaN, infinities, negatives and the cap itself are capped."""
    assert loss_in_range(0.0, 100.0) and loss_in_range(99.999, 100.0)
    for bad in (100.0, 1e9, -1e-9, float("nan"), float("inf"), float("-inf")):
        assert not loss_in_range(bad, 100.0), bad


def test_bad_loss_step_updates_nothing(tmp_path, data):
    opt = options(tmp_path, data, "nan")
    run = setup(opt)
    try:
        assert run.stepper.loss_cap_mode == "skip"  # the default
        gt, noisy = next(iter(epoch_batches(run)))
        before = state_of(run.model)
        assert train_step(run, gt, noisy.clone().fill_(float("nan"))).capped  # NaN pixels → NaN loss
        assert run.state.capped_steps == 1
        assert_same_weights(before, state_of(run.model))
        assert not run.optim.optimizer.state and not run.optim.aux_optimizer.state  # Adam never stepped

        run.stepper.loss_cap = 1e-3  # a finite loss above the cap is skipped too
        assert train_step(run, gt, noisy).capped and run.state.capped_steps == 2
        assert_same_weights(before, state_of(run.model))

        run.stepper.loss_cap = 100.0  # a good step then trains, and the weights stay finite
        assert not train_step(run, gt, noisy).capped
        after = state_of(run.model)
        assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
        assert any(not torch.equal(before[k], after[k]) for k in before)

        # once Adam has moments, a capped step still changes neither the weights nor its state
        optimizer_states = copy.deepcopy((run.optim.optimizer.state_dict(), run.optim.aux_optimizer.state_dict()))
        run.stepper.loss_cap = 1e-3
        assert train_step(run, gt, noisy).capped and run.state.capped_steps == 3
        assert_same_weights(after, state_of(run.model))
        assert_same_optimizer_states(optimizer_states[0], run.optim.optimizer.state_dict())
        assert_same_optimizer_states(optimizer_states[1], run.optim.aux_optimizer.state_dict())
    finally:
        teardown(run)


def assert_same_optimizer_states(a: dict, b: dict) -> None:
    assert a["state"].keys() == b["state"].keys() and a["state"]
    for pid, st in a["state"].items():
        assert all(torch.equal(st[k], b["state"][pid][k]) for k in st), pid


@pytest.mark.parametrize("bad", ["nan", "above-cap"])
def test_zero_grad_capped_step_steps_adam_on_zero_gradients(tmp_path, data, bad):
    """loss_cap_mode zero_grad (the releases): a capped step zeroes the main and the auxiliary
    gradients yet steps both Adams, which move the weights and the quantiles on their moments
    alone. Checked against a copy of the model and optimizers stepped by hand (Adam itself
    written out by hand: tests/test_loss_cap.py)."""
    run = setup(options(tmp_path, data, "zerograd", "train.loss_cap_mode=zero_grad"))
    try:
        gt, noisy = next(iter(epoch_batches(run)))
        assert not train_step(run, gt, noisy).capped  # Adam has moments from here on
        before = state_of(run.model)
        model, optimizer, aux_optimizer = copy.deepcopy((run.model, run.optim.optimizer, run.optim.aux_optimizer))
        if bad == "nan":
            noisy = noisy.clone().fill_(float("nan"))
        else:
            run.stepper.loss_cap = 1e-3
        result = train_step(run, gt, noisy)
        assert result.capped and run.state.capped_steps == 1
        assert (not math.isfinite(result.loss)) if bad == "nan" else result.loss >= 1e-3
        main = parameters(run.optim.optimizer)
        assert all(p.grad is not None and not p.grad.any() for p in main)  # zeroed, not absent

        # by hand, in the releases' order: Adam on zero main gradients, then Adam on zero
        # auxiliary gradients (the releases zero them after the aux backward), then the masks
        for p in parameters(optimizer):
            p.grad = torch.zeros_like(p)
        optimizer.step()
        for p in parameters(aux_optimizer):
            p.grad = torch.zeros_like(p)
        aux_optimizer.step()
        apply_context_masks(model)
        after = state_of(run.model)
        assert_same_weights(state_of(model), after)
        assert_same_optimizer_states(optimizer.state_dict(), run.optim.optimizer.state_dict())
        assert_same_optimizer_states(aux_optimizer.state_dict(), run.optim.aux_optimizer.state_dict())
        moved = [k for k in before if not torch.equal(before[k], after[k])]
        assert any(k.endswith(".quantiles") for k in moved)  # the auxiliary Adam's moments moved them
        assert sum(not k.endswith(".quantiles") for k in moved) > 10  # Adam's moments moved the main weights
        assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    finally:
        teardown(run)


def test_step_runs_the_auxiliary_loss_after_the_main_step_as_the_releases(tmp_path, data):
    """A normal step equals CompressAI's example loop (and the releases') done by hand: main loss
    backward, gradient clipping, main Adam step; then the aux loss with the updated density
    weights, its backward and the auxiliary Adam step."""
    run = setup(options(tmp_path, data, "order"))
    try:
        gt, noisy = next(iter(epoch_batches(run)))
        model, optimizer, aux_optimizer = copy.deepcopy((run.model, run.optim.optimizer, run.optim.aux_optimizer))
        rng = torch.get_rng_state()
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        out = model(noisy, gt)
        run.stepper.criterion(out, gt)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(parameters(optimizer), run.stepper.clip_max_norm)
        optimizer.step()
        aux_loss = model.aux_loss()
        aux_loss.backward()
        aux_optimizer.step()
        apply_context_masks(model)
        torch.set_rng_state(rng)  # the same quantisation noise for the trainer's forward pass
        result = train_step(run, gt, noisy)
        assert not result.capped
        assert_same_weights(state_of(model), state_of(run.model))
        assert torch.equal(result.terms["aux_loss"], aux_loss.detach())
    finally:
        teardown(run)


def test_skipped_step_is_counted_and_logged_by_the_loop(tmp_path, data, monkeypatch):
    opt = options(tmp_path, data, "skiplog", value=2)
    real_criterion_forward = RateDistortionLoss.forward
    calls = []

    def nan_once(self, out_net, gt):  # the first training step's loss is NaN
        terms = real_criterion_forward(self, out_net, gt)
        if not calls:
            calls.append(1)
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(RateDistortionLoss, "forward", nan_once)
    model = fit(opt)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert load_checkpoint(tmp_path / "experiments" / "skiplog" / "checkpoints" / "latest.pth")["skipped_steps"] == 1
    assert "step 1: loss nan (loss_cap 100): nothing updated" in (
        tmp_path / "experiments" / "skiplog" / "train.log").read_text()
    assert "1 step(s) capped (skip)" in (tmp_path / "experiments" / "skiplog" / "train.log").read_text()


# ------------------------------------------------------------------------------------------------
def test_item_seeds_make_items_independent_of_global_rng(data):
    dataset = SeededItems(create_dataset("synthetic", data / "train", "train", patch_size=32))
    torch.manual_seed(1)
    a = dataset[(0, 123)]
    torch.manual_seed(2)
    state = torch.get_rng_state()
    b = dataset[(0, 123)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is left alone
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(dataset[(0, 124)][1], a[1])

    seeds = ItemSeeds(torch.utils.data.DistributedSampler(range(10), num_replicas=1, rank=0, seed=3), 3)
    full = list(seeds)
    assert sorted(i for i, _ in full) == list(range(10)) and len(set(s for _, s in full)) == 10
    seeds.set_position(0, skip=4)  # a resume 4 items into epoch 0 continues the same sequence
    assert list(seeds) == full[4:] and len(seeds) == 6
    seeds.set_position(1)  # the next epoch: another order, other seeds
    assert [i for i, _ in seeds] != [i for i, _ in full] and not {s for _, s in seeds} & {s for _, s in full}


def test_resume_path_and_batch_split(tmp_path, data):
    opt = options(tmp_path, data, "paths")
    assert resume_path(opt) is None  # auto, nothing there yet
    latest = Path(opt.path.checkpoints) / "latest.pth"
    latest.parent.mkdir(parents=True)
    latest.write_bytes(b"x")
    assert resume_path(opt) == str(latest)
    assert resume_path(options(tmp_path, data, "paths", "path.resume=none")) is None
    assert resume_path(options(tmp_path, data, "paths", "path.checkpoint=/x/y.pth")) == "/x/y.pth"
    with pytest.raises(OptionError, match="name different checkpoints"):
        resume_path(options(tmp_path, data, "paths", "path.checkpoint=/x/y.pth", "path.resume=/x/z.pth"))
    assert per_rank_batch(16, 4) == 4 and split_batch(16, 4) == 4
    with pytest.raises(OptionError, match="batch_size: 6 does not split over 4 processes"):
        split_batch(6, 4)
    with pytest.raises(ArgumentError, match="^batch_size: 6 does not split over 4 processes"):  # the library's
        per_rank_batch(6, 4)


def test_missing_resume_checkpoint_is_a_clear_error(tmp_path, data, capsys):
    options(tmp_path, data, "missing")
    opt_file = tmp_path / "missing.yml"
    code = dic_main(["train", "-opt", str(opt_file), "--set", "path.resume=nowhere.pth"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "nowhere.pth does not exist" in err
    assert "Traceback" not in err


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys, monkeypatch):
    from dic.apps.launch import dic_train

    monkeypatch.setattr("sys.argv", ["dic-train", "-opt", str(tmp_path / "nope.yml")])
    assert dic_train() == 2  # dic-train and train.py
    assert "option file not found" in capsys.readouterr().err
    assert dic_main(["train", "-opt", str(tmp_path / "nope.yml")]) == 2


# ------------------------------------------------------------------------------------------------
def lrs(scheme, counts, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    main, aux = torch.optim.Adam([p], lr=1.0), torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s, sa = create_schedulers(main, aux, lr_scheme=scheme, **kw)
    out = []
    for _ in range(counts):
        out.append((main.param_groups[0]["lr"], aux.param_groups[0]["lr"]))
        step_time(s, sa)
    return out


def test_schedules():
    got = lrs("LambdaLR", 7, warm_up_counts=2, milestones=[4, 6], gamma=0.1)
    assert [m for m, _ in got] == pytest.approx([0.5, 1, 1, 1, 0.1, 0.1, 0.01])
    assert [a for _, a in got] == pytest.approx([0.5, 1, 1, 1, 1, 1, 1])
    p = torch.nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.Adam([p], lr=1.0)
    ref = torch.optim.lr_scheduler.MultiStepLR(ref_opt, milestones=[2, 5], gamma=0.5)
    expected = []
    for _ in range(7):
        expected.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert [m for m, _ in lrs("MultiStepLR", 7, milestones=[2, 5], gamma=0.5)] == pytest.approx(expected)
    assert warmup_multistep(0, [], 0.1)(100) == 1.0

    main, aux = torch.optim.Adam([p], lr=1.0), torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s, sa = create_schedulers(main, aux, lr_scheme="ReduceLROnPlateau", gamma=0.5, patience=1)
    for metric in (1.0, 1.0, 1.0):
        step_time(s, sa)  # count steps leave the plateau schedule alone
        step_plateau(metric, s, sa)
    assert main.param_groups[0]["lr"] == 0.5 and aux.param_groups[0]["lr"] == 1.0


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # a cached Gaussian in NumPy's state
    state = capture_rng()
    path = tmp_path / "rng.pth"
    torch.save({"rng": [state]}, path)
    expected = (random.random(), np.random.normal(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(torch.load(path, weights_only=True)["rng"][0])
    got = (random.random(), np.random.normal(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_entropy_model_stays_float32_under_autocast():
    """train.amp runs on CUDA only; the fp32 guard of the entropy model is checked with CPU autocast."""
    model = create_model(TINY_NET["model"], **{k: v for k, v in TINY_NET.items() if k != "model"})
    keep_fp32(model, "cpu")
    keep_fp32(model, "cpu")  # a second call (TrainStep applies it too) does not wrap twice
    assert not getattr(model.entropy_parameters.forward.__wrapped__, "keeps_fp32", False)
    seen = {}
    model.entropy_parameters.register_forward_hook(lambda m, i, o: seen.update(params=o.dtype))
    model.g_s.register_forward_hook(lambda m, i, o: seen.update(g_s=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 3, 64, 64))
    assert seen == {"params": torch.float32, "g_s": torch.bfloat16}
    assert all(v.dtype == torch.float32 for v in out["likelihoods"].values())


def test_example_option_files_load_and_match_their_generator(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    script = load_script("make_train_configs")
    assert script.main(["--out", str(tmp_path)]) == 0
    committed = {p.name: p.read_text() for p in (repo / "conf" / "train").glob("*.yml")}
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.yml")}
    assert committed == generated  # rerun scripts/make_train_configs.py after changing the recipe
    assert len(generated) == 3 * (6 + 4 + 6) + 1 + 6  # the recipes, tiny.yml, the demo's six
    for name in generated:
        opt = load_options(repo / "conf" / "train" / name)
        metric, quality = opt.network.criterions.criterion_metric, opt.network.quality
        if name != "tiny.yml" and not name.startswith("demo_"):
            assert opt.network.lambdas.lambda_metric == LAMBDAS[metric][quality - 1]
            assert opt.name == name[:-4] and opt.train.mode == "epoch"
