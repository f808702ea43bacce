"""Golden cases for `wlmap validate`: the whole output of the real command, compared character by character.

Each folder under tests/cases/validate/ is one case:

    mapping.yaml    the file checked (run as `wlmap validate mapping.yaml` with the folder as working directory)
    expected.txt    everything the command prints: stdout, then stderr
    args.txt        optional: more command-line arguments (e.g. `--format json`, `--graphql-schema schema.graphql`)
    exit.txt        optional: the exit code; default 0 for `ok-*` folders and 1 for the others

The command runs with a fixed environment (ENV below) so that "environment variable ... is not set" warnings
are the same on every machine. `WLMAP_UPDATE_GOLDEN=1 pytest tests/test_validate_golden.py` rewrites every
expected.txt from the current output: read each changed one before keeping it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).parent / "cases" / "validate"
UPDATE = os.environ.get("WLMAP_UPDATE_GOLDEN") == "1"

# The only environment variables the cases can rely on; a case that needs a warning uses any other name.
ENV = {
    "SCOPE_GRAPHQL_URL": "https://cms.example.com/api/v3/graphql",
    "SCOPE_API_TOKEN": "scope-token",
    "TARGET_BASE_URL": "https://target.example.com",
    "TARGET_USER": "integration",
    "TARGET_PASSWORD": "target-password",
    "TARGET_TOKEN": "target-token",
    "TARGET_API_KEY": "target-api-key",
    "OAUTH_TOKEN_URL": "https://login.example.com/oauth/token",
    "OAUTH_CLIENT_ID": "wlmap",
    "OAUTH_CLIENT_SECRET": "oauth-secret",
    "SAP_BASE_URL": "https://s4.example.com:44300",
    "SAP_CLIENT": "100",
}


def _case_folders() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir() and (p / "mapping.yaml").exists())


def _expected_exit(case: Path) -> int:
    exit_file = case / "exit.txt"
    if exit_file.exists():
        return int(exit_file.read_text().strip())
    return 0 if case.name.startswith("ok-") else 1


def _run(case: Path) -> tuple[int, str]:
    args_file = case / "args.txt"
    args = shlex.split(args_file.read_text()) if args_file.exists() else []
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONIOENCODING": "utf-8",
        "LC_ALL": "C.UTF-8",
        "NO_COLOR": "1",
        "TERM": "dumb",
        **ENV,
    }
    command = [sys.executable, "-c", "from mapper.cli.main import main; main()", "validate", "mapping.yaml", *args]
    done = subprocess.run(command, cwd=case, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def outputs() -> dict[str, tuple[int, str]]:
    """Every case run once, in parallel (each run is a fresh process of ~0.2 s)."""
    folders = _case_folders()
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        return dict(zip((f.name for f in folders), pool.map(_run, folders), strict=True))


def test_there_are_cases() -> None:
    names = [f.name for f in _case_folders()]
    assert len(names) >= 60
    assert any(n.startswith("ok-") for n in names)


@pytest.mark.parametrize("case", _case_folders(), ids=lambda p: p.name)
def test_golden(case: Path, outputs: dict[str, tuple[int, str]]) -> None:
    code, output = outputs[case.name]
    expected_file = case / "expected.txt"
    if UPDATE:
        expected_file.write_text(output, encoding="utf-8")
    assert expected_file.exists(), f"{case.name}: no expected.txt (run with WLMAP_UPDATE_GOLDEN=1, then read it)"
    assert output == expected_file.read_text(encoding="utf-8")
    assert code == _expected_exit(case), f"{case.name}: exit code {code}\n{output}"


@pytest.mark.parametrize("case", [c for c in _case_folders() if not c.name.startswith("ok-")], ids=lambda p: p.name)
def test_negative_case_says_what_it_tests(case: Path) -> None:
    """Every mistake folder starts with a `# Mistake:` line, so a reader knows what the expected text is about."""
    first = (case / "mapping.yaml").read_bytes().split(b"\n", 1)[0]
    assert first.startswith(b"# Mistake:"), case.name


def test_every_error_line_is_located(outputs: dict[str, tuple[int, str]]) -> None:
    """In text output, every problem names file:line:column (or the whole file) and problems come in line order."""
    for name, (_, output) in outputs.items():
        args_file = CASES / name / "args.txt"
        if args_file.exists() and "--format" in args_file.read_text():
            continue
        heads = [line for line in output.splitlines() if line.startswith("mapping.yaml")]
        lines = []
        for head in heads:
            place = head.split(": ", 1)[0]
            parts = place.split(":")
            assert len(parts) in (1, 3), f"{name}: {head}"
            lines.append(int(parts[1]) if len(parts) == 3 else 0)
        assert lines == sorted(lines), f"{name}: problems are not in line order"
