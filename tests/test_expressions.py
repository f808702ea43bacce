"""mapper.language.expressions: JMESPath and Jinja compiled once with located syntax errors, evaluated in a sandbox."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper.language import expressions
from mapper.language.expressions import (
    EvaluationError,
    ExpressionSyntaxError,
    compile_query,
    compile_template,
    functions,
    sandbox,
)

SCOPE: dict[str, Any] = {
    "event": {"resource_id": "U2Nl/+=", "name": "completed", "domain": "scopear.com"},
    "headers": {"x-scope-domain": "scopear.com"},
    "order": "A-17",
    "n": 754,
    "flag": True,
    "nothing": None,
    "items": [{"id": 1}, {"id": 2}],
    "text_with_template": "{{7*7}}",
    "big": "b" * 600_000,
    "dunder": "__class__",  # a name from the data: only the sandbox can refuse it (a written `.__class__` is
    # refused when the template is compiled, see test_an_unsafe_attribute_is_refused_when_compiled)
}


def render(source: str, scope: dict[str, Any] | None = None) -> Any:
    return compile_template(source).render(SCOPE if scope is None else scope)


def search(source: str, data: Any) -> Any:
    return compile_query(source).search(data)


# --------------------------------------------------------------------------------------- native typing


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ n }}", 754),
        ("{{ flag }}", True),
        ("{{ nothing }}", None),
        ("{{ items }}", [{"id": 1}, {"id": 2}]),
        ("{{ n / 2 }}", 377.0),
        ("{{ order }}", "A-17"),
        ("{{ (1, 2) }}", [1, 2]),  # a tuple becomes a list, as JSON has it
        ("{{ n }} min", "754 min"),  # anything more than one expression is text
        (" {{ n }}", " 754"),
        ("{{ n }}{{ n }}", "754754"),
        ("{{ '478' }}", "478"),  # text stays text: no Airbyte-style coercion of "478" to 478
        ("plain", "plain"),
    ],
)
def test_a_lone_expression_keeps_its_type(source: str, expected: Any) -> None:
    assert render(source) == expected
    assert type(render(source)) is type(expected)


def test_data_is_never_evaluated_as_a_template() -> None:
    assert render("{{ text_with_template }}") == "{{7*7}}"
    assert render("x {{ text_with_template }}") == "x {{7*7}}"
    assert search("a", {"a": "{{7*7}}"}) == "{{7*7}}"


# --------------------------------------------------------------------------------------- sandbox limits


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ 'a' * 50000000 }}", "repeating a value 50000000 times"),
        ("x{{ 'a' * 50000000 }}", "repeating a value 50000000 times"),
        ("{{ [1] * 200000 }}", "repeating a value 200000 times"),
        ("{{ 9 ** 99999 }}", "an exponent above 64"),
        ("{{ range(10**9) | list }}", "range() is limited to 10000 items"),
        ("{% for i in range(10**9) %}{% endfor %}", "range() is limited to 10000 items"),
        ("{{ ''[dunder] }}", "unsafe"),
        ("{{ items[dunder] }}", "unsafe"),
        ("{% for i in range(5000) %}{{ big }}{% endfor %}", "more than 1048576 characters"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ missing }}", "`missing` is not defined"),
        ("{{ event.missing }}", "`missing` is missing from the data"),
    ],
)
def test_the_sandbox_refuses_in_plain_words(source: str, words: str) -> None:
    with pytest.raises(EvaluationError) as caught:
        render(source)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("source", "name", "offset"),
    [("{{ ''.__class__ }}", "__class__", 6), ("{{ items.__class__.__mro__ }}", "__class__", 9)],
)
def test_an_unsafe_attribute_is_refused_when_compiled(source: str, name: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_template(source)
    assert caught.value.message == f"not allowed: access to attribute `{name}` is unsafe"
    assert (caught.value.offset, caught.value.width) == (offset, len(name))
    assert render("{{ items[0]._id | default('none') }}", {"items": [{"_id": 7}]}) == 7  # one `_`: data, allowed


def test_a_template_bomb_from_the_data_is_refused() -> None:
    with pytest.raises(EvaluationError, match="repeating a value"):
        compile_template("{{ 'x' * n }}").render({"n": 10**9})
    with pytest.raises(EvaluationError, match="exponent"):
        compile_template("{{ n ** 1000 }}").render({"n": 7})


def test_a_null_name_in_text_is_named() -> None:
    with pytest.raises(EvaluationError) as caught:
        compile_template("Call {{ call.id }} ended").render({"call": {"id": None}})
    assert str(caught.value) == (
        "`call.id` is empty (null), so it cannot be inserted into the text; "
        "write `{{ call.id or '' }}` if empty is fine there"
    )


def test_an_output_just_under_the_cap_renders() -> None:
    with pytest.raises(EvaluationError, match="more than"):
        render("{{ big }}{{ big }}x")
    assert len(render("{{ big }}x")) == 600_001


def test_the_sandbox_is_immutable() -> None:
    with pytest.raises(EvaluationError):
        render("{{ items.append(3) }}")
    assert SCOPE["items"] == [{"id": 1}, {"id": 2}]


def test_jmespath_results_are_size_guarded() -> None:
    with pytest.raises(EvaluationError, match="at most 100000"):
        search("[*]", list(range(100_001)))


def test_templates_that_load_other_templates_are_refused() -> None:
    for source in ("{% include 'x' %}", "{% import 'x' as y %}", "{% extends 'x' %}", "{% from 'x' import y %}"):
        with pytest.raises(ExpressionSyntaxError, match="cannot be used in a mapping"):
            compile_template(source)


# --------------------------------------------------------------------------------------- URL paths


def test_values_in_a_path_are_percent_encoded() -> None:
    path = compile_template("/api/orders/{{ event.resource_id }}/{{ order }}", expressions.PATH)
    assert path.render(SCOPE) == "/api/orders/U2Nl%2F%2B%3D/A-17"


@pytest.mark.parametrize("value", [".", ".."])
def test_a_path_segment_cannot_climb(value: str) -> None:
    path = compile_template("/api/{{ v }}", expressions.PATH)
    with pytest.raises(EvaluationError):
        path.render({"v": value})


def test_urlencode_in_a_path_is_not_encoded_twice() -> None:
    path = compile_template("/a/{{ v | urlencode }}", expressions.PATH)
    assert path.render({"v": "a b"}) == "/a/a%20b"


# --------------------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ '2024-05-01T12:00:00+02:00' | iso8601 }}", "2024-05-01T10:00:00Z"),
        ("{{ '2024-05-01T12:00:00+02:00' | maximo_datetime }}", "2024-05-01T10:00:00+00:00"),
        ("{{ '2024-05-01' | sap_date }}", "/Date(1714521600000)/"),
        ("{{ '2024-05-01T15:51:04Z' | sap_time }}", "PT15H51M04S"),
        ("{{ n | duration_iso }}", "PT12M34S"),
        ("{{ n | minutes }}", 12.57),
        ("{{ n | hours_minutes }}", "0:13"),
        ('{{ "it\'s" | odata_quote }}', "'it''s'"),
        ('{{ "O\'Neil" | soql_quote }}', "'O\\'Neil'"),
        ("{{ 'abcdef' | truncate_text(3) }}", "abc"),
        ("{{ 'a/b c' | urlencode }}", "a%2Fb%20c"),
        ("{{ items | tojson }}", '[{"id":1},{"id":2}]'),
        ("{{ ('{\"a\": [1]}' | from_json).a }}", [1]),
        ("{{ (items | from_json)[1].id }}", 2),
        ("{{ nothing | default('none', true) }}", "none"),
        ("{{ (n | minutes) | round(1) }}", 12.6),
        ("{{ order | lower }}", "a-17"),
        ("{{ order | replace('-', '') }}", "A17"),
        ("{{ items | length }}", 2),
        ("{{ items | map(attribute='id') | list }}", [1, 2]),
    ],
)
def test_filters(source: str, expected: Any) -> None:
    assert render(source) == expected


def test_every_wlmap_filter_is_tested_above() -> None:
    tested = {
        "iso8601",
        "maximo_datetime",
        "sap_date",
        "sap_time",
        "duration_iso",
        "minutes",
        "hours_minutes",
        "odata_quote",
        "soql_quote",
        "truncate_text",
        "urlencode",
        "tojson",
        "from_json",
    }
    assert tested == set(sandbox.FILTERS)


@pytest.mark.parametrize("name", ["center", "indent", "wordwrap", "xmlattr", "pprint", "filesizeformat"])
def test_filters_that_can_blow_up_are_gone(name: str) -> None:
    assert name not in expressions.FILTER_NAMES


# --------------------------------------------------------------------------------------- JMESPath functions

DATA = {"at": "2024-05-01T12:00:00+02:00", "secs": 754, "site": None, "code": "Ab", "order": "A-17", "list": [3, 1, 2]}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("to_iso8601(at)", "2024-05-01T10:00:00Z"),
        ("sap_date('2024-05-01')", "/Date(1714521600000)/"),
        ("duration_iso(secs)", "PT12M34S"),
        ("default(site, 'main')", "main"),
        ("default(code, 'main')", "Ab"),
        ("default('', 'main')", "main"),
        ("lower(code)", "ab"),
        ("upper(code)", "AB"),
        ("split(order, '-')", ["A", "17"]),
        ("split(code, '')", ["A", "b"]),
        ("length(list)", 3),
        ("sort(list)", [1, 2, 3]),
        ("max(list)", 3),
        ("contains(['A-17'], order)", True),
        ("starts_with(order, 'A')", True),
        ("join('/', split(order, '-'))", "A/17"),
        ('from_json(\'{"incident": "INC1"}\').incident', "INC1"),
        ("from_json(list)", [3, 1, 2]),
        ("from_json('not json')", None),
        ("to_string(secs)", "754"),
        ("to_number('12')", 12),
        ("list[?@ > `1`]", [3, 2]),
        ("site || 'none'", "none"),
        ("!site", True),
        ("a.b.c", None),  # a missing path is null, never an error
    ],
)
def test_jmespath_functions(source: str, expected: Any) -> None:
    assert search(source, DATA) == expected


def test_deprecated_backtick_text_is_refused_with_the_fix() -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_query("state == `done`")
    assert caught.value.message == "JMESPath: `done` in backticks is not a JSON value"
    assert caught.value.hint == "write text in single quotes: 'done'"
    assert caught.value.offset == len("state == ")


def test_now_is_an_iso_time() -> None:
    assert search("now()", {}).endswith("Z")


def test_every_custom_function_is_tested_above() -> None:
    custom = {name[len("_func_") :] for name in vars(functions.Functions) if name.startswith("_func_")}
    assert custom == {
        "to_iso8601",
        "sap_date",
        "duration_iso",
        "default",
        "lower",
        "upper",
        "split",
        "now",
        "from_json",
    }


def test_a_function_failing_on_data_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match="'Ab' is not an ISO 8601 date or time"):
        search("to_iso8601(code)", DATA)
    with pytest.raises(EvaluationError):
        search("lower(secs)", DATA)


# --------------------------------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    ("source", "message", "marked"),
    [
        ("a == 'x' && b = 'y'", "JMESPath: unexpected character `=`", "="),
        ("headers.x-scope-domain", "JMESPath: unexpected character `-`", "-"),
        ("a.[b", "JMESPath: the expression ends too early", ""),
        ("a == 'abc", "JMESPath: the quote ' is never closed", "'"),
        ("a !=== b", "JMESPath: unexpected `==`", "=="),
        ("a.(", "JMESPath: unexpected `(`", "("),
        ("to_date(a)", "JMESPath: unknown function `to_date()`", "to_date"),
        ("", "JMESPath: the expression is empty", ""),
    ],
)
def test_jmespath_syntax_errors_point_at_the_character(source: str, message: str, marked: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_query(source)
    error = caught.value
    assert error.message == message
    assert source[error.offset : error.offset + len(marked)] == marked


@pytest.mark.parametrize(
    ("source", "message", "marked"),
    [
        ("{{ a }", "template: unexpected `}`", "}"),
        ("{{ a | }}", "template: expected a name, found `}}`", "}}"),
        ("x {% if a %}y", "template: `{% if %}` is never closed", "{% if"),
        ("{% for x in y %}{{ x.name }\n{% endfor %}", "template: unexpected `}`", "}"),
        ("{{ a b }}", "template: expected `}}`, found `b`", "b"),
        ("{% if a %}x{% endfor %}", "template: `{% endfor %}` does not close the open `{% if %}`", "endfor"),
        ("{% endif %}", "template: `{% endif %}` has no opening tag", "endif"),
        ("{% iff a %}{% endif %}", "template: unknown tag `{% iff %}`", "iff"),
        ("{{ a", "template: `{{` is never closed", "{{"),
        ("x {{ 'abc }}", "template: a text in quotes is never closed (`'`)", "'"),
        ("{# note", "template: a `{#` comment is never closed", "{#"),
        ("line one\n{{ a ]] }}", "template: unexpected `]`", "]"),
        ("{{ a }} {{ b ) }}", "template: unexpected `)`", ")"),
        ("{{ a | bogus }}", "unknown filter `bogus`", "bogus"),
        ("{{ a is bogus }}", "unknown test `bogus`", "bogus"),
    ],
)
def test_jinja_syntax_errors_point_at_the_token(source: str, message: str, marked: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_template(source)
    error = caught.value
    assert error.message == message
    assert source[error.offset : error.offset + len(marked)] == marked


def test_unknown_filter_suggests_a_close_name() -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_template("{{ a | iso_8601 }}")
    assert caught.value.hint == "did you mean `iso8601`?"


# --------------------------------------------------------------------------------------- references


def test_references_are_the_names_read_from_the_root() -> None:
    query = compile_query("result.node.id && (items[?x == y].z | [0]) && length(steps.find_order.id)")
    assert set(query.references) == {("result", "node", "id"), ("items",), ("steps", "find_order", "id")}
    template = compile_template("{{ steps.a.b }}{% for x in items %}{{ x.y }}{% endfor %}{{ headers['x-a'] }}")
    assert set(template.references) == {("steps", "a", "b"), ("items",), ("headers", "x-a")}


# --------------------------------------------------------------------------------------- never a crash


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}%#|.()[]'\"` \nabcxyz_-=!&<>*0123456789")), max_size=40))
def test_any_template_text_compiles_or_is_a_located_syntax_error(source: str) -> None:
    try:
        template = compile_template(source)
    except ExpressionSyntaxError as error:
        assert 0 <= error.offset <= len(source)
        return
    with contextlib.suppress(EvaluationError):
        template.render({"a": 1, "b": "x", "c": [1], "x": {}, "y": None, "z": "{{ a }}"})


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcxyz_.[]{}()|&!=<>'\"`@*?:, -0123456789")), max_size=30))
def test_any_jmespath_text_compiles_or_is_a_located_syntax_error(source: str) -> None:
    try:
        query = compile_query(source)
    except ExpressionSyntaxError as error:
        assert 0 <= error.offset <= len(source)
        return
    with contextlib.suppress(EvaluationError):
        query.search({"a": {"b": [1, 2]}, "c": "x", "x": [{"y": 1}]})
