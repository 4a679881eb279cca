"""The README is a front door whose commands work (issue 22).

Every command of a fenced ``bash`` block of README.md is either run here, at small sizes, or on
:data:`RUN_BY_MAKE`, the commands ``make test`` / ``make demo`` run themselves. The README stays
short, its links and those of the docs pages resolve inside the repository, and the figures of
docs/demo.md are those of the demo's reports whenever ``results/demo/`` is there."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"

#: README commands that the Makefile runs (its targets and its install line), not this test.
RUN_BY_MAKE = {
    "make demo": "the Makefile's demo target",
    "make test": "the Makefile's test target (CI runs it)",
    "source .venv/bin/activate": "the .venv both targets create",
    "pip install -e .": "the Makefile's install line, without the pins",
    "pip install -c constraints.txt -e .": "the Makefile's install line (it adds the [test] extra)",
}

#: Flags appended to the README's commands so that they run in seconds, into a temporary root.
SMALL = {
    "scripts/prepare_samples.py": ["--out", "{tmp}/data/samples", "--no-progress"],
    "train.py": ["--set", "path.root={tmp}", "train.step.value=1", "train.step.val_freq=1",
                 "train.step.warm_up_counts=0", "train.step.milestones=[]", "logger.print_freq=1",
                 "logger.save_checkpoint_freq=1", "logger.num_val_images=1", "use_tb_logger=false",
                 "datasets.train.n_workers=0", "datasets.train.batch_size=2", "datasets.val.patch_size=64",
                 "datasets.val.max_images=1"],
    "test.py": ["--set", "path.root={tmp}", "datasets.samples.level=[3]", "datasets.samples.max_images=1",
                "test.baselines=[nlm-webp]", "test.baseline_qualities=[5,50]", "test.save_images=false"],
}
#: The README's output names (and the user's photograph), put in the temporary folder.
USER_FILES = ("my_photo.jpg", "my_photo.dic", "my_photo_clean.png", "tiny_level3.png")

# Runs the commands in one process (one torch import): `dic` as its console script does, the
# .py files as `python FILE` does; a command's exit status is its SystemExit code.
DRIVER = r"""
import glob, json, runpy, sys
from dic.apps.cli import main as dic_main
status = []
for argv in json.loads(sys.argv[1]):
    argv = [a for arg in argv for a in (sorted(glob.glob(arg)) or [arg] if "*" in arg else [arg])]
    print("$ " + " ".join(argv), flush=True)
    try:
        if argv[0] == "dic":
            code = dic_main(argv[1:])
        else:
            sys.argv = argv[1:]
            runpy.run_path(argv[1], run_name="__main__")
            code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    status.append(code)
    if code:
        break
print("STATUS " + json.dumps(status))
"""


def readme_commands(text: str) -> list:
    """The commands of the fenced bash blocks: comments dropped, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#\s.*$", "", line).strip()
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def quick_start(text: str) -> list:
    """The commands of the blocks the README marks as run by this test."""
    marked = re.findall(r"<!-- tests/test_readme.py runs this block[^>]*-->\n(```bash\n.*?```)", text, flags=re.S)
    return [c for block in marked for c in readme_commands(block)]


def for_test(command: str, tmp: Path) -> list:
    """The argv this test runs for a README command: small sizes, outputs under ``tmp``."""
    argv = command.split()
    if argv[0] == "python":
        argv = [sys.executable] + argv[1:]
        argv += [a.format(tmp=tmp) for a in SMALL[argv[1]]]
        argv[1] = str(REPO / argv[1])
    elif argv[0] != "dic":
        raise AssertionError(f"the test does not know how to run {command!r}")
    return [str(tmp / a) if a in USER_FILES else str(tmp / a) if a.startswith("results/") else a for a in argv]


def test_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for topic in ("docs/demo.md", "docs/performance.md", "docs/formats.md", "docs/robustness.md",
                  "docs/reproducing.md", "docs/adding_a_model.md", "docs/options.md", "docs/architecture.md"):
        assert f"]({topic})" in text, f"the README does not link {topic}"


def test_every_readme_command_is_run_by_this_test_or_by_make():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    tested = set(quick_start(README.read_text(encoding="utf-8")))
    assert tested, "no block of the README is marked as run by tests/test_readme.py"
    unrun = [c for c in commands if c not in tested and c not in RUN_BY_MAKE]
    assert not unrun, f"README commands that nothing runs: {unrun}"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "VENV := .venv" in makefile and "-c constraints.txt -e" in makefile


