"""mapper.language.schema and the published JSON Schema: one schema, described everywhere, errors in plain words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mapper.errors import Problem
from mapper.language import schema, source

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "schemas" / "mapping.schema.json"
PACKAGED = ROOT / "mapper" / "language" / "mapping.schema.json"
DOCS = ROOT / "docs" / "mapping.md"


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property schema in the document, with a dotted path for messages."""
    if isinstance(node, dict):
        for name, child in (node.get("properties") or {}).items():
            yield f"{path}.{name}".lstrip("."), child
        for key, child in node.items():
            if key == "properties":
                for name, grandchild in child.items():
                    yield from _properties(grandchild, f"{path}.{name}".lstrip("."))
            elif key in ("items", "additionalProperties") and isinstance(child, dict):
                yield from _properties(child, f"{path}[]")
            elif key in ("anyOf", "oneOf", "allOf"):
                for option in child:
                    yield from _properties(option, path)


def test_every_key_is_in_the_reference() -> None:
    """docs/mapping.md is the reference: a key added to the schema must be documented there."""
    text = DOCS.read_text(encoding="utf-8")
    names = {path.rsplit(".", 1)[-1].removesuffix("[]") for path, _ in _properties(schema.schema())}
    undocumented = sorted(name for name in names if f"`{name}`" not in text)
    assert undocumented == []


# --------------------------------------------------------------------------------------- messages

BASE = """version: 1
name: demo
trigger:
  topics: [scenario_session/completed]
connections:
  target:
    base_url: https://target.example.com
steps:
  - name: send
    connection: target
    method: POST
    path: /x
"""


def check(text: str) -> list[Problem]:
    document, problems = source.read(text, "m.yaml")
    assert document is not None and not problems
    return schema.check(document)


def one(text: str) -> Problem:
    problems = check(text)
    assert len(problems) == 1, problems
    return problems[0]


def test_a_valid_mapping_has_no_problems() -> None:
    assert check(BASE) == []


@pytest.mark.parametrize(
    ("old", "new", "message", "hint"),
    [
        (
            "    method: POST",
            "    method: post",
            "`post` is not allowed for `method`; use one of: GET, POST, PUT, PATCH, DELETE, MERGE, HEAD",
            "write it in capitals: `POST`",
        ),
        (
            "    path: /x",
            "    path: /x\n    retries: 3",
            "unknown key `retries`",
            "allowed here: body, capture, connection, content_type, description, expect, for_each, form, graphql, "
            "headers, json, method, name, on_error, on_status, operation, outcomes, params, path, timeout, url, "
            "variables, when",
        ),
        ("    base_url:", "    retries: {}\n    base_url:", "unknown key `retries`", "did you mean `retry`?"),
        (
            "    path: /x",
            "    path: /x\n    on_status: {'404': ignore}",
            "`ignore` is not an outcome; use one of: success, skip, retry, fail",
            "did you mean `skip`?",
        ),
        (
            "    path: /x",
            "    path: /x\n    on_status: {'40x': skip}",
            "`40x` is not an HTTP status",
            "use a status such as `404`, or a class such as `4xx`",
        ),
        (
            "    path: /x",
            "    path: /x\n    timeout: 2.50",
            "`timeout` must be a duration such as 30s, 5m or 2h, or a number of seconds, not the text `2.50`",
            "`2.50` was kept as text because its trailing zero would be lost as a number; write 2.5 or 2.5s",
        ),
        (
            "    path: /x",
            "    path: /x\n    timeout: 5 min",
            "`timeout` must be a duration such as 30s, 5m or 2h, or a number of seconds, not the text `5 min`",
            "write `5m` (a number and one of ms, s, m, h, d, with no space)",
        ),
        (
            "    base_url: https://target.example.com",
            "    base_url: https://target.example.com\n    tls: {verify: no}",
            "`verify` must be true or false, not the text `no`",
            "write true or false (YAML 1.1 words like yes/no/on/off are kept as text here)",
        ),
        (
            "  topics: [scenario_session/completed]",
            "  topics: scenario_session/completed",
            "`topics` must be a list, not the text `scenario_session/completed`",
            "write a list: [scenario_session/completed]",
        ),
        ("    method: POST\n", "", "the step needs `method`", "add e.g. `method: POST`"),
        (
            "name: demo",
            "name: My Demo",
            "`My Demo` is not a valid mapping name",
            "use lower-case letters, digits, `-` and `_`, e.g. `my-demo`",
        ),
        (
            "  - name: send",
            "  - name: 2send",
            "`2send` is not a valid step name",
            "use letters, digits, `-` and `_`, starting with a letter",
        ),
        (
            "    base_url: https://target.example.com",
            "    base_url: https://target.example.com\n    auth: {basic_auth: {}}",
            "unknown kind of auth `basic_auth`",
            "did you mean `basic`?",
        ),
        (
            "    base_url: https://target.example.com",
            "    base_url: https://target.example.com\n    auth: oauth",
            "`auth` must be `none` or one of basic, bearer, api_key, oauth2, not the text `oauth`",
            "write `oauth2:` as a key, with its settings indented below it",
        ),
        (
            "    base_url: https://target.example.com",
            "    base_url: https://target.example.com\n    auth: {basic: {username: u}}",
            "`basic` needs `password`",
            'take it from the environment, e.g. `password: "{{ env.TARGET_PASSWORD }}"`',
        ),
        ("version: 1", "version: 2", "`version` must be 1", "this version of wlmap reads mappings of format version 1"),
    ],
)
def test_messages(old: str, new: str, message: str, hint: str) -> None:
    assert BASE.count(old) == 1
    problem = one(BASE.replace(old, new))
    assert (problem.message, problem.hint) == (message, hint)


def test_a_misspelt_required_key_is_reported_once() -> None:
    problem = one(BASE.replace("trigger:", "triger:"))
    assert (problem.message, problem.hint) == ("unknown key `triger`", "did you mean `trigger`?")


def test_problems_point_at_the_key_or_the_value() -> None:
    unknown = one(BASE.replace("    path: /x", "    path: /x\n    retries: 3"))
    assert (unknown.location.line, unknown.location.column, unknown.location.width) == (13, 5, 7)
    wrong = one(BASE.replace("    method: POST", "    method: post"))
    assert (wrong.location.line, wrong.location.column, wrong.location.width) == (11, 13, 4)
    assert wrong.path == ('step "send"', "method")


def test_a_missing_key_of_a_list_item_points_at_that_item() -> None:
    text = BASE + "  - name: second\n    connection: target\n    path: /y\n"
    problem = one(text)
    assert problem.message == "the step needs `method`"
    assert (problem.location.line, problem.path) == (13, ('step "second"',))


def test_a_file_that_is_not_a_mapping() -> None:
    problem = one("- a\n- b\n")
    assert problem.message == "the file must be a set of `key: value` pairs, not a list"
