"""The command line never loses a file, gives one line for every error (output errors and
Ctrl-C included), starts without torch where it needs none, reports folder rates, and offers
BD-rate on monotone frontiers and plots labelled by run (issue 22)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dic.apps import codec_cmd
from dic.apps.cli import main, registered_names
from dic.data.io import read_image, write_image

REPO = Path(__file__).resolve().parents[1]
CKPT = REPO / "weights" / "demo" / "demo_joint_l2.pth"
RATES = [0.1, 0.2, 0.4, 0.8]
PSNRS = [28.0, 30.5, 32.5, 34.0]


def _image(seed: int, h: int = 32, w: int = 48, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _png(path: Path, seed: int = 0, **kwargs) -> Path:
    """A small PNG; 2 or 4 channels are written with OpenCV (write_image takes grey or RGB)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), _image(seed, **kwargs))
    return path


def _leftovers(folder: Path):
    """Temporary files of the atomic writer (``.<name>.<random>.tmp``) under ``folder``."""
    return [p for p in folder.rglob(".*") if p.is_file()]


def _one_error_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """One image coded with the shipped demo weights: (folder, png, dic)."""
    root = tmp_path_factory.mktemp("coded")
    png = _png(root / "photo.png")
    dic = root / "photo.dic"
    assert main(["compress", str(png), str(dic), "-c", str(CKPT)]) == 0
    return root, png, dic