def test_quick_start_runs(tmp_path):
    """Compress and decompress a photograph with the shipped weights, train the tiny file for a
    few steps, evaluate it and plot the curves: every command of the marked blocks, in order."""
    commands = quick_start(README.read_text(encoding="utf-8"))
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:56, 0:88]
    photo = np.stack([x * 2.5, y * 4.0, 128 + 60 * np.sin(x / 9.0)], axis=-1) + rng.normal(0, 12, (56, 88, 3))
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(tmp_path / "my_photo.jpg", quality=95)
    argvs = [for_test(c, tmp_path) for c in commands]
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    status = json.loads(proc.stdout.rsplit("STATUS ", 1)[1]) if "STATUS " in proc.stdout else None
    assert proc.returncode == 0 and status == [0] * len(argvs), log
    assert (tmp_path / "my_photo.dic").read_bytes()[:8] == b"\x89DIC\r\n\x1a\n"
    assert Image.open(tmp_path / "my_photo_clean.png").size == (88, 56)
    assert (tmp_path / "experiments" / "tiny" / "checkpoints" / "best.pth").is_file()
    assert (tmp_path / "results" / "tiny" / "samples_level3" / "snr-decomp.json").is_file()
    assert (tmp_path / "tiny_level3.png").is_file()


# ---------------------------------------------------------------------------------------- links
def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _links(path: Path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", ["README.md"] + sorted(p.relative_to(REPO).as_posix() for p in DOCS.glob("*.md")))
def test_links_resolve_inside_the_repository(page):
    path = REPO / page
    for link in _links(path):
        assert "://" not in link and not link.startswith("/"), f"{page}: {link} points outside the repository"
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.is_file() and REPO in file.parents, f"{page}: {link} does not exist here"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, f"{page}: {link}: no such heading"


# ---------------------------------------------------------------------------------- the demo page
RESULTS = REPO / "results" / "demo"


def _report_means(level: int) -> dict:
    sums = {}
    for model in ("snr-decomp", "cheng2020-anchor"):
        with open(RESULTS / f"samples_level{level}" / f"{model}.csv", newline="") as f:
            for row in csv.DictReader(f):
                sums.setdefault(row["entry"], []).append((float(row["bpp"]), float(row["psnr"])))
    return {entry: tuple(np.mean(values, axis=0)) for entry, values in sums.items()}


@pytest.mark.skipif(not (RESULTS / "samples_level4" / "snr-decomp.csv").is_file(),
                    reason="results/demo/ is made by make demo")
def test_demo_page_figures_are_the_reports():
    """docs/demo.md's table (one column per shipped file) and verdict are the demo's reports."""
    from dic.apps.evaluate.showcase import format_verdict, verdict_rows

    text = (DOCS / "demo.md").read_text(encoding="utf-8")
    columns = ["demo_joint_l1", "demo_joint_l2", "demo_joint_l3", "demo_codec_l1", "demo_codec_l2", "demo_codec_l3"]
    reports = {}
    for level in (1, 2, 3, 4):
        row = re.search(rf"^\| {level} \| [\d.]+ \|(.*)$", text, flags=re.M)
        assert row, f"docs/demo.md has no table row for level {level}"
        cells = [c.strip() for c in row.group(1).split("|")][:6]
        means = _report_means(level)
        for entry, cell in zip(columns, cells):
            bpp, psnr = means[entry]
            assert cell == f"{bpp:.3f} / {psnr:.2f}", f"level {level}, {entry}: page {cell}, reports {bpp:.4f} / {psnr:.3f}"
        folder = RESULTS / f"samples_level{level}"
        reports[folder.name] = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))
                                if p.stem in ("snr-decomp", "cheng2020-anchor", "classical-envelope")]
    rows = verdict_rows(reports, "snr-decomp", "cheng2020-anchor")
    for line in format_verdict(rows, "snr-decomp", "cheng2020-anchor").splitlines()[2:]:
        assert line in text, f"docs/demo.md lacks the verdict line {line!r}"
    readme = README.read_text(encoding="utf-8")
    for row in rows:
        if row["level"] in (3, 4):  # the README's summary of the verdict
            assert f"{row['envelope'].psnr:.2f} dB (level {row['level']})" in readme
