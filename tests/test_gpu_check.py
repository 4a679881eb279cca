"""``scripts/gpu_check.sh``: its CUDA plan (``--dry-run``), every stage run for real at tiny sizes
on the CPU (``--cpu``), one table and one JSON file, and a failing stage reported, not hidden."""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dic.apps.bench.gpu_summary import collect, failed, format_summary
from repo_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STAGES = ["cuda-tests", "coding", "precision", "train", "train-compile", "cross-device", "cross-device-back"]


def _run(*args: str, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, **env})


def test_dry_run_plans_the_cuda_measurements(tmp_path):
    proc = _run("--dry-run", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    stages = [line for line in text.splitlines() if line.startswith("== ")]
    assert [s.split()[1] for s in stages] == STAGES
    assert "-- deps: " in text and "nothing to install" in text  # this Python imports compressai: no stage 0
    assert "-m pytest -q -m cuda tests" in text
    assert "--N 192 --size 768x512 --device cuda" in text and "--train-batch 16 --train-size 256" in text
    assert "--train-variants ours,official-style,bf16,channels-last" in text and "compile,fast" in text
    assert "--encode-device cuda --decode-device cpu" in text and "--encode-device cpu --decode-device cuda" in text
    assert "--contexts serial --paths exact,exact-bf16,exact-fp16" in text
    limits = [int(s.split("limit ")[1].split(" s")[0]) for s in stages]
    assert sum(limits) <= 450  # the stages' limits leave start-up time within 8 minutes
    assert not list(tmp_path.iterdir())  # nothing ran
    assert _run("--fast", out=tmp_path).returncode == 2


def test_cpu_mode_runs_every_stage(tmp_path):
    # CPU_PRELOAD: the stages' commands fork from one Python that imported torch and compressai
    # (the imports were most of this test's time); every stage still runs in full
    proc = _run("--cpu", out=tmp_path, CPU_PRELOAD="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["stage"] for s in data["stages"]] == STAGES
    assert all(s["rc"] == 0 for s in data["stages"])
    assert data["cuda_tests"]["skipped"] >= 4 and data["cuda_tests"]["failures"] == 0  # marked, skipped on CPU
    coding = data["bench_coding"]["coding"]
    assert all(coding["round_trip_exact"].values()) and coding["checkerboard_symbols_identical"]
    precision = data["bench_precision"]["coding"]
    assert precision["round_trip_exact"] == {"exact": True, "exact-bf16": True}
    assert data["bench_precision"]["ratios"]["decode_time_bf16_over_float32"] > 0
    assert data["bench_coding"]["roofline"]["transforms"]["synthesis"]["float32"]["time_over_peak"] > 0
    assert data["bench_train"]["train"]["official-style"]["step_s"]["median"] > 0
    assert data["bench_compile"]["train"]["fast"] == {"skipped": "CUDA only"}
    for name in ("crossdevice", "crossdevice_back"):
        assert {r["outcome"] for r in data[name]["contexts"].values()} == {"identical"}
    assert "decode (s)" in proc.stdout and "speed-up vs official" in proc.stdout and data["table"] in proc.stdout
    assert "roofline" in data["table"] and "exact bf16" in data["table"]
    assert "-- CPU_PRELOAD: every stage forks from one Python" in proc.stdout


def test_a_failed_stage_fails_the_check(tmp_path):
    (tmp_path / "stages.tsv").write_text("coding\t0\t5\ntrain\t124\t90\n")
    data = collect(tmp_path)
    assert failed(data) and "TIMED OUT" in format_summary(data)
    (tmp_path / "stages.tsv").write_text("coding\t0\t5\n")
    assert not failed(collect(tmp_path))


# --- stage 0: the dependencies a CUDA machine like issue 23's lacks -------------------------------

def _fetch_module():
    return load_script("fetch_gpu_wheels")


def _python_without_site(tmp_path: Path) -> Path:
    """A Python that cannot import compressai (nor torch): this one without its site-packages."""
    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_dry_run_plans_the_install_when_compressai_is_missing(tmp_path):
    out = tmp_path / "out"
    proc = _run("--dry-run", out=out, PYTHON=str(_python_without_site(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    stages = [line for line in proc.stdout.splitlines() if line.startswith("== ")]
    assert [s.split()[1] for s in stages] == ["deps", *STAGES]
    assert "scripts/fetch_gpu_wheels.py --dest wheels --install $TMPDIR/dic-gpu-deps." in stages[0]
    assert stages[0].endswith(f"--check --python {tmp_path / 'bin' / 'python'}")
    limits = [int(s.split("limit ")[1].split(" s")[0]) for s in stages]
    assert sum(limits) <= 450  # the install included, start-up time left within 8 minutes
    assert not out.exists()


def test_missing_wheels_stop_the_check_with_the_fix(tmp_path):
    out = tmp_path / "out"
    proc = _run("--cpu", out=out, PYTHON=str(_python_without_site(tmp_path)), WHEELS=str(tmp_path / "none"))
    assert proc.returncode == 2
    assert "has no wheels: run `python scripts/fetch_gpu_wheels.py` on a machine with PyPI" in proc.stderr


def _fake_wheel(folder: Path, name: str = "dicfakepkg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-0.1-py3-none-any.whl"
    info = f"{name}-0.1.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", f"{name}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return path


@pytest.mark.parametrize("use_pip", [True, False])
def test_install_puts_wheels_in_a_folder_only(tmp_path, use_pip):
    fetch = _fetch_module()
    wheel = _fake_wheel(tmp_path / "wheels")
    target = tmp_path / "deps"
    assert fetch.install([wheel], target, use_pip=use_pip) == ("pip" if use_pip else "unzip")
    assert (target / "dicfakepkg" / "__init__.py").is_file()
    proc = fetch.check_imports(target, ["dicfakepkg", "dic.models.precision"])
    assert proc.returncode == 0 and "imports ok" in proc.stdout, proc.stderr
    assert fetch.check_imports(tmp_path / "empty", ["dicfakepkg"]).returncode != 0


def test_fetch_script_plans_a_312_manylinux_download_and_refuses_no_wheels(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_gpu_wheels.py"), "--dry-run", "--dest",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for flag in ("download --no-deps --only-binary=:all:", "--python-version 3.12", "--abi cp312",
                 "--platform manylinux_2_34_x86_64", "compressai==1.2.8", "pytorch-msssim==", "imagesize==", "pytest=="):
        assert flag in proc.stdout
    assert not list(tmp_path.iterdir())
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_gpu_wheels.py"), "--install",
                           str(tmp_path / "t"), "--dest", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no wheels in" in proc.stderr
    assert "wheels/" in (ROOT / ".gitignore").read_text().split()


#: What issue 23's CUDA machines have (with their dependencies), beside Python and the wheels.
GPU_MACHINE = ("torch", "torchvision", "numpy", "opencv-python-headless", "scipy", "scikit-image", "tensorboard",
               "tqdm", "PyYAML", "matplotlib")
_HIDE = '''
import importlib, importlib.abc, sys, warnings
HIDDEN = set(sys.argv[1].split(","))
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
sys.meta_path.insert(0, Hide())
warnings.simplefilter("ignore")
for m in sys.argv[2].split(","):
    importlib.import_module(m)
print("imports ok")
'''


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_wheels_cover_what_the_gpu_machine_lacks():
    """Import the check's entry points with every installed package hidden that is neither on
    the CUDA machine (GPU_MACHINE and what those require) nor among the fetched wheels: the
    wheel list is complete (at this environment's versions of those packages)."""
    from packaging.requirements import Requirement

    dists = {_norm(d.metadata["Name"]): d for d in importlib.metadata.distributions()}
    have, todo = set(), [_norm(n) for n in GPU_MACHINE]
    while todo:
        name = todo.pop()
        if name in have or name not in dists:
            continue
        have.add(name)
        for text in dists[name].requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_norm(req.name))
    wheels = {_norm(req.split("==")[0]) for req, _ in _fetch_module().PACKAGES}
    allowed = have | wheels
    top = importlib.metadata.packages_distributions()
    hidden = sorted(m for m, ds in top.items() if m != "dic" and not any(_norm(d) in allowed for d in ds)
                    and m not in sys.stdlib_module_names)
    assert "compressai" not in hidden and "torch" not in hidden
    entry = ["compressai", "compressai.zoo", "pytest", "dic.apps.cli", "dic.apps.bench.runner",
             "dic.apps.bench.crossdevice", "dic.apps.bench.gpu_summary", "dic.apps.train.loop", "dic.apps.evaluate.runner"]
    proc = subprocess.run([sys.executable, "-c", _HIDE, ",".join(hidden), ",".join(entry)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "codes")})
    assert proc.returncode == 0 and "imports ok" in proc.stdout, proc.stderr[-2000:]
    # the check can fail: compressai 1.2.8 needs torch_geometric at import
    proc = subprocess.run([sys.executable, "-c", _HIDE, ",".join(hidden + ["torch_geometric"]), "compressai"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "torch_geometric" in proc.stderr


def test_a_failed_install_stops_the_check_with_one_json(tmp_path):
    """Stage 0 for real: a Python without compressai, a wheels folder whose wheels do not bring
    it: the wheels are unpacked into a temporary folder (this Python has no pip), the import
    check fails, the check stops at once with its JSON file, and the folder is removed."""
    out = tmp_path / "out"
    _fake_wheel(tmp_path / "wheels")
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = _run("--cpu", out=out, PYTHON=str(_python_without_site(tmp_path)), WHEELS=str(tmp_path / "wheels"),
                TMPDIR=str(temp))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "== deps (limit 120 s)" in proc.stdout and "installed 1 wheels into" in proc.stdout
    assert "the imports still fail" in proc.stderr and "no other stage can run" in proc.stderr
    data = json.loads((out / "gpu_check.json").read_text())
    assert data["stages"] == [{"stage": "deps", "rc": 1}]
    assert [line.split("\t")[0] for line in (out / "stages.tsv").read_text().splitlines()] == ["deps"]
    assert not list(temp.iterdir())  # the temporary folder is gone
