"""Properties of `wlmap validate` over any input: it never crashes, and every problem it finds is located.

Random YAML text, random JSON-like data written as YAML, and random edits of a valid mapping all go through
`loader.load_text`, the function both `wlmap validate` and the runner use. Also: the schema is described
everywhere, and the published copy is the one wlmap uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapper.errors import Problem
from mapper.language import compiler, loader, schema

ROOT = Path(__file__).resolve().parents[1]
VALID = (ROOT / "tests" / "cases" / "validate" / "ok-basic-auth-graphql" / "mapping.yaml").read_text(encoding="utf-8")
ENV = {
    name: "https://example.com"
    for name in ("SCOPE_GRAPHQL_URL", "SCOPE_API_TOKEN", "TARGET_BASE_URL", "TARGET_USER", "TARGET_PASSWORD")
}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_problems(text: str | bytes) -> list[Problem]:
    """Load; assert the promises every caller relies on; return the problems."""
    plan, problems = loader.load_text(text, "m.yaml", compiler.Options(env=ENV))
    lines = len(text.splitlines()) if isinstance(text, str) else text.count(b"\n") + 1
    for problem in problems:
        assert problem.message and problem.message[0] != " "
        assert problem.location.file == "m.yaml"
        if problem.location.line:  # 0 means the file as a whole
            assert 1 <= problem.location.line <= max(lines, 1) + 1, problem
            assert problem.location.column >= 1
            assert problem.location.width >= 1
        assert problem.severity in ("error", "warning")
    assert problems == sorted(problems, key=lambda p: p.sort_key)
    errors = [p for p in problems if p.severity == "error"]
    assert (plan is None) == bool(errors), problems
    return problems


# --------------------------------------------------------------------------------------- random text

YAMLISH = st.sampled_from(
    [
        *":-[]{}#&*!|>'\"%@`,? \n\t",
        "{{",
        "}}",
        "{%",
        "%}",
        "---",
        "...",
        "<<",
        "  ",
        "\n  ",
        "\n- ",
        "steps:",
        "name: x",
        "version: 1",
    ]
)


@FUZZ
@given(st.lists(st.one_of(YAMLISH, st.text(max_size=5)), max_size=40).map("".join))
def test_random_yaml_text_never_crashes(text: str) -> None:
    check_problems(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    check_problems(raw)


# --------------------------------------------------------------------------------------- random data

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["{{ event.name }}", "NO", "012345", "2.50", "{{", "a: b"]),
)
KEYS = st.one_of(
    st.sampled_from(
        [
            "version",
            "name",
            "trigger",
            "connections",
            "steps",
            "query",
            "extract",
            "skip_unless",
            "method",
            "path",
            "url",
            "json",
            "auth",
            "when",
            "for_each",
            "capture",
            "on_status",
            "timeout",
            "retry",
            "basic",
            "oauth2",
            "topics",
        ]
    ),
    st.text(min_size=1, max_size=10),
)
DATA = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)),
    max_leaves=25,
)


@FUZZ
@given(DATA)
def test_random_data_written_as_yaml_never_crashes(data: Any) -> None:
    check_problems(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(st.dictionaries(KEYS, DATA, max_size=8))
def test_random_top_level_keys_never_crash(data: dict[str, Any]) -> None:
    check_problems(yaml.safe_dump({"version": 1, **data}, allow_unicode=True, default_flow_style=False))


# --------------------------------------------------------------------------------------- mutations of a valid mapping

BASE = yaml.safe_load(VALID)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


PATHS = [p for p in _paths(BASE) if p]


def _mutate(data: Any, path: tuple[Any, ...], action: str, replacement: Any) -> Any:
    data = json.loads(json.dumps(data))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = replacement
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(parent[last])
    elif action == "duplicate" and isinstance(parent, dict):
        parent[f"{last}_copy"] = parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    return data


def test_the_base_mapping_is_valid() -> None:
    assert check_problems(VALID) == []


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["delete", "replace", "duplicate", "rename"]), DATA),
        min_size=1,
        max_size=3,
    )
)
def test_mutations_of_a_valid_mapping_never_crash(edits: list[tuple[tuple[Any, ...], str, Any]]) -> None:
    data: Any = BASE
    for path, action, replacement in edits:
        try:
            data = _mutate(data, path, action, replacement)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
    check_problems(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.text(max_size=6))
def test_text_edits_of_a_valid_mapping_never_crash(position: int, inserted: str) -> None:
    check_problems(VALID[:position] + inserted + VALID[position:])


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.integers(min_value=1, max_value=20))
def test_text_deletions_of_a_valid_mapping_never_crash(position: int, length: int) -> None:
    check_problems(VALID[:position] + VALID[position + length :])


# --------------------------------------------------------------------------------------- the schema


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, child in node.items():
            if key == "properties":
                for name, prop in child.items():
                    yield f"{path}.{name}".lstrip("."), prop
                    yield from _properties(prop, f"{path}.{name}".lstrip("."))
            elif key in ("items", "additionalProperties") and isinstance(child, dict):
                yield f"{path}[]", child
                yield from _properties(child, f"{path}[]")
            elif key in ("anyOf", "oneOf", "allOf"):
                for option in child:
                    yield from _properties(option, path)


def test_every_property_in_the_schema_has_a_description() -> None:
    missing = [
        path
        for path, prop in _properties(schema.schema())
        if isinstance(prop, dict) and not prop.get("description") and not path.endswith("[]")
    ]
    assert missing == []


def test_the_published_schema_is_the_one_wlmap_uses_and_prints() -> None:
    published = (ROOT / "schemas" / "mapping.schema.json").read_bytes()
    assert published == (ROOT / "mapper" / "language" / "mapping.schema.json").read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", "from mapper.cli.main import main; main()", "schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(done.stdout) == json.loads(published) == schema.schema()
