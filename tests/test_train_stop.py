"""Training writes nothing before every option has been checked and the model and data built; the
terminal gets a short summary and train.log every option; SIGINT / SIGTERM save a resumable
checkpoint: in one process and through the launcher in a subprocess the resumed run ends
bit-identical to one never stopped; under torchrun, with the signal on one rank only, both ranks
stop after the same step and resume from rank 0's checkpoint."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dic
import dic.apps.train.loop as train_mod
from dic.apps.cli import main as dic_main
from dic.apps.train.loop import Interrupted, fit
from dic.checkpoints import load_checkpoint, load_model, weights_fingerprint

from test_train import assert_same_weights, data, options, state_of, write_images  # noqa: F401 (data: fixture)

CODES = str(Path(dic.__file__).resolve().parents[1])
REPO = Path(dic.__file__).resolve().parents[2]


def tree(root: Path) -> list:
    """Every path under ``root``, relative, sorted (empty when root is absent)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ------------------------------------------------------------------------------------------------
REFUSED = {  # the error line starts with
    "network.N=-5": "error: --set network.N: ",
    "datasets.train.batch_size=0": "error: --set datasets.train.batch_size: ",
    "datasets.train.root=/no/such/folder": "error: --set datasets.train.root: /no/such/folder does not exist",
    "path.resume=/no/such.pth": "error: checkpoint to resume from /no/such.pth does not exist",
}


