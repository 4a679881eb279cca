"""``scripts/gpu_check.sh``: its CUDA plan (``--dry-run``), every stage run for real at tiny sizes
on the CPU (``--cpu``), one table and one JSON file, and a failing stage reported, not hidden."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dic.apps.bench.gpu_summary import collect, failed, format_summary

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _run(*args: str, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, **env})


def test_dry_run_plans_the_cuda_measurements(tmp_path):
    proc = _run("--dry-run", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    stages = [line for line in text.splitlines() if line.startswith("== ")]
    assert [s.split()[1] for s in stages] == ["cuda-tests", "coding", "train", "train-compile", "cross-device",
                                                 "cross-device-back"]
    assert "-m pytest -q -m cuda tests" in text
    assert "--N 192 --size 768x512 --device cuda" in text and "--train-batch 16 --train-size 256" in text
    assert "--train-variants ours,official-style,bf16,channels-last" in text and "compile,fast" in text
    assert "--encode-device cuda --decode-device cpu" in text and "--encode-device cpu --decode-device cuda" in text
    limits = [int(s.split("limit ")[1].split(" s")[0]) for s in stages]
    assert sum(limits) <= 450  # the stages' limits leave start-up time within 8 minutes
    assert not list(tmp_path.iterdir())  # nothing ran
    assert _run("--fast", out=tmp_path).returncode == 2


def test_cpu_mode_runs_every_stage(tmp_path):
    proc = _run("--cpu", out=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["stage"] for s in data["stages"]] == ["cuda-tests", "coding", "train", "train-compile", "cross-device",
                                                 "cross-device-back"]
    assert all(s["rc"] == 0 for s in data["stages"])
    assert data["cuda_tests"]["skipped"] >= 4 and data["cuda_tests"]["failures"] == 0  # marked, skipped on CPU
    coding = data["bench_coding"]["coding"]
    assert all(coding["round_trip_exact"].values()) and coding["checkerboard_symbols_identical"]
    assert data["bench_train"]["train"]["official-style"]["step_s"]["median"] > 0
    assert data["bench_compile"]["train"]["fast"] == {"skipped": "CUDA only"}
    for name in ("crossdevice", "crossdevice_back"):
        assert {r["outcome"] for r in data[name]["contexts"].values()} == {"identical"}
    assert "decode (s)" in proc.stdout and "speed-up vs official" in proc.stdout and data["table"] in proc.stdout


def test_a_failed_stage_fails_the_check(tmp_path):
    (tmp_path / "stages.tsv").write_text("coding\t0\t5\ntrain\t124\t90\n")
    data = collect(tmp_path)
    assert failed(data) and "TIMED OUT" in format_summary(data)
    (tmp_path / "stages.tsv").write_text("coding\t0\t5\n")
    assert not failed(collect(tmp_path))