# ----------------------------------------------------------------------------- never lose a file
def test_compress_refuses_the_input_as_output_also_through_links(tmp_path, capsys):
    photo = _png(tmp_path / "photo.png")
    original = photo.read_bytes()
    os.link(photo, tmp_path / "hard.dic")
    (tmp_path / "soft.dic").symlink_to(photo)
    for output in ("photo.png", "hard.dic", "soft.dic", "./sub/../photo.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        for force in ([], ["--force"]):  # never, not even with --force
            assert main(["compress", str(photo), str(tmp_path / output), "-c", str(CKPT), *force]) == 2
            _one_error_line(capsys.readouterr().err, "is the input", "nothing was written")
    assert photo.read_bytes() == original


def test_compress_refuses_to_replace_a_file_that_is_not_a_dic(tmp_path, capsys):
    photo, other = _png(tmp_path / "photo.png"), _png(tmp_path / "other.png", seed=1)
    before = other.read_bytes()
    assert main(["compress", str(photo), str(other), "-c", str(CKPT)]) == 2
    _one_error_line(capsys.readouterr().err, f"output {other} exists", "--force")
    assert other.read_bytes() == before
    fake = tmp_path / "notes.dic"  # named .dic, but not one
    fake.write_text("my notes")
    assert main(["compress", str(photo), str(fake), "-c", str(CKPT)]) == 2
    assert fake.read_text() == "my notes"
    assert main(["compress", str(photo), str(fake), "-c", str(CKPT), "--overwrite"]) == 0
    assert fake.read_bytes().startswith(codec_cmd.MAGIC)
    # an existing .dic file is what compress writes: replaced without --force
    assert main(["compress", str(photo), str(fake), "-c", str(CKPT)]) == 0
    assert not _leftovers(tmp_path)


def test_decompress_refuses_an_existing_output_unless_forced(coded, tmp_path, capsys):
    _, _, dic = coded
    out = _png(tmp_path / "out.png", seed=3)
    before = out.read_bytes()
    assert main(["decompress", str(dic), str(out), "-c", str(CKPT)]) == 2
    _one_error_line(capsys.readouterr().err, f"output {out} exists; pass --force to replace it")
    assert out.read_bytes() == before
    assert main(["decompress", str(dic), str(out), "-c", str(CKPT), "--force"]) == 0
    assert read_image(out).shape == (32, 48, 3) and out.read_bytes() != before
    link = tmp_path / "link.png"
    link.symlink_to(dic)
    assert main(["decompress", str(dic), str(link), "-c", str(CKPT), "-f"]) == 2
    assert "is the input" in capsys.readouterr().err and dic.read_bytes()[:8] == codec_cmd.MAGIC


def test_folder_outputs_are_checked_before_anything_is_written(tmp_path, capsys):
    images = tmp_path / "images"
    for i in range(3):
        _png(images / f"{i}.png", seed=i)
    out = tmp_path / "out"
    out.mkdir()
    (out / "1.dic").write_bytes(_png(tmp_path / "kept.png", seed=9).read_bytes())  # an image named like an output
    assert main(["compress", str(images), str(out), "-c", str(CKPT)]) == 2
    _one_error_line(capsys.readouterr().err, f"output {out / '1.dic'} exists", "nothing was written")
    assert sorted(p.name for p in out.iterdir()) == ["1.dic"]
    # the same folder as input and output: x.png → x.dic beside it, the images untouched
    assert main(["compress", str(images), str(images), "-c", str(CKPT)]) == 0
    assert sorted(p.name for p in images.iterdir()) == ["0.dic", "0.png", "1.dic", "1.png", "2.dic", "2.png"]
    capsys.readouterr()
    assert main(["decompress", str(images), str(images), "-c", str(CKPT)]) == 2  # the PNGs exist
    _one_error_line(capsys.readouterr().err, "3 outputs exist", "--force")


# ----------------------------------------------------------------------------- one line per error
@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_outputs_are_one_line_and_exit_2(coded, tmp_path, capsys, where):
    _, png, dic = coded
    parent = Path("/proc") if where == "proc" else tmp_path / "a_file"
    if where == "under_a_file":
        parent.write_text("I am a file")
    report = _report(tmp_path / "a.json", "a")
    commands = {
        parent / "x.png": ["decompress", str(dic), str(parent / "x.png"), "-c", str(CKPT)],
        parent / "x.dic": ["compress", str(png), str(parent / "x.dic"), "-c", str(CKPT)],
        parent / "rd.png": ["plot", str(report), "-o", str(parent / "rd.png")],
    }
    for dest, argv in commands.items():
        assert main(argv) == 2, argv[0]
        _one_error_line(capsys.readouterr().err, f"cannot write {dest}: ")
        assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.json"] + (["a_file"] if where != "proc" else []))


def test_a_folder_given_as_checkpoint_is_named_as_such(coded, tmp_path, capsys):
    _, png, dic = coded
    assert main(["compress", str(png), str(tmp_path / "x.dic"), "-c", str(CKPT.parent)]) == 2
    _one_error_line(capsys.readouterr().err, f"checkpoint {CKPT.parent} is a folder, expected a checkpoint file")
    assert main(["decompress", str(dic), str(tmp_path / "x.png"), "-c", str(tmp_path)]) == 2
    _one_error_line(capsys.readouterr().err, f"checkpoint {tmp_path} is a folder, expected a checkpoint file")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_while_coding_a_folder_leaves_whole_files_only(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the middle of a folder: exit 130, one line, the finished files whole and no
    half-written or temporary file."""
    import dic.codec
    import dic.fileio

    images = tmp_path / "images"
    for i in range(3):
        _png(images / f"{i}.png", seed=i)
    writes = []
    real_write = dic.fileio.atomic_write_bytes

    def write_then_interrupt(path, data):
        writes.append(path)
        if len(writes) == 2:  # inside the second file's atomic write
            with dic.fileio.atomic_output(path) as tmp:
                tmp.write_bytes(data[: len(data) // 2])
                raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(codec_cmd, "atomic_write_bytes", write_then_interrupt)
    out = tmp_path / "out"
    assert main(["compress", str(images), str(out), "-c", str(CKPT)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["0.dic"]
    assert dic.codec.read_header((out / "0.dic").read_bytes()).width == 48


@pytest.mark.parametrize("command, target", [
    ("list", "dic.apps.cli.registered_names"),
    ("bdrate", "dic.apps.evaluate.rd.load_report"),
    ("plot", "dic.apps.evaluate.rd.plot_reports"),
    ("import", "importlib.import_module"),  # Ctrl-C while the command's module is imported
])
def test_ctrl_c_in_any_command_is_one_line_and_130(tmp_path, capsys, monkeypatch, command, target):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupt)
    report = str(_report(tmp_path / "a.json", "a"))
    argv = {"list": ["list", "models"], "bdrate": ["bdrate", report, report],
            "plot": ["plot", report, "-o", str(tmp_path / "rd.png")], "import": ["bdrate", report, report]}[command]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted") and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def sigint_default() -> None:
    """In the child before it runs: Ctrl-C as a terminal delivers it. A shell's background job
    starts with SIGINT ignored, and Python keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_cli(args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "dic.apps.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, preexec_fn=sigint_default,
                            **kwargs)


def _interrupt_after(process: subprocess.Popen, stream, marker: str):
    """Send SIGINT once ``marker`` appears on ``stream``; (exit code, rest of stdout, stderr)."""
    seen = []
    for line in stream:
        seen.append(line)
        if marker in line:
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=300)
    return process.returncode, out, "".join(seen) + err if stream is process.stderr else err


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_ctrl_c_during_start_up_imports_is_one_line(coded, tmp_path, command):
    """SIGINT right after the command says what it loads, i.e. while torch is being imported."""
    _, png, dic = coded
    src, dest = (png, tmp_path / "x.dic") if command == "compress" else (dic, tmp_path / "x.png")
    process = _run_cli([command, src, dest, "-c", CKPT])
    code, _, err = _interrupt_after(process, process.stderr, "loading checkpoint")
    assert code == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_folder_compress(tmp_path):
    """A real SIGINT once the first file is written: exit 130, no traceback, only whole files."""
    import dic.codec

    images = tmp_path / "images"
    for i in range(40):
        write_image(images / f"{i:02d}.png", _image(i, 192, 192))
    out = tmp_path / "out"
    process = _run_cli(["compress", images, out, "-c", CKPT])
    code, _, err = _interrupt_after(process, process.stdout, "bpp")
    assert code == 130, err
    assert "Traceback" not in err and "interrupted" in err
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 40 and not _leftovers(out)
    for path in written:
        dic.codec.unpack(path.read_bytes(), str(path))  # whole, valid files


# ----------------------------------------------------------------------------- fast start
def test_help_list_bdrate_and_plot_import_no_torch(tmp_path):
    a, b = _report(tmp_path / "a.json", "a"), _report(tmp_path / "b.json", "b", scale=0.9)
    script = f"""
import sys
from dic.apps.cli import main
runs = [["--help"], ["compress", "--help"], ["list", "models"], ["list", "datasets"], ["list", "losses"],
        ["bdrate", {str(a)!r}, {str(b)!r}], ["plot", {str(a)!r}, {str(b)!r}, "-o", {str(tmp_path / 'rd.png')!r}],
        ["compress", "missing.png", "x.dic", "-c", "none.pth"]]
for argv in runs:
    try:
        main(argv)
    except SystemExit:
        pass
print("HEAVY", sorted(m for m in ("torch", "compressai", "cv2") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
    assert "BD-rate -10.00 %" in result.stdout and (tmp_path / "rd.png").is_file()


HELP_SCRIPT = """
import contextlib, io, json, sys
from dic.apps.cli import main
helps = {}
for command in ("train", "test", "bench"):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([command, "--help"])
        except SystemExit:
            pass
    helps[command] = out.getvalue()
heavy = sorted(m for m in ("torch", "compressai", "numpy", "cv2") if m in sys.modules)
print(json.dumps({"heavy": heavy, "helps": helps}))
"""


def test_train_test_and_bench_help_import_no_torch(tmp_path):
    """``dic train --help``, ``dic test --help`` and ``dic bench --help`` build their parsers from
    light modules (``dic.apps.*.arguments``): no torch, NumPy or CompressAI, and the same help."""
    from dic.apps.bench import coding, training

    result = subprocess.run([sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.splitlines()[-1])
    assert data["heavy"] == [], data["heavy"]
    helps = data["helps"]
    assert "usage: dic train [-h] -opt PATH [--set KEY=VALUE [KEY=VALUE ...]]" in helps["train"]
    assert "training option file (YAML)" in helps["train"] and "--set train.step.value=100" in helps["train"]
    assert "usage: dic test [-h] -opt OPTIONS.yml [--set KEY=VALUE [KEY=VALUE ...]] [--no-progress]" in helps["test"]
    assert "test option file" in helps["test"] and "no progress bars" in helps["test"]
    bench = helps["bench"]
    for option in ("--model", "--quality", "--N", "--hparam", "--checkpoint", "--size", "--image", "--noise-level",
                   "--repeats", "--warmup", "--device", "--threads", "--train-batch", "--train-size", "--contexts",
                   "--train-variants", "--no-compressai", "--paths", "--no-coding", "--no-train", "--no-memory",
                   "--no-roofline", "--peak-size", "--seed", "--json"):
        assert f"[{option}" in bench, option
    # the coding paths and training variants the measuring modules know, all named in the help
    assert f"of {', '.join(coding.PATH_CONTEXT)} (default" in bench
    assert f"all that apply: {', '.join(training.TRAIN_VARIANTS)};" in bench
    assert set(training.SWITCHES) < set(training.TRAIN_VARIANTS)


def test_bench_names_and_parsers_are_defined_once():
    """The heavy modules use the light modules' names and parsers, not copies of them."""
    import dic.apps.bench.arguments as bench_args
    import dic.apps.evaluate.arguments as test_args
    import dic.apps.train.arguments as train_args
    from dic.apps import bench
    from dic.apps.bench import coding, runner, training
    from dic.apps.evaluate import runner as test_runner
    from dic.apps.train import loop
    from dic.models.checkerboard import CONTEXTS

    assert coding.CODING_PATHS is bench_args.CODING_PATHS and training.TRAIN_VARIANTS is bench_args.TRAIN_VARIANTS
    assert tuple(coding.PATH_CONTEXT) == bench_args.CODING_PATHS
    assert bench_args.CONTEXTS is CONTEXTS is coding.CONTEXTS and tuple(coding.PAIRS) == CONTEXTS  # one definition
    assert bench.add_arguments is bench_args.add_arguments
    assert runner.check_args is bench_args.check_args and bench.benchmark is runner.benchmark
    for heavy in (runner, loop, test_runner):  # no parser, and no entry point building one, of their own
        assert not hasattr(heavy, "add_arguments") and not hasattr(heavy, "main"), heavy.__name__
    from dic.apps.cli import SUBCOMMANDS

    for name, light in (("train", train_args), ("test", test_args), ("bench", bench_args)):
        assert SUBCOMMANDS[name].parser_module == light.__name__


def test_registry_names_read_without_importing_match_the_registries():
    from dic.data import DATASETS
    from dic.losses import LOSSES
    from dic.models import MODELS

    for what, registry in (("models", MODELS), ("datasets", DATASETS), ("losses", LOSSES)):
        assert registered_names(what) == registry.names()


def test_shared_names_are_defined_once_without_torch():
    """The command line plans outputs with the library's own names (dic.conventions), which
    import no torch."""
    import dic.codec
    import dic.data.io

    assert codec_cmd.SUFFIX is dic.codec.SUFFIX and codec_cmd.MAGIC is dic.codec.MAGIC
    assert codec_cmd.is_image_file is dic.data.io.is_image_file
    probe = "import sys, dic.conventions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "codes")})
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- folders, alpha, grey
def test_folder_prints_rates_alpha_warns_once_grey_is_coded(tmp_path, capsys):
    images = tmp_path / "images"
    _png(images / "a_rgba.png", seed=0, channels=4)
    _png(images / "b_rgba.png", seed=1, channels=4)
    _png(images / "c_grey.png", seed=2, channels=1)
    _png(images / "d_rgb.png", seed=3)
    out = tmp_path / "out"
    assert main(["compress", str(images), str(out), "-c", str(CKPT)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 5 and all(" bpp" in line for line in lines[:4])
    assert lines[-1].startswith(f"compressed 4 files into {out}") and lines[-1].endswith("bpp in total")
    sizes = sum(p.stat().st_size for p in out.iterdir())
    assert f"{8 * sizes / (4 * 32 * 48):.4f} bpp in total" in lines[-1]
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {images / 'a_rgba.png'} has an alpha (transparency) channel, which is dropped: "
                        "dic codes RGB", "warning: 1 more input(s) had an alpha channel, dropped too"]
    assert captured.err.splitlines()[0] == f"loading checkpoint {CKPT}"
    decoded = tmp_path / "decoded"
    assert main(["decompress", str(out), str(decoded), "-c", str(CKPT)]) == 0
    assert read_image(decoded / "c_grey.png").shape == (32, 48, 3)  # grey is coded and decoded as RGB
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"decompressed 4 files into {decoded}")


def test_decompress_uses_the_api_decoding_path(coded, tmp_path, monkeypatch, capsys):
    import dic.codec.api

    calls = []
    real = dic.codec.api.decode_with_header

    def spy(*args, **kwargs):
        calls.append(kwargs["name"])
        return real(*args, **kwargs)

    monkeypatch.setattr(dic.codec.api, "decode_with_header", spy)
    root, _, dic_file = coded
    out = tmp_path / "x.png"
    assert main(["decompress", str(dic_file), str(out), "--checkpoint-dir", str(CKPT.parent), "--precision", "float32"]) == 0
    assert calls == [str(dic_file)]
    assert np.array_equal(read_image(out), dic.codec.decode_bytes(dic_file.read_bytes(), checkpoint=CKPT))
    assert f"loading checkpoint {CKPT}" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bdrate, plot
def _report(path: Path, name: str, scale: float = 1.0, psnr=PSNRS, **extra) -> Path:
    rates = [scale * r for r in RATES[: len(psnr)]]
    path.write_text(json.dumps({"name": name, "results": {"bpp": rates, "psnr": list(psnr)}, **extra}))
    return path


def test_bdrate_frontier_uses_the_monotone_frontier(tmp_path, capsys):
    from dic.apps.evaluate.rd import bd_rate, upper_envelope

    anchor = _report(tmp_path / "a.json", "anchor")
    bumpy = _report(tmp_path / "b.json", "bumpy", psnr=[28.5, 31.0, 30.0, 34.5])  # 0.4 bpp beaten at 0.2
    assert main(["bdrate", str(anchor), str(bumpy)]) == 2
    assert "quality must rise strictly" in capsys.readouterr().err
    assert main(["bdrate", str(anchor), str(bumpy), "--frontier"]) == 0
    out = capsys.readouterr().out
    kept = upper_envelope(RATES, [28.5, 31.0, 30.0, 34.5])
    assert kept == [0, 1, 3]
    expected = bd_rate(RATES, PSNRS, [RATES[k] for k in kept], [[28.5, 31.0, 30.0, 34.5][k] for k in kept])
    assert f"BD-rate {expected:+.2f} %" in out and "frontier: 0 point(s) of A, 1 of B left out" in out
    # a monotone pair gives the same figures with and without --frontier, and no note
    same = _report(tmp_path / "c.json", "same", scale=0.9)
    assert main(["bdrate", str(anchor), str(same), "--frontier"]) == 0
    assert "BD-rate -10.00 %" in (out := capsys.readouterr().out) and "frontier" not in out


def test_plot_labels_curves_by_run(tmp_path, capsys):
    from dic.apps.evaluate.rd import curve_labels, load_report

    a = _report(tmp_path / "a.json", "snr-decomp", run="mse_q3", dataset="kodak")
    b = _report(tmp_path / "b.json", "snr-decomp", scale=0.9, run="mse_q4", dataset="kodak")
    c = _report(tmp_path / "c.json", "jpeg", scale=1.2, run="baselines", dataset="kodak")
    assert curve_labels([load_report(p) for p in (a, b, c)]) == ["snr-decomp (mse_q3)", "snr-decomp (mse_q4)", "jpeg"]
    same_run = _report(tmp_path / "d.json", "snr-decomp", scale=0.8, run="mse_q3", dataset="sidd")
    assert curve_labels([load_report(p) for p in (a, same_run)]) == ["snr-decomp (kodak)", "snr-decomp (sidd)"]
    out = tmp_path / "rd.png"
    assert main(["plot", str(a), str(b), "-o", str(out), "--labels", "three", "four"]) == 0
    assert out.is_file()
    assert main(["plot", str(a), str(b), "-o", str(out), "--labels", "one"]) == 2
    assert "1 labels for 2 reports" in capsys.readouterr().err


def test_precision_option_of_compress_and_decompress(tmp_path, capsys):
    """--precision reaches the transforms: a bfloat16 decode of a float32 file decodes its own
    symbols (the checksums pass) to a close image; float16 on the CPU is one --precision line."""
    import warnings

    import numpy as np

    from dic.apps.cli import main
    from dic.data.io import read_image, write_image

    ckpt = REPO / "weights" / "demo" / "demo_codec_l2.pth"
    write_image(tmp_path / "a.png", (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    assert main(["compress", str(tmp_path / "a.png"), str(tmp_path / "a.dic"), "-c", str(ckpt)]) == 0
    assert main(["decompress", str(tmp_path / "a.dic"), str(tmp_path / "f32.png"), "-c", str(ckpt),
                 "--precision", "float32"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 may be emulated on this CPU
        assert main(["decompress", str(tmp_path / "a.dic"), str(tmp_path / "bf16.png"), "-c", str(ckpt),
                     "--precision", "bfloat16"]) == 0
    f32, bf16 = (read_image(tmp_path / f"{n}.png").astype(int) for n in ("f32", "bf16"))
    assert np.abs(f32 - bf16).max() <= 8
    capsys.readouterr()
    assert main(["compress", str(tmp_path / "a.png"), str(tmp_path / "b.dic"), "-c", str(ckpt),
                 "--precision", "float16"]) == 2
    err = capsys.readouterr().err
    assert "error: --precision: float16 runs on CUDA only" in err and not (tmp_path / "b.dic").exists()
