"""Installing beside a user's own tools: setup.py declares ranges, constraints.txt pins what
this repository is tested with, and `make` / CI install with those pins."""
from __future__ import annotations

import ast
import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INSTALL_REQUIRES":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no INSTALL_REQUIRES")


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def pins() -> dict:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.lower()] = version
    return out


def test_setup_declares_ranges_not_exact_versions():
    reqs = requirements()
    assert reqs and not [r for r in reqs if "==" in r]
    torch = next(r for r in reqs if name_of(r) == "torch")
    assert ">=" in torch  # a CUDA build or a newer torch in the user's environment satisfies it


def test_constraints_pin_every_requirement_to_the_installed_version():
    pinned = pins()
    for requirement in requirements():
        name = name_of(requirement)
        assert name in pinned, f"{name} is not pinned in constraints.txt"
        assert metadata.version(name) == pinned[name], f"{name}: installed {metadata.version(name)}, pinned {pinned[name]}"


def test_make_and_ci_install_with_the_constraints():
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()
