"""The layout of mapper/: the import contracts in pyproject.toml hold, bite, and only `cli` reads the environment."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mapper"
TEXT_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".json", ".toml", ".txt", ".graphql")


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
    """`os.environ` and `os.getenv` appear only in mapper/cli: every other layer is given its values. Setting a
    variable for a library that reads it (`os.environ[NAME] = value`, service.metrics) is not reading."""
    readers = []
    for file in sorted(PACKAGE.rglob("*.py")):
        if file.is_relative_to(PACKAGE / "cli"):
            continue
        tree = ast.parse(file.read_text(encoding="utf-8"))
        written = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
        }
        for node in ast.walk(tree):
            if id(node) in written:
                continue
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append(f"{file.relative_to(ROOT)}:{node.lineno}")
    assert readers == []


def test_no_path_outside_the_repository_is_cited() -> None:
    """Code, comments, samples and docs cite public sources, never a folder of the machine they were written on."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    outside = ("/" + "work/", "../" + "shared/", "/" + "root/", "/" + "home/")
    found = []
    for name in tracked.splitlines():
        path = ROOT / name
        if path.suffix not in TEXT_SUFFIXES or not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if any(fragment in line for fragment in outside):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []
