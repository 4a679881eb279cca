"""The package's shape, as docs/architecture.md states it: imports point one way, no import
hides inside a function to dodge a cycle, and no application module grows past ~350 lines."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "codes" / "dic"

#: Layers from the bottom up; a module may import its own layer's allowed peers and any lower layer.
LAYERS = {
    "helpers": {"errors", "fileio", "logger", "registry", "metrics", "conventions", "__init__"},
    "library": {"models", "data", "losses", "checkpoints", "codec"},
    "config": {"config"},
    "apps": {"apps"},
}
#: What each library package may import inside the library (everything may import the helpers).
LIBRARY_DEPENDS = {
    "models": set(),
    "data": set(),
    "losses": set(),
    "checkpoints": {"models"},
    "codec": {"models", "checkpoints", "data"},
}
#: Function-level imports allowed: heavy or optional third-party modules, loaded on demand.
LAZY_ALLOWED = ("bm3d", "matplotlib", "scipy", "skimage", "torch.utils.tensorboard", "compressai.zoo",
                "torch._subclasses", "resource")
#: The command line's start-up (docs/cli.md): ``dic --help``, ``list``, ``bdrate`` and ``plot``
#: import no torch, so these command modules import a command's heavy dependencies (torch, the
#: codec, the checkpoints) in the function that runs it, after the command's fast checks.
DEFERRED_FOR_STARTUP = {"dic.apps.cli", "dic.apps.codec_cmd", "dic.apps.evaluate.rd"}
#: Application components whose choice lists the option schema reads (LOSS_CAP_MODES, SCHEMES,
#: PROTOCOLS...): defined once, where they are used. They import no config and no other app module.
CONFIG_READS = {"dic.apps.train.step", "dic.apps.train.schedule", "dic.apps.evaluate.protocol"}
MAX_APP_LINES = 350
OPTION_KEY = re.compile(r"(?<![\w.])(network|datasets|train|test|path|logger)\.([a-z_]+|$)")


def modules() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield ".".join(("dic",) + parts), path


def top(name: str) -> str:
    """The first component below ``dic`` of a module name (``dic.models.snr`` → ``models``)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(name: str) -> str:
    component = top(name)
    return next(layer for layer, members in LAYERS.items() if component in members)


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module name of a ``from`` import."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path) -> List[Tuple[str, bool, int]]:
    """(imported module, at function level?, line) for every import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = resolve(module, child, path.name == "__init__.py")
                found.append((target, in_function, child.lineno))
                if child.level or target == "dic":  # `from . import x` / `from dic import x` may name modules
                    found.extend((f"{target}.{a.name}", in_function, child.lineno) for a in child.names
                                 if (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                                 or (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).is_dir())
            visit(child, nested)

    visit(tree, False)
    return found


def dic_graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for module, path in modules():
        graph[module] = {name for name, lazy, _ in imports(module, path) if name.startswith("dic") and not lazy}
    return graph


def test_layers_import_downwards_only():
    order = list(LAYERS)
    bad = []
    for module, path in modules():
        for name, _, line in imports(module, path):
            if not name.startswith("dic.") or top(name) == top(module):
                continue
            here, there = layer_of(module), layer_of(name)
            if here == "config" and name in CONFIG_READS:
                continue
            if order.index(there) > order.index(here):
                bad.append(f"{path.relative_to(PACKAGE)}:{line} ({here}) imports {name} ({there})")
            elif here == there == "library" and top(name) not in LIBRARY_DEPENDS[top(module)]:
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: {top(module)} may not import {top(name)}")
    assert not bad, "imports against the layering of docs/architecture.md:\n" + "\n".join(bad)


def test_components_the_schema_reads_import_no_config_and_no_app():
    for module in CONFIG_READS:
        path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
        for name, _, line in imports(module, path):
            assert not name.startswith(("dic.config", "dic.apps")), f"{module}:{line} imports {name}"
    for package in ("dic.apps", "dic.apps.train", "dic.apps.evaluate"):  # importing them loads nothing
        path = PACKAGE.joinpath(*package.split(".")[1:], "__init__.py")
        assert not [n for n, _, _ in imports(package, path) if n.startswith("dic")], package


def test_the_library_has_no_command_line():
    """Parsers belong to the applications: no module below ``apps`` imports argparse (the fuzz
    campaign, which had one, is test tooling in tests/fuzzing/)."""
    bad = [f"{path.relative_to(PACKAGE)}:{line}" for module, path in modules() if layer_of(module) != "apps"
           for name, _, line in imports(module, path) if name == "argparse"]
    assert not bad, "argparse imported by library modules: " + ", ".join(bad)


def test_no_import_cycle_between_modules():
    graph = dic_graph()
    state: Dict[str, int] = {}
    cycles: List[List[str]] = []

    def walk(node: str, stack: List[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                # a package importing its own submodules (dic.models → dic.models.snr) and the
                # submodule importing a sibling through the package is not a cycle worth naming
                cycle = stack[stack.index(nxt):] + [nxt]
                if not all(m.startswith(cycle[0] + ".") or m == cycle[0] for m in cycle[1:]):
                    cycles.append(cycle)
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_function_level_imports_are_only_heavy_optional_dependencies():
    bad = []
    for module, path in modules():
        for name, lazy, line in imports(module, path):
            if lazy and not name.startswith(LAZY_ALLOWED) and module not in DEFERRED_FOR_STARTUP:
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: import of {name} inside a function")
    assert not bad, "\n".join(bad)


def test_application_modules_stay_short():
    long = [f"{path.relative_to(PACKAGE)}: {n} lines" for _, path in modules()
            if path.relative_to(PACKAGE).parts[0] == "apps"
            and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_APP_LINES]
    assert not long, f"application modules over {MAX_APP_LINES} lines:\n" + "\n".join(long)


def test_library_knows_no_option_keys():
    """Library messages name arguments, not YAML sections: no 'network.', 'datasets.' or 'train.'
    key appears in a string of the library (the config boundary adds them)."""
    bad = []
    for module, path in modules():
        if layer_of(module) != "library":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if OPTION_KEY.search(node.value):
                    bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value[:80]!r}")
    assert not bad, "option keys in library strings:\n" + "\n".join(bad)


@pytest.mark.parametrize("doc", ["architecture.md", "models.md", "data.md", "reproducing.md"])
def test_docstrings_point_into_this_repository(doc):
    """Every docs/<file> a docstring names exists, and nothing points outside the repository."""
    docs = PACKAGE.parents[1] / "docs"
    assert (docs / doc).is_file()
    for _, path in modules():
        text = path.read_text(encoding="utf-8")
        assert "shared/spec" not in text and "MODELS.md" not in text.replace("docs/models.md", "") and "DATA.md" not in text.replace("docs/data.md", ""), path
        for ref in {w.strip("(),.:;`'\"") for w in text.split() if w.startswith(("docs/", "(docs/", "`docs/"))}:
            target = PACKAGE.parents[1] / ref.split("#")[0].split("§")[0]
            assert target.exists(), f"{path}: names {ref}, which does not exist"
