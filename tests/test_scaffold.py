"""`wlmap new NAME --target KIND`: for every kind, the two files it writes pass `wlmap validate --strict` (with
their tests' env) and `wlmap test` at once, and a dry run of their first case shows no secret of that env."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mapper.cli.scaffold import Target

ROOT = Path(__file__).resolve().parents[1]
SECRET_NAME = re.compile(r".*(PASSWORD|TOKEN|SECRET|KEY)$")


def wlmap(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SNOW_", "SAP_", "MAXIMO_", "TARGET_"))}
    environment.update(env or {}, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "mapper.cli", *args]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


@pytest.mark.parametrize("kind", [t.value for t in Target])
def test_new_writes_a_mapping_and_cases_that_pass_at_once(project: Path, kind: str) -> None:
    made = wlmap(project, "new", f"our-{kind}", "--target", kind)
    assert made.returncode == 0, made.stderr
    mapping, tests = project / "mappings" / f"our-{kind}.yaml", project / "mappings" / f"our-{kind}.tests.yaml"
    assert made.stdout.startswith(f"wrote {mapping.relative_to(project)} and {tests.relative_to(project)}")
    assert mapping.read_text().splitlines()[0] == "# yaml-language-server: $schema=../schemas/mapping.schema.json"
    assert tests.read_text().splitlines()[0] == "# yaml-language-server: $schema=../schemas/tests.schema.json"
    assert re.findall(r"__[A-Z]+__", mapping.read_text() + tests.read_text()) == []  # every placeholder filled

    env = {str(k): str(v) for k, v in yaml.safe_load(tests.read_text())["env"].items()}
    checked = wlmap(project, "validate", "--strict", str(mapping), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = wlmap(project, "test", str(mapping))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    counts = re.search(r"(\d+) passed, (\d+) failed", tested.stdout)
    assert counts is not None and int(counts.group(1)) >= 5 and counts.group(2) == "0", tested.stdout
    assert "FAIL" not in tested.stdout

    dry = wlmap(project, "run", str(mapping), "--case", "1")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    secrets = [value for name, value in env.items() if SECRET_NAME.fullmatch(name)]
    assert secrets and [s for s in secrets if s in dry.stdout + dry.stderr] == []
    assert "***" in dry.stdout


def test_new_keeps_what_exists_and_refuses_a_name_that_cannot_be_one(project: Path) -> None:
    assert wlmap(project, "new", "ours", "--target", "rest").returncode == 0
    again = wlmap(project, "new", "ours", "--target", "sap")
    assert again.returncode == 1
    assert (
        again.stderr
        == "wlmap new: mappings/ours.yaml and mappings/ours.tests.yaml already exist; pass --force to overwrite\n"
    )
    assert "--target rest" in (project / "mappings" / "ours.yaml").read_text()
    assert wlmap(project, "new", "ours", "--target", "sap", "--force").returncode == 0
    assert "--target sap" in (project / "mappings" / "ours.yaml").read_text()
    bad = wlmap(project, "new", "Our Mapping", "--target", "rest")
    assert bad.returncode == 2 and "cannot be a mapping name" in bad.stderr
    unknown = wlmap(project, "new", "x", "--target", "oracle")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_without_the_schemas_folder_there_is_no_modeline_to_a_missing_file(tmp_path: Path) -> None:
    assert wlmap(tmp_path, "new", "ours", "--target", "maximo", "--folder", "elsewhere").returncode == 0
    assert not (tmp_path / "elsewhere" / "ours.yaml").read_text().startswith("# yaml-language-server")
