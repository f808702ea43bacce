"""Golden cases for tests files: the whole output of `wlmap test`, compared character by character.

Each folder under tests/cases/tests-file/ holds a `mapping.tests.yaml` (and any file it names) and `expected.txt`;
it is copied beside that folder's shared `mapping.yaml` and run as `wlmap test mapping.yaml`. `ok-*` folders exit
0, the others 1. `WLMAP_UPDATE_GOLDEN=1 pytest tests/test_tests_file_golden.py` rewrites every expected.txt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).parent / "cases" / "tests-file"
UPDATE = os.environ.get("WLMAP_UPDATE_GOLDEN") == "1"


def _case_folders() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir() and (p / "mapping.tests.yaml").exists())


def _run(case: Path, work: Path) -> tuple[int, str]:
    folder = work / case.name
    shutil.copytree(case, folder)
    shutil.copy(CASES / "mapping.yaml", folder / "mapping.yaml")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONIOENCODING": "utf-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
    }
    command = [sys.executable, "-c", "from mapper.cli.main import main; main()", "test", "mapping.yaml"]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Every case run once, in parallel (each run is a fresh process)."""
    work = tmp_path_factory.mktemp("tests-file")
    folders = _case_folders()
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip((f.name for f in folders), pool.map(lambda f: _run(f, work), folders), strict=True))


def test_there_are_cases_of_both_kinds() -> None:
    names = [f.name for f in _case_folders()]
    assert len(names) >= 12
    assert any(n.startswith("ok-") for n in names) and any(not n.startswith("ok-") for n in names)


@pytest.mark.parametrize("case", _case_folders(), ids=lambda p: p.name)
def test_golden(case: Path, outputs: dict[str, tuple[int, str]]) -> None:
    code, output = outputs[case.name]
    expected_file = case / "expected.txt"
    if UPDATE:
        expected_file.write_text(output, encoding="utf-8")
    assert expected_file.exists(), f"{case.name}: no expected.txt (run with WLMAP_UPDATE_GOLDEN=1, then read it)"
    assert output == expected_file.read_text(encoding="utf-8")
    assert code == (0 if case.name.startswith("ok-") else 1), f"{case.name}: exit code {code}\n{output}"


@pytest.mark.parametrize("case", [c for c in _case_folders() if not c.name.startswith("ok-")], ids=lambda p: p.name)
def test_a_mistake_says_what_it_is_and_where(case: Path, outputs: dict[str, tuple[int, str]]) -> None:
    """Every mistake folder says what it tests; a problem in the file is located (line:column) in it."""
    assert (case / "mapping.tests.yaml").read_text(encoding="utf-8").startswith("# Mistake:"), case.name
    _, output = outputs[case.name]
    if not case.name.startswith("fail-"):
        assert output.startswith("mapping.tests.yaml:"), output
        assert output.split(":")[1].isdigit(), output
