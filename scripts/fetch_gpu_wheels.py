#!/usr/bin/env python
"""The wheels ``scripts/gpu_check.sh`` installs on a CUDA machine that lacks this project's
pure dependencies (issue 23: Python 3.12, PyTorch 2.11, NumPy 2, no CompressAI, pytorch-msssim,
imagesize or pytest, and no network).

On a machine with PyPI (any Python, any OS), download them as CPython 3.12 manylinux x86_64
wheels, without their dependencies, into a git-ignored folder:

    python scripts/fetch_gpu_wheels.py                 # → wheels/
    python scripts/fetch_gpu_wheels.py --dry-run       # print the pip command, download nothing

then copy the repository (wheels/ included) to the CUDA machine and run
``bash scripts/gpu_check.sh``: when ``import compressai`` fails there, its first stage runs

    python scripts/fetch_gpu_wheels.py --install TMPDIR --check --python PYTHON

which installs every wheel of wheels/ into TMPDIR (``pip install --no-deps --no-index
--target``; without pip, wheels are unpacked as the zip archives they are) and checks that the
project's imports work with TMPDIR and codes/ on PYTHONPATH. Nothing is installed into the
machine's environment and no other torch or NumPy is pulled: CompressAI 1.2.8's metadata asks
for NumPy < 2, but its compiled rANS coder works with NumPy 2 (issue 23), hence ``--no-deps``.

The list is what ``import compressai`` (1.2.8 imports torch_geometric, einops and pandas at
import time, and torch_geometric requests, psutil and xxhash), ``dic`` and the CUDA tests
(pytest) need beyond that machine's packages, at the versions this repository is tested with
(constraints.txt and its .venv). ``tests/test_gpu_check.py`` checks the list by importing the
project with every other package hidden.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "wheels"

#: (requirement, why) — the packages a CUDA machine like issue 23's lacks.
PACKAGES = (
    ("compressai==1.2.8", "the entropy models, layers and rANS coder"),
    ("pytorch-msssim==1.0.0", "MS-SSIM (dic.metrics, dic.losses)"),
    ("imagesize==2.0.1", "image sizes without decoding (dic.data.io)"),
    ("einops==0.8.2", "imported by compressai"),
    ("pandas==3.0.6", "imported by compressai"),
    ("torch-geometric==2.8.1", "imported by compressai"),
    ("requests==2.34.2", "imported by torch_geometric"),
    ("urllib3==2.8.0", "requests"),
    ("idna==3.21", "requests"),
    ("charset-normalizer==3.5.3", "requests"),
    ("certifi==2026.10.19.post1", "requests"),
    ("psutil==7.2.2", "imported by torch_geometric"),
    ("xxhash==4.1.0", "imported by torch_geometric"),
    ("pytest==9.2.0", "the CUDA tests"),
    ("pluggy==1.7.0", "pytest"),
    ("iniconfig==2.3.1", "pytest"),
    ("pygments==2.21.0", "pytest"),
    ("pytest-timeout==2.4.0", "pytest.ini's timeout"),
)
#: Modules the GPU check needs importable (the first stage's test).
CHECK_IMPORTS = ("compressai", "compressai.models", "pytorch_msssim", "imagesize", "pytest")
#: manylinux tags accepted: glibc 2.17 to 2.34. CompressAI 1.2.8's only Linux wheels are
#: manylinux_2_34: the CUDA machine needs glibc ≥ 2.34 (Ubuntu 22.04, RHEL 9 or newer).
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64")


def download_command(dest: Path, python_version: str = "3.12") -> List[str]:
    """The ``pip download`` command for every wheel of :data:`PACKAGES`."""
    abi = "cp" + python_version.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", python_version, "--implementation", "cp", "--abi", abi, "--abi", "none",
           "--abi", "abi3", "--disable-pip-version-check"]
    for platform in PLATFORMS + ("any",):
        cmd += ["--platform", platform]
    return cmd + [req for req, _ in PACKAGES]


def wheels_in(folder: Path) -> List[Path]:
    return sorted(Path(folder).glob("*.whl"))


def has_pip(python: str = sys.executable) -> bool:
    return subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0


def install(wheels: Sequence[Path], target: Path, use_pip: Optional[bool] = None, python: str = sys.executable) -> str:
    """Install ``wheels`` into ``target`` without dependencies or an index: with ``python``'s pip
    when it has one (``use_pip`` None) or when asked, else by unpacking each wheel (a zip archive
    whose top level is what site-packages receives). Returns how."""
    target.mkdir(parents=True, exist_ok=True)
    if use_pip is None:
        use_pip = has_pip(python)
    if use_pip:
        subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", "--quiet",
                        "--disable-pip-version-check", "--target", str(target), *map(str, wheels)], check=True)
        return "pip"
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    return "unzip"


def check_imports(target: Path, modules: Sequence[str] = CHECK_IMPORTS, python: str = sys.executable
                  ) -> subprocess.CompletedProcess:
    """Import ``modules`` in a fresh ``python`` with ``target`` and codes/ first on PYTHONPATH."""
    path = os.pathsep.join([str(target), str(ROOT / "codes"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('imports ok')"
    return subprocess.run([python, "-W", "ignore", "-c", code, *modules], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default=str(DEFAULT_DEST), help="the wheels' folder (default: wheels/)")
    parser.add_argument("--python-version", default="3.12", help="target CPython version (default 3.12)")
    parser.add_argument("--dry-run", action="store_true", help="print the download command only")
    parser.add_argument("--install", metavar="DIR", default=None,
                        help="install the folder's wheels into DIR instead of downloading (gpu_check.sh)")
    parser.add_argument("--no-pip", action="store_true", help="with --install: unpack the wheels without pip")
    parser.add_argument("--check", action="store_true", help="with --install: then import what the check needs")
    parser.add_argument("--python", default=sys.executable,
                        help="with --install: the Python whose pip installs and that checks (default: this one)")
    args = parser.parse_args(argv)
    dest = Path(args.dest)
    if args.install is None:
        cmd = download_command(dest, args.python_version)
        print(" ".join(cmd))
        if args.dry_run:
            return 0
        dest.mkdir(parents=True, exist_ok=True)
        rc = subprocess.run(cmd).returncode
        if rc == 0:
            print(f"{len(wheels_in(dest))} wheels in {dest}; copy the folder with the repository to the CUDA machine")
        return rc
    wheels = wheels_in(dest)
    if not wheels:
        print(f"fetch_gpu_wheels: no wheels in {dest}: run `python scripts/fetch_gpu_wheels.py` on a machine with "
              "PyPI and copy the folder here", file=sys.stderr)
        return 2
    how = install(wheels, Path(args.install), use_pip=False if args.no_pip else None, python=args.python)
    print(f"installed {len(wheels)} wheels into {args.install} ({how}, no dependencies, no index)")
    if args.check:
        proc = check_imports(Path(args.install), python=args.python)
        if proc.returncode != 0:
            print(f"fetch_gpu_wheels: the imports still fail:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        print(f"{', '.join(CHECK_IMPORTS)}: {proc.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
