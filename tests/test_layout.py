"""The layout of mapper/: the import contracts in pyproject.toml hold, bite, and only `cli` reads the environment."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mapper"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts, importing `mapper` from `root`."""
    command = [str(Path(sys.executable).with_name("lint-imports")), "--config", str(ROOT / "pyproject.toml")]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)})


def test_a_forbidden_import_breaks_a_contract(tmp_path: Path) -> None:
    """The contracts are not vacuous: the listener importing the runner is reported, naming the line."""
    shutil.copytree(PACKAGE, tmp_path / "mapper", ignore=shutil.ignore_patterns("__pycache__"))
    listener = tmp_path / "mapper" / "service" / "listener.py"
    listener.write_text(listener.read_text() + "\nfrom mapper.run import runner  # noqa\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode == 1, broken.stdout
    assert "mapper.service.listener -> mapper.run.runner" in broken.stdout


def test_only_the_command_line_reads_the_environment() -> None:
    """`os.environ` and `os.getenv` appear only in mapper/cli: every other layer is given its values."""
    readers = []
    for file in sorted(PACKAGE.rglob("*.py")):
        if file.is_relative_to(PACKAGE / "cli"):
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append(f"{file.relative_to(ROOT)}:{node.lineno}")
    assert readers == []
