"""The tests-file JSON Schema: one file published for editors and packaged for `wlmap test`, and every shipped
tests file names it in its first line and keeps to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from mapper.language import source

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "schemas" / "tests.schema.json"
PACKAGED = ROOT / "mapper" / "rehearse" / "tests.schema.json"
MODELINE = "# yaml-language-server: $schema=../schemas/tests.schema.json"


def test_the_published_schema_is_the_packaged_one_and_wlmap_prints_it() -> None:
    assert PUBLISHED.read_bytes() == PACKAGED.read_bytes()
    printed = subprocess.run(
        [sys.executable, "-m", "mapper.cli", "schema", "--tests"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed == PUBLISHED.read_text(encoding="utf-8")
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


def test_every_shipped_tests_file_names_the_schema_and_keeps_to_it() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(PUBLISHED.read_text(encoding="utf-8")))
    files = sorted((ROOT / "mappings").glob("*.tests.yaml"))
    assert len(files) >= 5
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert text.splitlines()[0] == MODELINE, file.name
        # read as wlmap reads it (YAML 1.2 scalars, as editors do: a date is text, not a datetime)
        document, problems = source.read(text, file.name)
        assert problems == [] and document is not None, file.name
        assert [e.message for e in validator.iter_errors(document.data)] == [], file.name


def test_every_key_the_schema_knows_is_described_for_editors() -> None:
    """Completion in an editor shows each key's description: none may be missing."""
    schema = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    missing: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, sub in (node.get("properties") or {}).items():
                if "description" not in sub and "$ref" not in sub:
                    missing.append(f"{where}.{key}")
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for sub in node:
                walk(sub, where)

    walk(schema, "")
    assert missing == []