@pytest.mark.parametrize("override", REFUSED, ids=list(REFUSED))
def test_refused_run_writes_nothing(tmp_path, data, capsys, override):
    """A fresh run refused for a bad value creates no folder; with an earlier run of the same name
    there, a refused new run (resume: none) leaves it in place, not archived."""
    options(tmp_path / "fresh", data, "r")
    assert dic_main(["train", "-opt", str(tmp_path / "fresh" / "r.yml"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(REFUSED[override]) and err.count("\n") == 1, err
    assert tree(tmp_path / "fresh") == ["r.yml"]

    old = tmp_path / "old"
    options(old, data, "r")
    (old / "experiments" / "r").mkdir(parents=True)
    (old / "experiments" / "r" / "train.log").write_text("an earlier run\n")
    (old / "tb_logger" / "r").mkdir(parents=True)
    before = tree(old)
    assert dic_main(["train", "-opt", str(old / "r.yml"), "--set", "path.resume=none", override]) == 2
    assert tree(old) == before
    assert (old / "experiments" / "r" / "train.log").read_text() == "an earlier run\n"


def test_terminal_summary_and_every_option_in_the_log(tmp_path, data, capsys):
    options(tmp_path, data, "summary", value=1)
    assert dic_main(["train", "-opt", str(tmp_path / "summary.yml")]) == 0
    out = capsys.readouterr().out
    head = out[:out.index("outputs:")]
    assert "options:" not in out and "lambda_fea" not in out  # no dump on the terminal
    assert "run summary: model snr-decomp" in head and "data: " in head and "steps: 1 in all" in head
    assert len(head.splitlines()) <= 4
    assert f"outputs: {tmp_path / 'experiments' / 'summary'}" in out
    log = (tmp_path / "experiments" / "summary" / "train.log").read_text()
    assert log.index("options:") < log.index("run summary: model") < log.index("training done")
    assert "lambda_fea: 3.0" in log and "save_checkpoint_freq: 1" in log


# ------------------------------------------------------------------------------------------------
def signal_at_step(monkeypatch, step: int, signum: int) -> None:
    """Send ``signum`` to this process during training step ``step`` (1-based), before it runs."""
    real_step, calls = train_mod.train_step, []

    def step_then_signal(run, gt, noisy):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signum)
        return real_step(run, gt, noisy)

    monkeypatch.setattr(train_mod, "train_step", step_then_signal)


@pytest.mark.parametrize("mode, value, steps, signum, code", [
    ("step", 5, 5, signal.SIGINT, 130),
    ("epoch", 2, 4, signal.SIGTERM, 143),
], ids=["step-SIGINT", "epoch-SIGTERM-mid-epoch"])
def test_signal_saves_a_checkpoint_and_resume_equals_uninterrupted(tmp_path, data, monkeypatch, capfd, mode,
                                                                   value, steps, signum, code):
    """The signal arrives during step 3 (in epoch mode the first batch of epoch 2: no periodic
    checkpoint there); step 3 finishes, latest.pth is written at step 3, and the run raises
    Interrupted with the exit code; the next run resumes from it and ends as the reference."""
    reference = fit(options(tmp_path / "a", data, "r", mode=mode, value=value))
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal_at_step(monkeypatch, 3, signum)
    with pytest.raises(Interrupted) as stopped:
        fit(options(tmp_path / "b", data, "r", mode=mode, value=value))
    assert stopped.value.exit_code == code
    latest = tmp_path / "b" / "experiments" / "r" / "checkpoints" / "latest.pth"
    assert stopped.value.checkpoint == latest
    assert load_checkpoint(latest)["iter"] == 3
    name = signal.Signals(signum).name
    said = f"{name}: stopped at step 3 of {steps}; checkpoint {latest}; run the same command to resume"
    assert said in capfd.readouterr().out
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # put back

    monkeypatch.undo()
    resumed = fit(options(tmp_path / "b", data, "r", mode=mode, value=value))  # resume: auto
    assert_same_weights(state_of(reference), state_of(resumed))
    log = (tmp_path / "b" / "experiments" / "r" / "train.log").read_text()
    assert "resumed from" in log and "step 3" in log


# ------------------------------------------------------------------------------------------------
# Runs in a subprocess: `dic train` (what train.py runs), with step 3 waiting (after writing `ready`) until
# the test has sent its signal and written `go`, so that the signal lands during step 3.
LAUNCHER = textwrap.dedent('''
    import os, sys, time
    import torch
    torch.set_num_threads(1)
    import dic.apps.train.loop as loop
    ready, go = sys.argv[1:3]
    real_step, calls = loop.train_step, []
    def waiting_step(run, gt, noisy):
        calls.append(1)
        if len(calls) == 3:
            open(ready, "w").close()
            while not os.path.exists(go):
                time.sleep(0.02)
        return real_step(run, gt, noisy)
    loop.train_step = waiting_step
    from dic.apps.cli import main
    sys.exit(main(['train', *sys.argv[3:]]))
''')


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, "the run never reached step 3"
        time.sleep(0.05)


def test_ctrl_c_in_a_subprocess_saves_and_the_next_run_resumes(tmp_path, data):
    """Every run in its own fresh process, as a user runs them: an uninterrupted run, and a run
    stopped by SIGINT during step 3 then started again with the same command, end with the same
    weights (compared from their final checkpoints)."""
    launcher, ready, go = tmp_path / "launch.py", tmp_path / "ready", tmp_path / "go"
    launcher.write_text(LAUNCHER)

    def launch(root: Path) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": CODES}
        return subprocess.Popen([sys.executable, str(launcher), str(ready), str(go), "-opt", str(root / "r.yml")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(proc: subprocess.Popen) -> tuple:
        try:
            out, err = proc.communicate(timeout=240)
        finally:
            proc.kill()
        return proc.returncode, out, err

    options(tmp_path / "a", data, "r", value=5)
    options(tmp_path / "b", data, "r", value=5)
    go.touch()  # the uninterrupted run does not wait at step 3
    code, out, err = finish(launch(tmp_path / "a"))
    assert code == 0, out[-2000:] + err[-2000:]
    go.unlink()
    ready.unlink()  # written by the first run at its step 3
    proc = launch(tmp_path / "b")
    wait_for(ready, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    go.touch()
    code, out, err = finish(proc)
    assert code == 130, out[-2000:] + err[-2000:]
    latest = tmp_path / "b" / "experiments" / "r" / "checkpoints" / "latest.pth"
    assert f"SIGINT: stopped at step 3 of 5; checkpoint {latest}; run the same command to resume" in out
    assert "SIGINT: stopping after this step" in err and "Traceback" not in err
    assert load_checkpoint(latest)["iter"] == 3
    code, out, err = finish(launch(tmp_path / "b"))  # the same command again
    assert code == 0 and "resumed from" in out + err, out[-2000:] + err[-2000:]
    final = {root: load_checkpoint(tmp_path / root / "experiments" / "r" / "checkpoints" / "latest.pth")
             for root in ("a", "b")}
    assert final["a"]["iter"] == final["b"]["iter"] == 5
    assert_same_weights(final["a"]["state_dict"], final["b"]["state_dict"])


# ------------------------------------------------------------------------------------------------
# Runs inside each torchrun process: rank 1 alone receives SIGTERM during step 2 (when asked to);
# each rank reports its step count and weight hash, and whether it wrote under the run's root.
DDP_WORKER = textwrap.dedent('''
    import json, os, signal, sys
    import dic.apps.train.loop as loop
    from dic.checkpoints import coding_tables, load_coding_tables, weights_fingerprint
    from dic.config import load_options
    option_file, results, stop_rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rank = int(os.environ["RANK"])
    real_step, calls = loop.train_step, []
    def step(run, gt, noisy):
        calls.append(1)
        if rank == stop_rank and len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(run, gt, noisy)
    loop.train_step = step
    code = 0
    try:
        model = loop.fit(load_options(option_file))
        load_coding_tables(model, coding_tables(model))
        report = {"hash": weights_fingerprint(model)}
    except loop.Interrupted as e:
        report, code = {"stopped": str(e.checkpoint)}, e.exit_code
    report["steps"] = len(calls)
    with open(os.path.join(results, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    sys.exit(code)
''')


def test_torchrun_sigterm_on_one_rank_stops_both_at_the_same_step(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    write_images(data / "train", 4, size=64, seed=1)
    write_images(data / "val", 1, size=64, seed=2)
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": CODES}

    def torchrun(root: Path, stop_rank: int) -> dict:
        """Train 3 steps of the tiny model on 2 CPU processes; rank ``stop_rank`` gets SIGTERM."""
        opt = options(root, data, "ddp", "datasets.train.batch_size=2", "datasets.val.batch_size=1", value=3)
        results.mkdir(exist_ok=True)
        for old in results.iterdir():
            old.unlink()
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               str(worker), opt.path.option_file, str(results), str(stop_rank)],
                              env=env, capture_output=True, text=True, timeout=300)
        ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1)]
        return {"code": proc.returncode, "out": proc.stdout + proc.stderr, "ranks": ranks}

    stopped = torchrun(tmp_path / "b", stop_rank=1)
    assert stopped["code"] != 0, stopped["out"][-3000:]  # torchrun reports the workers' 143
    assert [r["steps"] for r in stopped["ranks"]] == [2, 2]  # both stopped after step 2
    latest = tmp_path / "b" / "experiments" / "ddp" / "checkpoints" / "latest.pth"
    assert all(r["stopped"] == str(latest) for r in stopped["ranks"])
    ckpt = load_checkpoint(latest)
    assert ckpt["iter"] == 2 and len(ckpt["rng"]) == 2
    assert "SIGTERM: stopped at step 2 of 3" in (tmp_path / "b" / "experiments" / "ddp" / "train.log").read_text()

    resumed = torchrun(tmp_path / "b", stop_rank=-1)
    assert resumed["code"] == 0, resumed["out"][-3000:]
    assert [r["steps"] for r in resumed["ranks"]] == [1, 1]
    assert resumed["ranks"][0]["hash"] == resumed["ranks"][1]["hash"]
    assert load_checkpoint(latest)["iter"] == 3
    assert weights_fingerprint(load_model(latest)) == resumed["ranks"][0]["hash"]
