"""mapper.language.source: YAML → data and positions, with YAML's traps disarmed and every problem located."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper.errors import Problem
from mapper.language import source


def read(text: str | bytes) -> tuple[source.Document | None, list[Problem]]:
    return source.read(text, "m.yaml")


def data(text: str) -> Any:
    document, problems = read(text)
    assert document is not None and not problems, problems
    return document.data


def only(text: str | bytes) -> Problem:
    _, problems = read(text)
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------------------- YAML 1.1 traps


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("012345", "012345"),  # YAML 1.1: the octal number 5349
        ("NO", "NO"),  # YAML 1.1: false (Norway's country code)
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("1.10", "1.10"),  # a release number, not 1.1
        ("2.50", "2.50"),
        ("0x1F", "0x1F"),
        ("1e3", "1e3"),  # 1000.0 in YAML 1.1; text here since repr(1000.0) is not "1e3"
        ("2024-01-01", "2024-01-01"),  # a date in YAML 1.1
        ("12:30:00", "12:30:00"),  # sexagesimal 45000 in YAML 1.1
        (".inf", ".inf"),
        ("1_000", "1_000"),
        ("true", True),
        ("True", True),
        ("false", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("0", 0),
        ("-7", -7),
        ("42", 42),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("'012345'", "012345"),
        ('"true"', "true"),
    ],
)
def test_only_plain_json_like_scalars_change_type(typed: str, value: Any) -> None:
    assert data(f"key: {typed}\n") == {"key": value}
    assert type(data(f"key: {typed}\n")["key"]) is type(value)


def test_keys_are_always_text() -> None:
    assert data("404: skip\ntrue: x\n") == {"404": "skip", "true": "x"}


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("a: 1\na: 2\n", "duplicate key `a` (first set on line 1)", 2, 1),
        ("a: &x 1\n", "anchors (`&x`) are not allowed", 1, 4),
        ("a: 1\nb: *x\n", "aliases (`*x`) are not allowed", 2, 4),
        ("a: !!str 1\n", "tags such as `!!str` are not allowed", 1, 4),
        ("a: !custom 1\n", "tags such as `!custom` are not allowed", 1, 4),
        ("a:\n  <<: {b: 1}\n", "merge keys (`<<`) are not allowed", 2, 3),
        ("a: {{ x }}\n", "a value that starts with `{{` must be quoted", 1, 4),
        ("a: {{ x }} y\n", "a value that starts with `{{` must be quoted", 1, 4),
        ("- {{ x }}\n", "a value that starts with `{{` must be quoted", 1, 3),
        ("? [a]\n: 1\n", "a key must be a plain name, not a list or a mapping", 1, 3),
    ],
)
def test_refused_constructs(text: str, message: str, line: int, column: int) -> None:
    problem = only(text)
    assert (problem.message, problem.location.line, problem.location.column) == (message, line, column)


def test_an_alias_never_expands() -> None:
    """A billion laughs: nine levels of nine aliases would build 387 million nodes if followed."""
    lines = ["a0: &a0 [lol]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    document, problems = read("\n".join(lines) + "\n")
    assert document is not None
    assert len([p for p in problems if p.message.startswith("aliases")]) == 81
    assert document.data["a9"] == [None] * 9


def test_a_refused_value_is_remembered_so_nothing_else_complains() -> None:
    document, _ = read("a: *x\nb:\n  <<: {c: 1}\nc: !!str 1\n")
    assert document is not None
    assert document.is_refused(("a",)) and document.is_refused(("a", "deeper"))
    assert document.is_refused(("b",)) and not document.is_refused(("b", "d"))
    assert document.is_refused(("c",))
    assert not document.is_refused(("d",))


def test_problems_carry_breadcrumbs_in_words() -> None:
    problem = only("steps:\n  - name: read-order\n    method: GET\n    method: PUT\n")
    assert problem.path == ('step "read-order"', "method")


# --------------------------------------------------------------------------------------- whole-file limits


def test_empty_file_is_a_document_without_data() -> None:
    document, problems = read("# nothing\n")
    assert document is not None and document.data is None and problems == []


def test_more_than_one_document() -> None:
    problem = only("a: 1\n---\nb: 2\n")
    assert (problem.message, problem.location.line, problem.location.width) == (
        "a mapping file holds one YAML document",
        2,
        3,
    )


def test_over_size() -> None:
    problem = only(b"# " + b"x" * source.MAX_BYTES + b"\n")
    assert problem.message == "the file is 1.0 MiB; a mapping may be at most 1 MiB"
    assert problem.location.line == 0


def test_over_size_counts_bytes_not_characters() -> None:
    text = "a: " + "é" * (source.MAX_BYTES // 2 + 10) + "\n"  # fewer characters than bytes
    assert only(text).message.startswith("the file is 1.0 MiB")


def test_not_utf8_is_located_at_the_byte() -> None:
    problem = only("a: 1\nb: caf\xe9\n".encode("latin-1"))
    assert problem.message == "the file is not UTF-8 text: byte 0xE9 cannot be read"
    assert (problem.location.line, problem.location.column) == (2, 7)
    assert problem.source_line == "b: caf\ufffd"


def test_a_byte_order_mark_is_fine() -> None:
    assert source.read(b"\xef\xbb\xbfa: 1\n", "m.yaml")[0].data == {"a": 1}  # type: ignore[union-attr]


def test_control_character() -> None:
    problem = only("a: 1\nb: x\x07y\n")
    assert problem.message == "the file contains the control character U+0007, which YAML does not allow"
    assert (problem.location.line, problem.location.column) == (2, 5)


@pytest.mark.parametrize("depth", [65, 200, 5000])
def test_too_deep(depth: int) -> None:
    problem = only("a: " + "[" * depth + "]" * depth + "\n")
    assert problem.message == "the YAML is nested too deeply (more than 64 levels)"


def test_64_levels_are_fine() -> None:
    assert data("a: " + "[" * 63 + "]" * 63 + "\n") is not None


# --------------------------------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("a:\n\tb: 1\n", "a tab character cannot indent YAML", 2, 1),
        ('a: "x\nb: 1\n', "a quoted value is never closed", 1, 4),
        ('a: "x\nb: "y"\nc: 1\n', "a quoted value is never closed", 1, 4),
        ("a: b: c\n", "a value that contains `: ` must be quoted", 1, 5),
        ("a:\n  b: 1\n   c: 2\n", "this line is indented further than the line above it", 3, 4),
        ("a: [x\nb: 1\n", "the `[` opened here is never closed", 1, 4),
        ("a: {x: 1\nb: 2\n", "the `{` opened here is never closed", 1, 4),
        ("a: 1\nb\nc: 2\n", "expected `key: value` here", 2, 1),
        ("a: b\n- c\n", "a list item `-` cannot start here", 2, 1),
        ("a: [x]]\n", "a `]` that closes nothing", 1, 7),
        ("a: @x\n", "a value cannot start with `@`", 1, 4),
        ('a: "\\q"\n', "unknown escape sequence in a double-quoted value", 1, 6),
        ("a: {{ x }} more\n", "a value that starts with `{{` must be quoted", 1, 4),
    ],
)
def test_syntax_errors_in_plain_words(text: str, message: str, line: int, column: int) -> None:
    problem = only(text)
    assert (problem.message, problem.location.line, problem.location.column) == (message, line, column)
    assert problem.hint


def test_a_colon_in_a_value_gets_the_quoted_line_as_hint() -> None:
    assert only("description: Note: it works\n").hint == 'write description: "Note: it works"'


# --------------------------------------------------------------------------------------- positions


def test_spans_of_keys_and_values() -> None:
    document, _ = read("steps:\n  - name: find\n    path: '/x'\n")
    assert document is not None
    assert document.location(("steps", 0, "path"), key=True).column == 5
    location = document.location(("steps", 0, "path"))
    assert (location.line, location.column, location.width) == (3, 11, 4)
    # a list item has no key: its own span, not its parent's
    assert document.location(("steps", 0), key=True).line == 2
    # a path that does not exist: its nearest ancestor
    assert document.location(("steps", 0, "nope")).line == 2


@pytest.mark.parametrize(
    ("text", "offset", "line", "column"),
    [
        ("k: abc\n", 2, 1, 6),
        ("k: 'a''b' \n", 2, 1, 8),  # '' is one character
        ('k: "a\\tb!"\n', 3, 1, 9),  # \t is two characters in the file
        ('k: "\\u00e9!"\n', 1, 1, 11),
        ("k: |\n  ab\n  cd\n", 4, 3, 4),
        ("k: |\n  ab\n    cd\n", 5, 3, 5),  # more indented lines keep their extra spaces
        ("k: >-\n  ab\n  cd\nz: 1\n", 4, 3, 4),  # the end line (z) is not part of the block
        ("k: >\n  ab\n\n  cd\n", 4, 4, 4),  # folded: the break before blank lines is dropped
        ("k: |2\n    ab\n", 0, 2, 3),  # explicit indentation
        ("k: a\n  b c\n", 4, 2, 5),  # plain over two lines: the break is one space
    ],
)
def test_location_in_scalar(text: str, offset: int, line: int, column: int) -> None:
    document, problems = read(text)
    assert document is not None and not problems
    location = document.location_in_scalar(("k",), offset)
    assert (location.line, location.column) == (line, column)


SAFE = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp", "Co", "Cn"), exclude_characters="\ufeff\x85"
)


@settings(max_examples=300, deadline=None)
@given(st.text(SAFE, min_size=1, max_size=40), st.sampled_from(["plain", "single", "double", "literal", "folded"]))
def test_every_character_of_a_scalar_maps_back_to_itself(value: str, style: str) -> None:
    """Dump a value in each scalar style; the location of each character must show that character in the file."""
    dumped = yaml.safe_dump(
        {"k": value},
        default_style={"plain": None, "single": "'", "double": '"', "literal": "|", "folded": ">"}[style],
        allow_unicode=True,
        width=30,
    )
    document, problems = read(dumped)
    if document is None or problems or document.data != {"k": value}:
        return  # a style PyYAML cannot write this value in (it falls back, or the value has a trap)
    span = document.values[("k",)]
    for offset, char in enumerate(value):
        if char in " \n\\'\"\t":
            continue  # spaces and breaks are folded, escapes are written differently
        location = document.location_in_scalar(("k",), offset)
        line = document.line_text(location.line) or ""
        if span.style == '"' and "\\" in line:
            continue  # escapes before this character were written as \x.. or \u....
        assert line[location.column - 1 : location.column] == char, (dumped, offset)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_reads_or_gives_located_problems(text: str) -> None:
    document, problems = read(text)
    lines = len(source.split_lines(text))
    for problem in problems:
        assert problem.location.line == 0 or 1 <= problem.location.line <= max(lines, 1)
        assert problem.location.column >= (1 if problem.location.line else 0)
    if document is None:
        assert problems
    assert problems == sorted(problems, key=lambda p: p.sort_key)
