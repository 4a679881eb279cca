"""The launchers guard their own imports: Ctrl-C while torch loads is one line and exit 130."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

from dic.apps.launch import INTERRUPTED, launch

ROOT = Path(__file__).resolve().parents[1]

SLOW_MODULE = """
import sys, time
print("importing", file=sys.stderr, flush=True)
time.sleep(60)  # a slow import: torch's, on a cold disk
def main(argv=None):
    return 0
"""


def test_ctrl_c_while_the_command_module_imports_is_one_line(tmp_path):
    """A real SIGINT while the command's module is being imported: exit 130, one line."""
    (tmp_path / "slow_command.py").write_text(SLOW_MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "codes")])}
    process = subprocess.Popen([sys.executable, "-c", "import sys; from dic.apps.launch import launch; "
                                "sys.exit(launch('slow_command'))"], env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's
    assert process.stderr.readline().strip() == "importing"
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == INTERRUPTED, err
    assert "Traceback" not in err and err.strip().splitlines() == ["interrupted (Ctrl-C) while loading; nothing was written"]


def test_launch_runs_the_module_main_with_argv(capsys):
    assert launch("dic.apps.cli", ["list", "losses"]) == 0
    assert "mse" in capsys.readouterr().out.split()


def test_train_and_test_launchers_answer_help_without_torch():
    for function, usage in (("dic_train", "usage: dic train"), ("dic_test", "usage: dic test")):
        script = (f"import sys; sys.argv = ['x', '--help']; from dic.apps.launch import {function}\n"
                  f"try:\n    {function}()\nexcept SystemExit as e:\n    assert e.code == 0\n"
                  "assert 'torch' not in sys.modules, 'torch imported'")
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "codes")})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(usage) and "--set" in proc.stdout


def test_every_launcher_goes_through_launch():
    """The console scripts and train.py / test.py enter through dic.apps.launch, not the
    command modules (whose imports would be outside the guard)."""
    setup = (ROOT / "setup.py").read_text()
    for script, function in (("dic", "dic"), ("dic-train", "dic_train"), ("dic-test", "dic_test")):
        assert f'"{script}=dic.apps.launch:{function}"' in setup
    for launcher, function in (("train.py", "dic_train"), ("test.py", "dic_test")):
        tree = ast.parse((ROOT / launcher).read_text())
        imports = [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   for alias in node.names]
        assert imports == [("dic.apps.launch", function)], launcher
